/**
 * WebSocket upgrades through the proxy against a real (hand-written RFC 6455)
 * upstream: the 101 handshake, frames both ways (including bytes sent with
 * the handshake and a server-first message), the upgrade request the upstream
 * sees (sanitized, with injected X-Request-ID / X-Forwarded-*), and refusals
 * written as JSON on the raw socket before any 101 — with the upstream seeing
 * nothing.
 */
import { randomBytes } from 'node:crypto';
import { createConnection } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../src/auth/api-key-format.js';
import { closedPort, countHeader, errorCodeOf, headerNames, headerValues, RawConnection, startRawUpstream, waitFor, type ParsedResponse } from '../helpers/fwd-net.js';
import { acceptFor, encodeFrame, newKey, OP, readFrame, startWsUpstream, upgradeRequest, type WsUpstream } from '../helpers/fwd-ws.js';
import { startProxy, type RunningProxy } from '../helpers/servers.js';

const IDENTITY = ['X-Tenant-ID', 'X-Tenant-Plan', 'X-Project-ID', 'X-Api-Key-ID', 'X-Subject', 'X-Scopes', 'X-Roles', 'X-Tenant-Assertion'];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const key = generateApiKey({ env: 'live', id: 'ak_ws' });

let ws: WsUpstream;
let careless: WsUpstream;
let silent: Awaited<ReturnType<typeof startRawUpstream>>;
let proxy: RunningProxy;

beforeAll(async () => {
  ws = await startWsUpstream();
  careless = await startWsUpstream({ ignoreEnd: true });
  const refused = await closedPort();
  // Accepts the upgrade request and never answers it.
  silent = await startRawUpstream(() => {});
  proxy = await startProxy(`
plans:
  pro: { rate: null }
tenants:
  - { id: acme, plan: pro }
apiKeys:
  - { id: ak_ws, tenant: acme, hash: "${key.hash}", scopes: ["*"] }
routes:
  - { name: ws, match: { pathPrefix: /ws }, upstream: "${ws.url}", auth: [none] }
  - { name: ws-secure, match: { pathPrefix: /secure-ws }, upstream: "${ws.url}", auth: [apiKey] }
  - { name: ws-careless, match: { pathPrefix: /careless-ws }, upstream: "${careless.url}", auth: [none] }
  - { name: ws-off, match: { pathPrefix: /no-ws }, upstream: "${ws.url}", auth: [none], websocket: false }
  - { name: ws-refused, match: { pathPrefix: /refused-ws }, upstream: "http://127.0.0.1:${refused}", auth: [none] }
  - { name: ws-silent, match: { pathPrefix: /silent-ws }, upstream: "${silent.url}", auth: [none], timeoutMs: 500 }
`);
});

afterAll(async () => {
  await proxy?.close();
  await ws?.close();
  await careless?.close();
  await silent?.close();
});

beforeEach(() => {
  ws.upgrades.length = 0;
  ws.plainRequests = 0;
});

/** Opens a connection and sends an upgrade request; returns the connection and the answer head. */
async function upgrade(path: string, extra = '', firstBytes?: Buffer): Promise<{ conn: RawConnection; res: ParsedResponse | null; key: string }> {
  const k = newKey();
  const conn = await RawConnection.open(proxy.port);
  const req = Buffer.from(upgradeRequest(path, k, extra), 'latin1');
  await conn.write(firstBytes ? Buffer.concat([req, firstBytes]) : req);
  const res = await conn.readResponse();
  return { conn, res, key: k };
}

