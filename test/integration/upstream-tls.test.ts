/**
 * Upstream TLS per route (SPEC §12, issue #30): real HTTPS upstreams on
 * loopback with openssl-made certificates (test/helpers/certs.ts), one
 * of them requiring a client certificate. The private CA is trusted by the
 * route only (never through NODE_EXTRA_CA_CERTS or another process-wide switch), and each refusal is a 502
 * upstream_unavailable that the upstream never saw as a request.
 */
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import * as grpc from '@grpc/grpc-js';
import { RawConnection } from '../helpers/fwd-net.js';
import { acceptFor, encodeFrame, newKey, readFrame, upgradeRequest } from '../helpers/fwd-ws.js';
import { EchoClient, startEchoServer, type EchoServer } from '../helpers/grpc-echo.js';
import { captureLogger } from '../helpers/usage-sinks.js';
import { makePki, type CertPair, type Pki } from '../helpers/certs.js';
import { startProxy, writeConfig, type RunningProxy } from '../helpers/servers.js';

interface TlsUpstream {
  url: string;
  /** Per request: the client certificate's CN (or null) and the SNI name the proxy sent. */
  seen: { path: string; clientCn: string | null; servername: string | null }[];
  server: Server;
}

/** The peer certificate's CN (one value), or null without one. */
function cnOf(peer: ReturnType<TLSSocket['getPeerCertificate']> | undefined): string | null {
  const cn = peer?.subject?.CN;
  return cn === undefined ? null : String(cn);
}

