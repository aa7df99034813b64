/**
 * TLS on the data port (`listen.tls`): openssl-made certificates, real
 * clients (curl with ALPN, Node's https and http2 clients, a WebSocket over
 * TLS), `minVersion`, client certificates (`caFile`), and certificate
 * rotation the way Kubernetes and cert-manager do it (a symlink swap in the
 * mounted directory) while a client keeps opening new connections: no
 * request fails, new connections get the new certificate, open ones keep
 * theirs, and a bad new pair is refused while the old one keeps serving.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, symlinkSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { connect as tlsConnect, type PeerCertificate, type TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTenantgate } from '../../src/app.js';
import { makePki, type CertPair, type Pki } from '../helpers/certs.js';
import { waitFor } from '../helpers/fwd-net.js';
import { decodeFrame, encodeFrame, newKey, OP, startWsUpstream, upgradeRequest, type WsUpstream } from '../helpers/fwd-ws.js';
import { startProxy, startUpstream, withTestDefaults, writeConfig, type RunningProxy, type Upstream } from '../helpers/servers.js';

const run = promisify(execFile);

let pki: Pki;
let server: CertPair;
let upstream: Upstream;
let ws: WsUpstream;

beforeAll(async () => {
  pki = await makePki();
  server = await pki.issue('server');
  upstream = await startUpstream();
  ws = await startWsUpstream();
});

afterAll(async () => {
  await Promise.all([upstream?.close(), ws?.close()]);
});

function routes(): string {
  return `routes:
  - { name: public, match: { pathPrefix: /public }, upstream: "${upstream.url}", auth: [none] }
  - { name: ws, match: { pathPrefix: /ws }, upstream: "${ws.url}", auth: [none] }
`;
}

function tlsConfig(tls: string, extra = ''): string {
  return `listen: { host: 127.0.0.1, port: 0, tls: ${tls}${extra} }\n${routes()}`;
}

/** A Kubernetes Secret volume: files reached through `..data`, a symlink swapped atomically on update. */
class SecretVolume {
  readonly dir = mkdtempSync(join(tmpdir(), 'tg-secret-'));
  private version = 0;

  constructor(pair: CertPair) {
    this.put(pair);
    symlinkSync('..data/tls.crt', join(this.dir, 'tls.crt'));
    symlinkSync('..data/tls.key', join(this.dir, 'tls.key'));
  }

  get cert(): string {
    return join(this.dir, 'tls.crt');
  }

  get key(): string {
    return join(this.dir, 'tls.key');
  }

  /** What the kubelet does: write a new timestamped directory, point `..data` at it with one rename. */
  put(pair: CertPair): void {
    const version = `..v${++this.version}`;
    mkdirSync(join(this.dir, version));
    copyFileSync(pair.cert, join(this.dir, version, 'tls.crt'));
    copyFileSync(pair.key, join(this.dir, version, 'tls.key'));
    symlinkSync(version, join(this.dir, '..data_tmp'));
    renameSync(join(this.dir, '..data_tmp'), join(this.dir, '..data'));
  }
}

/** One GET on a new TLS connection; resolves with the status and the certificate the server showed. */
function getOnce(port: number, path: string, opts: { cert?: CertPair } = {}): Promise<{ status: number; serial: string; body: string; alpn: string | false | null }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        servername: 'localhost',
        ca: readFileSync(pki.ca),
        agent: false,
        cert: opts.cert ? readFileSync(opts.cert.cert) : undefined,
        key: opts.cert ? readFileSync(opts.cert.key) : undefined,
      },
      (res) => {
        const socket = res.socket as TLSSocket;
        const serial = socket.getPeerCertificate().serialNumber;
        const alpn = socket.alpnProtocol;
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, serial, body, alpn }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function serialOf(file: string): Promise<string> {
  return run('openssl', ['x509', '-in', file, '-noout', '-serial']).then(({ stdout }) => stdout.trim().replace(/^serial=/, '').toUpperCase());
}