describe('an upgrade on an auth-none route', () => {
  it('gets a valid 101 and frames flow both ways (masked text, 16-bit and 64-bit binary, ping)', async () => {
    const { conn, res, key: k } = await upgrade('/ws/chat?room=1');
    expect(res?.status).toBe(101);
    expect(res!.headers.upgrade?.toLowerCase()).toBe('websocket');
    expect(res!.headers['sec-websocket-accept']).toBe(acceptFor(k));
    expect(res!.headers['x-upstream']).toBe('ws');

    await conn.write(encodeFrame('hi there'));
    expect((await readFrame(conn))?.payload.toString()).toBe('echo:hi there');

    const medium = randomBytes(1000);
    await conn.write(encodeFrame(medium, OP.binary));
    expect((await readFrame(conn))?.payload.equals(medium)).toBe(true);

    const big = randomBytes(200_000);
    await conn.write(encodeFrame(big, OP.binary));
    const echoed = await readFrame(conn);
    expect(echoed?.opcode).toBe(OP.binary);
    expect(echoed?.payload.equals(big)).toBe(true);

    await conn.write(encodeFrame('p', OP.ping));
    expect((await readFrame(conn))?.opcode).toBe(OP.pong);

    // Close handshake: the upstream answers the close and the tunnel ends.
    await conn.write(encodeFrame(Buffer.from([0x03, 0xe8]), OP.close));
    expect((await readFrame(conn))?.opcode).toBe(OP.close);
    expect(await conn.waitClosed(5000)).toBe(true);
    conn.destroy();

    expect(ws.upgrades).toHaveLength(1);
    expect(ws.upgrades[0]!.url).toBe('/ws/chat?room=1');
    expect(ws.upgrades[0]!.frames.map((f) => f.opcode)).toEqual([OP.text, OP.binary, OP.binary, OP.ping, OP.close]);
    expect(ws.upgrades[0]!.frames.every((f) => f.masked)).toBe(true);
  });

  it('a frame sent together with the handshake (in the same packet) reaches the upstream', async () => {
    const { conn, res } = await upgrade('/ws/eager', '', encodeFrame('early bird'));
    expect(res?.status).toBe(101);
    expect((await readFrame(conn))?.payload.toString()).toBe('echo:early bird');
    conn.destroy();
    expect(ws.upgrades[0]!.frames[0]!.payload.toString()).toBe('early bird');
  });

  it('the upstream can speak first', async () => {
    const { conn, res } = await upgrade('/ws/greet');
    expect(res?.status).toBe(101);
    const first = await readFrame(conn);
    conn.destroy();
    expect(first?.masked).toBe(false);
    expect(first?.payload.toString()).toBe('hello from upstream');
  });

  it('the upgrade request the upstream sees is sanitized and carries the injected headers', async () => {
    const spoof = IDENTITY.flatMap((n) => [`${n}: spoofed\r\n`, `${n.toLowerCase()}: spoofed\r\n`, `${n.replaceAll('-', '_')}: spoofed\r\n`]).join('');
    const extra =
      `${spoof}X-Request-ID: ws-req-1\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: evil.test\r\nX-Forwarded-Proto: https\r\n` +
      'Authorization: Bearer secret-token\r\nX-API-Key: secret-key\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\nSec-WebSocket-Protocol: chat\r\n';
    const { conn, res } = await upgrade('/ws/a/../chat?x=%2F', extra);
    conn.destroy();
    expect(res?.status).toBe(101);
    expect(ws.upgrades).toHaveLength(1);
    const rec = ws.upgrades[0]!;
    expect(rec.url).toBe('/ws/chat?x=%2F');
    const names = headerNames(rec.rawHeaders);
    for (const n of IDENTITY) expect(names, n).not.toContain(n.toLowerCase());
    expect(rec.rawHeaders.join('\n')).not.toMatch(/spoofed|6\.6\.6\.6|evil\.test|secret-token|secret-key/);
    expect(names).not.toContain('authorization');
    expect(names).not.toContain('x-api-key');
    expect(headerValues(rec.rawHeaders, 'x-request-id')).toEqual(['ws-req-1']);
    expect(headerValues(rec.rawHeaders, 'x-forwarded-for')).toEqual(['127.0.0.1']);
    expect(headerValues(rec.rawHeaders, 'x-forwarded-proto')).toEqual(['http']);
    expect(headerValues(rec.rawHeaders, 'x-forwarded-host')).toEqual(['x']);
    expect(rec.headers.traceparent).toBe('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    expect(rec.headers['sec-websocket-protocol']).toBe('chat');
    expect(rec.headers.upgrade?.toLowerCase()).toBe('websocket');
    expect(countHeader(rec.rawHeaders, 'host')).toBe(1);
  });

  it('a malformed client request id is replaced on the upgrade as well', async () => {
    const { conn, res } = await upgrade('/ws/rid', `X-Request-ID: ${'z'.repeat(300)}\r\n`);
    conn.destroy();
    expect(res?.status).toBe(101);
    expect(headerValues(ws.upgrades[0]!.rawHeaders, 'x-request-id')).toHaveLength(1);
    expect(ws.upgrades[0]!.headers['x-request-id']).toMatch(UUID);
  });

  it('the 101 carries the X-Request-ID (SPEC §4: every response does)', async () => {
    const { conn, res } = await upgrade('/ws/rid101', 'X-Request-ID: ws-req-101\r\n');
    conn.destroy();
    expect(res?.status).toBe(101);
    expect(res!.headers['x-request-id']).toBe('ws-req-101');
  });

  it('Connection: names in the client upgrade cannot strip the injected headers', async () => {
    const k = newKey();
    const conn = await RawConnection.open(proxy.port);
    await conn.write(
      `GET /ws/conn HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade, X-Request-ID, X-Forwarded-For, x-foo\r\nX-Foo: 1\r\nSec-WebSocket-Key: ${k}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    const res = await conn.readResponse();
    conn.destroy();
    expect(res?.status).toBe(101);
    const rec = ws.upgrades[0]!;
    expect(headerValues(rec.rawHeaders, 'x-request-id')).toHaveLength(1);
    expect(headerValues(rec.rawHeaders, 'x-forwarded-for')).toEqual(['127.0.0.1']);
    expect(headerNames(rec.rawHeaders)).not.toContain('x-foo');
  });

  it('when the client goes away the upstream side of the tunnel is closed too', async () => {
    const { conn, res } = await upgrade('/ws/bye');
    expect(res?.status).toBe(101);
    await conn.write(encodeFrame('x'));
    expect(await readFrame(conn)).not.toBeNull();
    conn.destroy();
    await waitFor(() => ws.upgrades[0]!.closed, 'the upstream socket to close');
  });

  it('when the upstream goes away the client connection is closed too', async () => {
    const { conn, res } = await upgrade('/ws/drop');
    expect(res?.status).toBe(101);
    await waitFor(() => ws.upgrades.length === 1, 'the upstream to get the upgrade');
    ws.upgrades[0]!.socket.destroy();
    expect(await conn.waitClosed(5000)).toBe(true);
    conn.destroy();
  });
});

describe('closed tunnels let go of both sockets (issue #33 item 7)', () => {
  it('clients that close their tunnels: every upstream socket is closed, even when the upstream never closes its side', async () => {
    const before = careless.upgrades.length;
    const conns: RawConnection[] = [];
    for (let i = 0; i < 5; i++) {
      const { conn, res } = await upgrade(`/careless-ws/t${i}`);
      expect(res?.status).toBe(101);
      conns.push(conn);
    }
    await waitFor(() => careless.upgrades.length === before + 5, 'the upstream to get every upgrade');
    for (const c of conns) c.socket.end();
    const mine = careless.upgrades.slice(before);
    await waitFor(() => mine.every((u) => u.ended), 'the proxy to end its side of every tunnel');
    await waitFor(() => mine.every((u) => u.closed), 'the upstream to see every socket closed', 5000);
    for (const c of conns) c.destroy();
  });

  it('an upstream that closes while the client keeps its side open: the proxy lets go of the client socket too', async () => {
    const k = newKey();
    const client = createConnection({ port: proxy.port, host: '127.0.0.1', allowHalfOpen: true });
    client.on('error', () => {});
    let ended = false;
    client.on('end', () => (ended = true)); // and never end ours
    client.on('data', () => {});
    client.write(upgradeRequest('/ws/half', k));
    const before = ws.upgrades.length;
    await waitFor(() => ws.upgrades.length === before + 1, 'the upstream to get the upgrade');
    await waitFor(() => proxy.gate.state.tunnels.size > 0, 'the tunnel to open');
    ws.upgrades[before]!.socket.destroy();
    await waitFor(() => ended, 'the proxy to end the client side');
    await waitFor(() => proxy.gate.state.tunnels.size === 0, 'the proxy to close the client socket', 5000);
    client.destroy();
  });
});

describe('refused upgrades: JSON on the raw socket, never a 101, nothing upstream', () => {
  async function refused(path: string, extra = ''): Promise<ParsedResponse> {
    const { conn, res } = await upgrade(path, extra);
    const closed = await conn.waitClosed(3000);
    conn.destroy();
    expect(res).not.toBeNull();
    expect(res!.status).not.toBe(101);
    expect(res!.headers['content-type']).toMatch(/^application\/json/);
    expect(closed).toBe(true);
    expect(ws.upgrades).toHaveLength(0);
    expect(ws.plainRequests).toBe(0);
    return res!;
  }

  it('auth: [apiKey] without a credential → 401 unauthenticated with WWW-Authenticate', async () => {
    const res = await refused('/secure-ws/chat', 'X-Tenant-ID: acme\r\n');
    expect(res.status).toBe(401);
    expect(errorCodeOf(res)).toBe('unauthenticated');
    expect(res.headers['www-authenticate']).toMatch(/^Bearer /);
    expect(res.headers['x-request-id']).toMatch(UUID);
  });

  it('auth: [apiKey] with a made-up key → 401 unauthenticated', async () => {
    const res = await refused('/secure-ws/chat', 'X-API-Key: tg_live_ak_ws_000000000000000000000000000000\r\n');
    expect(res.status).toBe(401);
    expect(errorCodeOf(res)).toBe('unauthenticated');
  });

  it('a route with websocket: false → 400 bad_request', async () => {
    const res = await refused('/no-ws/chat');
    expect(res.status).toBe(400);
    expect(errorCodeOf(res)).toBe('bad_request');
  });

  it('an unknown path → 404 no_route', async () => {
    const res = await refused('/nowhere/chat', 'X-Request-ID: ws-404\r\n');
    expect(res.status).toBe(404);
    expect(errorCodeOf(res)).toBe('no_route');
    expect(res.headers['x-request-id']).toBe('ws-404');
  });

  it('a traversal out of the ws prefix → routed by the normalised path (404), nothing upstream', async () => {
    const res = await refused('/ws/../nowhere');
    expect(res.status).toBe(404);
    expect(errorCodeOf(res)).toBe('no_route');
  });

  it('an encoded slash → 400 bad_request', async () => {
    const res = await refused('/ws%2Fchat');
    expect(res.status).toBe(400);
    expect(errorCodeOf(res)).toBe('bad_request');
  });

  it('an upstream that refuses the connection → 502 upstream_unavailable', async () => {
    const { conn, res } = await upgrade('/refused-ws/chat');
    conn.destroy();
    expect(res?.status).toBe(502);
    expect(errorCodeOf(res!)).toBe('upstream_unavailable');
  });

  it('an upstream that never answers the upgrade within timeoutMs → 504 upstream_timeout', async () => {
    const before = silent.connections.length;
    const { conn, res } = await upgrade('/silent-ws/chat');
    conn.destroy();
    expect(res?.status).toBe(504);
    expect(errorCodeOf(res!)).toBe('upstream_timeout');
    expect(silent.connections.slice(before)[0]!.received.toString('latin1')).toMatch(/^GET \/silent-ws\/chat HTTP\/1\.1\r\n/);
  });
});

describe('an upgrade on an auth route with a valid key', () => {
  it('passes, and the upstream sees the proxy identity only', async () => {
    const { conn, res } = await upgrade('/secure-ws/chat', `Authorization: Bearer ${key.key}\r\nX-Tenant-ID: spoofed\r\nx_tenant_id: spoofed\r\n`);
    expect(res?.status).toBe(101);
    await conn.write(encodeFrame('authed'));
    expect((await readFrame(conn))?.payload.toString()).toBe('echo:authed');
    conn.destroy();
    const rec = ws.upgrades[0]!;
    expect(headerValues(rec.rawHeaders, 'x-tenant-id')).toEqual(['acme']);
    expect(headerValues(rec.rawHeaders, 'x-api-key-id')).toEqual(['ak_ws']);
    expect(rec.rawHeaders.join('\n')).not.toContain('spoofed');
    expect(rec.rawHeaders.join('\n')).not.toContain(key.key);
  });
});