async function startTlsUpstream(requireClientCert: boolean): Promise<TlsUpstream> {
  const seen: TlsUpstream['seen'] = [];
  const https = createServer(
    {
      key: readFileSync(server.key),
      cert: readFileSync(server.cert),
      ...(requireClientCert ? { ca: readFileSync(pki.ca), requestCert: true, rejectUnauthorized: true } : {}),
    },
    (req, res) => {
      const socket = req.socket as TLSSocket;
      const peer = socket.getPeerCertificate();
      seen.push({ path: req.url!, clientCn: cnOf(peer), servername: (socket as TLSSocket & { servername?: string | false }).servername || null });
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('tls ok');
    },
  );
  // WebSocket: the 101, then one unmasked text frame naming the client certificate's CN.
  https.on('upgrade', (req, socket) => {
    const peer = (req.socket as TLSSocket).getPeerCertificate();
    seen.push({ path: req.url!, clientCn: cnOf(peer), servername: null });
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptFor(String(req.headers['sec-websocket-key']))}\r\n\r\n`);
    socket.write(encodeFrame(`hello ${peer?.subject?.CN ?? 'nobody'}`, undefined, false));
  });
  await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve));
  return { url: `https://127.0.0.1:${(https.address() as AddressInfo).port}`, seen, server: https };
}

let pki: Pki;
/** The upstreams' certificate (127.0.0.1 and localhost), the proxy's client certificate, and one from a CA nobody trusts. */
let server: CertPair;
let client: CertPair;
let wrong: CertPair;
let grpcTls: EchoServer;
let plain: TlsUpstream;
let mtls: TlsUpstream;
let proxy: RunningProxy;
let logs: Record<string, unknown>[];
/** The CA file a route reads, rewritten by the reload test. */
let rotatingCa: string;

beforeAll(async () => {
  // A CA made now is in no process-wide bundle (NODE_EXTRA_CA_CERTS, the system's): only the route trusts it.
  pki = await makePki();
  server = await pki.issue('upstream');
  client = await pki.issue('client', { kind: 'client' });
  wrong = await pki.issue('wrong-client', { kind: 'client', ca: 'other-ca' });
  rotatingCa = join(pki.dir, 'rotating-ca.crt');
  copyFileSync(pki.otherCa, rotatingCa);
  plain = await startTlsUpstream(false);
  mtls = await startTlsUpstream(true);
  grpcTls = await startEchoServer({ tls: { cert: readFileSync(server.cert), key: readFileSync(server.key), ca: readFileSync(pki.ca), requireClientCert: true } });
  const localhostUrl = plain.url.replace('127.0.0.1', 'localhost');
  const captured = captureLogger();
  logs = captured.lines;
  proxy = await startProxy(
    `
listen: { host: 127.0.0.1, port: 0, http2: true }
routes:
  - { name: private-ca, match: { pathPrefix: /private-ca }, upstream: "${plain.url}", auth: [none], tls: { caFile: "${pki.ca}" } }
  - { name: wrong-ca, match: { pathPrefix: /wrong-ca }, upstream: "${plain.url}", auth: [none], tls: { caFile: "${pki.otherCa}" } }
  - { name: default-roots, match: { pathPrefix: /default-roots }, upstream: "${plain.url}", auth: [none] }
  - { name: rotating, match: { pathPrefix: /rotating }, upstream: "${plain.url}", auth: [none], tls: { caFile: "${rotatingCa}" } }
  - { name: sni-ok, match: { pathPrefix: /sni-ok }, upstream: "${plain.url}", auth: [none], tls: { caFile: "${pki.ca}", servername: localhost } }
  - { name: sni-wrong, match: { pathPrefix: /sni-wrong }, upstream: "${localhostUrl}", auth: [none], tls: { caFile: "${pki.ca}", servername: billing.internal } }
  - { name: mtls-right, match: { pathPrefix: /mtls-right }, upstream: "${mtls.url}", auth: [none], tls: { caFile: "${pki.ca}", certFile: "${client.cert}", keyFile: "${client.key}" } }
  - { name: mtls-wrong, match: { pathPrefix: /mtls-wrong }, upstream: "${mtls.url}", auth: [none], tls: { caFile: "${pki.ca}", certFile: "${wrong.cert}", keyFile: "${wrong.key}" } }
  - { name: mtls-none, match: { pathPrefix: /mtls-none }, upstream: "${mtls.url}", auth: [none], tls: { caFile: "${pki.ca}" } }
  - { name: grpc-mtls, match: { pathPrefix: /echo.v1.Echo/ }, upstream: "https://127.0.0.1:${grpcTls.port}", protocol: grpc, auth: [none], tls: { caFile: "${pki.ca}", certFile: "${client.cert}", keyFile: "${client.key}", servername: localhost } }
  - { name: grpc-no-cert, match: { pathPrefix: /nocert.v1.Echo/ }, upstream: "https://127.0.0.1:${grpcTls.port}", protocol: grpc, auth: [none], tls: { caFile: "${pki.ca}" } }
`,
    {},
    captured.logger,
  );
});

afterAll(async () => {
  await proxy?.close();
  await grpcTls?.close();
  for (const u of [plain, mtls]) {
    if (u === undefined) continue;
    u.server.closeAllConnections();
    await new Promise((r) => u.server.close(r));
  }
});

async function get(path: string): Promise<{ status: number; code: string | null; text: string }> {
  const res = await fetch(`${proxy.url}${path}`);
  const text = await res.text();
  const code = res.headers.get('content-type')?.startsWith('application/json') ? (JSON.parse(text) as { error: { code: string } }).error.code : null;
  return { status: res.status, code, text };
}

const seenPaths = (u: TlsUpstream) => u.seen.map((s) => s.path);

describe('a private CA per route', () => {
  it('trusts the upstream through the route caFile, without NODE_EXTRA_CA_CERTS', async () => {
    expect(await get('/private-ca/a')).toEqual({ status: 200, code: null, text: 'tls ok' });
    expect(seenPaths(plain)).toContain('/private-ca/a');
  });

  it('refuses an upstream the route CA did not sign: 502, the TLS reason logged, nothing sent', async () => {
    expect(await get('/wrong-ca/b')).toMatchObject({ status: 502, code: 'upstream_unavailable' });
    expect(await get('/default-roots/c')).toMatchObject({ status: 502, code: 'upstream_unavailable' });
    expect(seenPaths(plain)).not.toContain('/wrong-ca/b');
    expect(seenPaths(plain)).not.toContain('/default-roots/c');
    const line = logs.find((l) => l.msg === 'request' && l.path === '/wrong-ca/b')!;
    expect(String(line.reason)).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|CERT/);
    // The reason names the failure, never a certificate's or key's content.
    expect(JSON.stringify(logs)).not.toContain('BEGIN');
  });

  it('re-reads the files on reload: the same path with a new CA trusts anew', async () => {
    expect((await get('/rotating/1')).status).toBe(502);
    copyFileSync(pki.ca, rotatingCa);
    expect(await proxy.gate.reload()).toBe(true);
    expect(await get('/rotating/2')).toMatchObject({ status: 200, text: 'tls ok' });
    expect(seenPaths(plain)).toEqual(expect.arrayContaining(['/rotating/2']));
    expect(seenPaths(plain)).not.toContain('/rotating/1');
  });
});

describe('servername', () => {
  it('is the SNI name sent and the name verified (here: the certificate names localhost, the URL an IP)', async () => {
    expect((await get('/sni-ok/d')).status).toBe(200);
    expect(plain.seen.find((s) => s.path === '/sni-ok/d')!.servername).toBe('localhost');
  });

  it('a name the certificate does not carry: 502', async () => {
    expect(await get('/sni-wrong/e')).toMatchObject({ status: 502, code: 'upstream_unavailable' });
    expect(seenPaths(plain)).not.toContain('/sni-wrong/e');
  });
});

