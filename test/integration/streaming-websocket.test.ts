/**
 * Bodies stream, they are never buffered: a 100 MB download and a 50 MB upload
 * pass byte-exact through the proxy (a child process) while its peak RSS stays
 * flat. And WebSocket upgrades: handshake and tunnel after the same stages as
 * HTTP, identity headers stripped, refused before any 101 when not admitted.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawJson, rawRequest, spawnProxy, startProxy, startUpstream, type RunningProxy, type SpawnedProxy, type Upstream } from '../helpers/servers.js';

const MB = 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 'tenantgate-');

function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

describe('streaming through a proxy process', () => {
  let upstream: Upstream;
  let proxy: SpawnedProxy;
  beforeAll(async () => {
    upstream = await startUpstream(
      (req, res) => {
        if (req.method === 'GET') {
          const total = Number(new URL(req.url!, 'http://x').searchParams.get('mb')) * MB;
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total });
          let sent = 0;
          const pump = () => {
            while (sent < total) {
              sent += CHUNK.length;
              if (!res.write(CHUNK)) return void res.once('drain', pump);
            }
            res.end();
          };
          pump();
          return;
        }
        const hash = createHash('sha256');
        let bytes = 0;
        req.on('data', (c: Buffer) => {
          bytes += c.length;
          hash.update(c);
        });
        req.on('end', () => res.end(JSON.stringify({ bytes, sha256: hash.digest('hex') })));
      },
      { stream: true },
    );
    proxy = await spawnProxy(`routes:\n  - { name: files, match: { pathPrefix: / }, upstream: "${upstream.url}", auth: [none] }\n`);
    // Warm up (JIT, pools, first buffers), so the measurements below see streaming, not start-up.
    const warm = await fetch(`${proxy.url}/download?mb=20`);
    for await (const _chunk of warm.body!) {
      /* drain */
    }
  });
  afterAll(async () => {
    await proxy.stop();
    await upstream.close();
  });

  it('downloads 100 MB byte-exact with flat proxy memory', async () => {
    const before = peakRssMb(proxy.child.pid!);
    const res = await fetch(`${proxy.url}/download?mb=100`);
    let bytes = 0;
    const expected = createHash('sha256');
    const got = createHash('sha256');
    for await (const chunk of res.body!) {
      bytes += chunk.length;
      got.update(chunk);
    }
    for (let i = 0; i < (100 * MB) / CHUNK.length; i++) expected.update(CHUNK);
    expect(bytes).toBe(100 * MB);
    expect(got.digest('hex')).toBe(expected.digest('hex'));
    expect(peakRssMb(proxy.child.pid!) - before).toBeLessThan(64);
  });

  it('uploads 50 MB byte-exact with flat proxy memory', async () => {
    const before = peakRssMb(proxy.child.pid!);
    const expected = createHash('sha256');
    const answer = await new Promise<{ bytes: number; sha256: string }>((resolve, reject) => {
      const req = request(`${proxy.url}/upload`, { method: 'POST', headers: { 'content-length': 50 * MB } });
      req.on('response', (res: IncomingMessage) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve(JSON.parse(text)));
      });
      req.on('error', reject);
      let sent = 0;
      const pump = () => {
        while (sent < 50 * MB) {
          sent += CHUNK.length;
          expected.update(CHUNK);
          if (!req.write(CHUNK)) return void req.once('drain', pump);
        }
        req.end();
      };
      pump();
    });
    expect(answer).toEqual({ bytes: 50 * MB, sha256: expected.digest('hex') });
    expect(peakRssMb(proxy.child.pid!) - before).toBeLessThan(64);
  });

  it('a client that stops reading does not make the proxy buffer the body', async () => {
    const before = peakRssMb(proxy.child.pid!);
    await new Promise<void>((resolve) => {
      const req = request(`${proxy.url}/download?mb=200`, (res) => {
        res.pause();
        // Give the proxy ample time to (wrongly) buffer 200 MB, then let go.
        setTimeout(() => {
          res.destroy();
          resolve();
        }, 1500);
      });
      req.end();
    });
    expect(peakRssMb(proxy.child.pid!) - before).toBeLessThan(64);
  });
});

const WS_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

describe('WebSocket upgrades', () => {
  let upstream: Upstream;
  let proxy: RunningProxy;
  const seen: IncomingMessage['headers'][] = [];
  beforeAll(async () => {
    upstream = await startUpstream();
    upstream.server.on('upgrade', (req: IncomingMessage, socket) => {
      seen.push(req.headers);
      const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
      socket.on('data', (d: Buffer) => socket.write(Buffer.concat([Buffer.from('echo:'), d])));
      socket.on('end', () => socket.end());
    });
    proxy = await startProxy(`
routes:
  - { name: chat, match: { pathPrefix: /chat }, upstream: "${upstream.url}", auth: [none] }
  - { name: private, match: { pathPrefix: /private }, upstream: "${upstream.url}", auth: [apiKey] }
  - { name: nows, match: { pathPrefix: /nows }, upstream: "${upstream.url}", auth: [none], websocket: false }
`);
  });
  afterAll(async () => {
    await proxy.close();
    await upstream.close();
  });

  const upgrade = (path: string, extra = '') =>
    `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${WS_KEY}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`;

  it('tunnels both ways after the handshake, with identity headers stripped and request id injected', async () => {
    const socket = connect(proxy.port, '127.0.0.1');
    let text = '';
    const echoed = new Promise<void>((resolve) => {
      socket.on('data', (d: Buffer) => {
        text += d.toString();
        if (text.includes('\r\n\r\n') && !text.includes('echo:')) socket.write('ping');
        if (text.includes('echo:ping')) resolve();
      });
    });
    socket.write(upgrade('/chat/room', 'X-Tenant-ID: evil\r\nX_Roles: admin\r\nX-Request-ID: ws-1\r\n'));
    await echoed;
    socket.destroy();
    expect(text).toMatch(/^HTTP\/1\.1 101/);
    expect(text).toContain('sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
    const h = seen.at(-1)!;
    expect(h['x-tenant-id']).toBeUndefined();
    expect(h['x_roles']).toBeUndefined();
    expect(h['x-request-id']).toBe('ws-1');
    expect(h['x-forwarded-for']).toBe('127.0.0.1');
  });

  it.each([
    ['/private/room', 401, 'unauthenticated'],
    ['/nows/room', 400, 'bad_request'],
    ['/nowhere', 404, 'no_route'],
  ])('%s is refused before any 101 (%i %s)', async (path, status, code) => {
    const before = seen.length;
    const res = await rawRequest(proxy.port, upgrade(path));
    expect(res.status).toBe(status);
    expect((rawJson(res) as { error: { code: string } }).error.code).toBe(code);
    expect(seen.length).toBe(before);
  });
});