describe('TLS with HTTP/2 (ALPN h2 and http/1.1)', () => {
  let proxy: RunningProxy;
  let volume: SecretVolume;
  const logLines: string[] = [];

  beforeAll(async () => {
    volume = new SecretVolume(server);
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        logLines.push(...chunk.toString().split('\n').filter((l) => l !== ''));
        cb();
      },
    });
    proxy = await startProxy(tlsConfig(`{ certFile: "${volume.cert}", keyFile: "${volume.key}" }`, ', http2: true'), {}, pino({ level: 'info' }, sink));
  });

  afterAll(async () => {
    await proxy?.close();
  });

  it('curl --http2 negotiates h2 by ALPN and is served through the pipeline', async () => {
    upstream.requests.length = 0;
    const { stdout } = await run('curl', ['-sS', '-i', '--http2', '--cacert', pki.ca, `https://localhost:${proxy.port}/public/a`]);
    expect(stdout).toMatch(/^HTTP\/2 200/);
    expect(upstream.requests[0]!.headers['x-forwarded-proto']).toBe('https');
  });

  it('curl --http1.1 over TLS is served by the HTTP/1.1 server', async () => {
    const { stdout } = await run('curl', ['-sS', '-i', '--http1.1', '--cacert', pki.ca, `https://localhost:${proxy.port}/public/a`]);
    expect(stdout).toMatch(/^HTTP\/1\.1 200/);
  });

  it("Node's http2 client over TLS", async () => {
    const session = h2connect(`https://localhost:${proxy.port}`, { ca: readFileSync(pki.ca) });
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const s = session.request({ ':path': '/public/node' });
        s.on('response', (h) => resolve(Number(h[':status'])));
        s.on('error', reject);
        s.resume();
      });
      expect(status).toBe(200);
      expect(session.alpnProtocol).toBe('h2');
    } finally {
      session.close();
    }
  });

  it('a client that does not trust the CA fails the handshake (the server sends its certificate, nothing else)', async () => {
    await expect(run('curl', ['-sS', '--http2', `https://localhost:${proxy.port}/public/a`])).rejects.toThrow(/certificate/i);
  });

  it('a WebSocket upgrade over TLS (HTTP/1.1) is tunnelled', async () => {
    const socket = tlsConnect({ host: '127.0.0.1', port: proxy.port, servername: 'localhost', ca: readFileSync(pki.ca), ALPNProtocols: ['http/1.1'] });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('secureConnect', resolve);
        socket.once('error', reject);
      });
      let buf = Buffer.alloc(0);
      socket.on('data', (c: Buffer) => (buf = Buffer.concat([buf, c])));
      socket.write(upgradeRequest('/ws/chat', newKey()));
      await waitFor(() => buf.includes('\r\n\r\n'), 'the 101');
      expect(buf.toString('latin1')).toMatch(/^HTTP\/1\.1 101/);
      buf = buf.subarray(buf.indexOf('\r\n\r\n') + 4);
      socket.write(encodeFrame('over tls', OP.text, true));
      await waitFor(() => decodeFrame(buf) !== null, 'the echo');
      expect(decodeFrame(buf)!.frame.payload.toString()).toBe('echo:over tls');
    } finally {
      socket.destroy();
    }
  });

  it('rotation under load: no failed request, new connections get the new certificate, an open connection keeps its own', async () => {
    const oldSerial = await serialOf(server.cert);
    const next = await pki.issue('server-next');
    const newSerial = await serialOf(next.cert);
    // An HTTP/2 connection made before the rotation.
    const kept: ClientHttp2Session = h2connect(`https://localhost:${proxy.port}`, { ca: readFileSync(pki.ca) });
    await new Promise<void>((resolve) => kept.once('connect', () => resolve()));
    const keptSerial = (kept.socket as TLSSocket).getPeerCertificate().serialNumber;
    expect(keptSerial.toUpperCase()).toBe(oldSerial);

    const seen = new Set<string>();
    let failures = 0;
    let requests = 0;
    let stop = false;
    const loop = (async () => {
      while (!stop) {
        try {
          const r = await getOnce(proxy.port, '/public/loop');
          requests++;
          if (r.status !== 200) failures++;
          seen.add(r.serial.toUpperCase());
        } catch {
          failures++;
        }
      }
    })();
    await waitFor(() => requests >= 20, 'requests before the rotation');
    volume.put(next);
    try {
      await waitFor(() => seen.has(newSerial), 'a new connection showing the new certificate', 20_000);
      const after = requests;
      await waitFor(() => requests >= after + 20, 'requests after the rotation');
    } finally {
      stop = true;
      await loop;
    }
    expect(failures).toBe(0);
    expect(seen).toEqual(new Set([oldSerial, newSerial]));
    expect(logLines.some((l) => l.includes('listen.tls: certificate reloaded'))).toBe(true);

    // The connection opened before still works, with the certificate it was made with.
    const status = await new Promise<number>((resolve, reject) => {
      const s = kept.request({ ':path': '/public/kept' });
      s.on('response', (h) => resolve(Number(h[':status'])));
      s.on('error', reject);
      s.resume();
    });
    expect(status).toBe(200);
    expect((kept.socket as TLSSocket).getPeerCertificate().serialNumber.toUpperCase()).toBe(oldSerial);
    kept.close();
  }, 60_000);

  it('a bad new pair (key of another certificate) is logged and the current certificate keeps serving', async () => {
    const current = (await getOnce(proxy.port, '/public/a')).serial.toUpperCase();
    const a = await pki.issue('server-a');
    const b = await pki.issue('server-b');
    const lines = logLines.length;
    volume.put({ cert: a.cert, key: b.key });
    await waitFor(() => logLines.slice(lines).some((l) => l.includes('the previous one keeps serving')), 'the refusal in the log', 20_000);
    const r = await getOnce(proxy.port, '/public/a');
    expect(r.status).toBe(200);
    expect(r.serial.toUpperCase()).toBe(current);
    const refusal = logLines.slice(lines).find((l) => l.includes('the previous one keeps serving'))!;
    expect(refusal).not.toContain('PRIVATE KEY');
  }, 30_000);
});