describe('an upstream that requires a client certificate', () => {
  it('the right certificate: 200, and the upstream sees who the proxy is', async () => {
    expect(await get('/mtls-right/f')).toMatchObject({ status: 200, text: 'tls ok' });
    expect(mtls.seen.find((s) => s.path === '/mtls-right/f')!.clientCn).toBe('tenantgate test client');
  });

  it('a certificate from another CA: 502, nothing reached the upstream', async () => {
    expect(await get('/mtls-wrong/g')).toMatchObject({ status: 502, code: 'upstream_unavailable' });
    expect(seenPaths(mtls)).not.toContain('/mtls-wrong/g');
  });

  it('no certificate: 502, nothing reached the upstream', async () => {
    expect(await get('/mtls-none/h')).toMatchObject({ status: 502, code: 'upstream_unavailable' });
    expect(seenPaths(mtls)).not.toContain('/mtls-none/h');
  });

  it('a WebSocket upgrade uses the route TLS too: right certificate 101, none 502', async () => {
    const open = async (path: string) => {
      const conn = await RawConnection.open(proxy.port);
      await conn.write(upgradeRequest(path, newKey()));
      return { conn, res: await conn.readResponse({ head: true }) };
    };
    const right = await open('/mtls-right/ws');
    expect(right.res!.status).toBe(101);
    expect((await readFrame(right.conn))!.payload.toString()).toBe('hello tenantgate test client');
    right.conn.destroy();
    const none = await open('/mtls-none/ws');
    expect(none.res!.status).toBe(502);
    none.conn.destroy();
    expect(seenPaths(mtls)).not.toContain('/mtls-none/ws');
  });

  it('routes to one origin with different TLS settings never share connections', async () => {
    const answers = await Promise.all(['/mtls-right/i', '/mtls-none/j', '/mtls-right/k', '/mtls-wrong/l'].map(get));
    expect(answers.map((a) => a.status)).toEqual([200, 502, 200, 502]);
    expect(seenPaths(mtls)).toEqual(expect.arrayContaining(['/mtls-right/i', '/mtls-right/k']));
    expect(seenPaths(mtls)).not.toContain('/mtls-none/j');
    expect(seenPaths(mtls)).not.toContain('/mtls-wrong/l');
  });
});

describe('gRPC to a TLS upstream (h2 by ALPN) with a client certificate', () => {
  const raw = { requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b };
  const NoCert = grpc.makeGenericClientConstructor({ unary: { path: '/nocert.v1.Echo/Unary', requestStream: false, responseStream: false, ...raw } }, 'NoCert');

  it('the route CA, client certificate and servername: the call succeeds', async () => {
    const c = new EchoClient(`127.0.0.1:${proxy.port}`, grpc.credentials.createInsecure());
    const answer = await new Promise<{ err: grpc.ServiceError | null; value?: Buffer }>((resolve) => c.unary(Buffer.from('over tls'), new grpc.Metadata(), (err: grpc.ServiceError | null, value?: Buffer) => resolve({ err, value })));
    c.close();
    expect(answer.err).toBeNull();
    expect(answer.value!.toString()).toBe('echo:over tls');
  });

  it('without the client certificate: UNAVAILABLE (14), the upstream saw no call', async () => {
    const before = grpcTls.calls.length;
    const c = new NoCert(`127.0.0.1:${proxy.port}`, grpc.credentials.createInsecure());
    const err = await new Promise<grpc.ServiceError>((resolve) => (c as unknown as { unary: (...a: unknown[]) => void }).unary(Buffer.from('x'), new grpc.Metadata(), (e: grpc.ServiceError) => resolve(e)));
    c.close();
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    expect(grpcTls.calls.length).toBe(before);
  });
});

describe('config errors', () => {
  const load = async (tls: string, upstream = 'https://127.0.0.1:1'): Promise<string[]> => {
    const file = writeConfig(`routes:\n  - { name: r, match: { pathPrefix: / }, upstream: "${upstream}", auth: [none], tls: ${tls} }\n`);
    try {
      await loadConfig(file, {});
      return [];
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as ConfigError).problems.map((p) => `${p.path}: ${p.message}`);
    }
  };

  it('a missing file is refused with its YAML path', async () => {
    expect(await load('{ caFile: /nonexistent/ca.crt }')).toEqual(['routes[0].tls.caFile: cannot read /nonexistent/ca.crt: ENOENT']);
  });

  it('a file that is not a certificate, a key that does not match', async () => {
    const notPem = join(pki.dir, 'not-a-cert.txt');
    writeFileSync(notPem, 'hello');
    expect((await load(`{ caFile: "${notPem}" }`))[0]).toMatch(/^routes\[0\]\.tls\.caFile: is not a PEM certificate/);
    expect((await load(`{ certFile: "${client.cert}", keyFile: "${server.key}" }`))[0]).toMatch(/^routes\[0\]\.tls\.keyFile: does not match certFile/);
  });

  it('certFile without keyFile, and tls on an http:// upstream', async () => {
    expect((await load(`{ certFile: "${client.cert}" }`)).join('\n')).toMatch(/routes\[0\]\.tls\.keyFile: set certFile and keyFile together/);
    expect((await load(`{ caFile: "${pki.ca}" }`, 'http://127.0.0.1:1')).join('\n')).toMatch(/routes\[0\]\.tls: applies only to an https:\/\/ upstream/);
  });

  it('has no switch that turns verification off', async () => {
    expect((await load('{ rejectUnauthorized: false }')).join('\n')).toMatch(/rejectUnauthorized/);
  });
});