describe('TLS options', () => {
  it('without listen.http2, ALPN offers only http/1.1: curl --http2 falls back to HTTP/1.1', async () => {
    const proxy = await startProxy(tlsConfig(`{ certFile: "${server.cert}", keyFile: "${server.key}" }`));
    try {
      const { stdout } = await run('curl', ['-sS', '-i', '--http2', '--cacert', pki.ca, `https://localhost:${proxy.port}/public/a`]);
      expect(stdout).toMatch(/^HTTP\/1\.1 200/);
      const plain = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${proxy.port}/public/a`]).catch((e: { stdout: string }) => e);
      expect(plain.stdout).not.toBe('200');
    } finally {
      await proxy.close();
    }
  });

  it('minVersion TLSv1.3 refuses a TLS 1.2 client and serves a TLS 1.3 one', async () => {
    const proxy = await startProxy(tlsConfig(`{ certFile: "${server.cert}", keyFile: "${server.key}", minVersion: TLSv1.3 }`));
    try {
      await expect(run('curl', ['-sS', '--tlsv1.2', '--tls-max', '1.2', '--cacert', pki.ca, `https://localhost:${proxy.port}/public/a`])).rejects.toThrow();
      const { stdout } = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--tlsv1.3', '--cacert', pki.ca, `https://localhost:${proxy.port}/public/a`]);
      expect(stdout).toBe('200');
    } finally {
      await proxy.close();
    }
  });

  it('minVersion defaults to TLSv1.2: TLS 1.1 is refused', async () => {
    const proxy = await startProxy(tlsConfig(`{ certFile: "${server.cert}", keyFile: "${server.key}" }`));
    try {
      await expect(getWithMaxVersion(proxy.port, 'TLSv1.1')).rejects.toThrow();
      expect((await getOnce(proxy.port, '/public/a')).status).toBe(200);
    } finally {
      await proxy.close();
    }
  });

  it('caFile: a client certificate from that CA is required; none, or one from another CA, fails the handshake', async () => {
    const client = await pki.issue('client', { kind: 'client' });
    const stranger = await pki.issue('stranger', { kind: 'client', ca: 'other-ca' });
    const proxy = await startProxy(tlsConfig(`{ certFile: "${server.cert}", keyFile: "${server.key}", caFile: "${pki.ca}" }`, ', http2: true'));
    try {
      expect((await getOnce(proxy.port, '/public/a', { cert: client })).status).toBe(200);
      await expect(getOnce(proxy.port, '/public/a')).rejects.toThrow();
      await expect(getOnce(proxy.port, '/public/a', { cert: stranger })).rejects.toThrow();
      const { stdout } = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{http_version}', '--http2', '--cacert', pki.ca, '--cert', client.cert, '--key', client.key, `https://localhost:${proxy.port}/public/a`]);
      expect(stdout).toBe('200 2');
    } finally {
      await proxy.close();
    }
  });

  it('a missing certificate file or a key that does not match: the proxy refuses to start, naming the files', async () => {
    const other = await pki.issue('other');
    const missing = writeConfig(withTestDefaults(tlsConfig(`{ certFile: "${join(pki.dir, 'nope.crt')}", keyFile: "${server.key}" }`)));
    await expect(startTenantgate({ configFile: missing, logger: pino({ level: 'silent' }), watch: false })).rejects.toThrow(/nope\.crt/);
    const mismatched = writeConfig(withTestDefaults(tlsConfig(`{ certFile: "${server.cert}", keyFile: "${other.key}" }`)));
    await expect(startTenantgate({ configFile: mismatched, logger: pino({ level: 'silent' }), watch: false })).rejects.toThrow(/listen\.tls: .*server\.crt.*other\.key/);
  });
});

function getWithMaxVersion(port: number, maxVersion: 'TLSv1.1'): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca: readFileSync(pki.ca), minVersion: 'TLSv1', maxVersion });
    socket.once('secureConnect', () => {
      resolve(socket.getPeerCertificate());
      socket.destroy();
    });
    socket.once('error', reject);
  });
}
