/**
 * Circuit breakers and idle timeouts (SPEC §15, issue #33 item 3), against a
 * real upstream on loopback with real slow clients on raw sockets. The
 * upstream's pool is small (4 connections, 4 pending; half of each per route,
 * a quarter per tenant) so the starvation the issue found at 512 sockets shows
 * with a handful. Assertions are on statuses, error codes and what the
 * upstream did or did not receive.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../src/auth/api-key-format.js';
import { errorCodeOf, RawConnection, send, sleep, startTrackingUpstream, trickleUpload, waitFor, type Tracked } from '../helpers/fwd-net.js';
import { startProxy, type RunningProxy, type Upstream } from '../helpers/servers.js';

const acme = generateApiKey({ env: 'live', id: 'ak_acme' });
const globex = generateApiKey({ env: 'live', id: 'ak_globex' });

let upstream: Upstream & { tracked: Tracked[] };
let proxy: RunningProxy;

beforeAll(async () => {
  upstream = await startTrackingUpstream((req, res) => {
    const path = req.url!;
    if (path.startsWith('/api/hang') || path.startsWith('/quick-head')) return; // never answers
    if (path.startsWith('/stall')) {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 1000 });
      res.write('partial');
      return; // and never the rest
    }
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`ok ${path}`);
    });
  });
  proxy = await startProxy(`
plans:
  pro: { rate: null }
tenants:
  - { id: acme, plan: pro }
  - { id: globex, plan: pro }
apiKeys:
  - { id: ak_acme, tenant: acme, hash: "${acme.hash}", scopes: ["*"] }
  - { id: ak_globex, tenant: globex, hash: "${globex.hash}", scopes: ["*"] }
upstreams:
  - { origin: "${upstream.url}", maxConnections: 4, maxPending: 4, routeShare: 0.5, tenantShare: 0.25 }
routes:
  - { name: upload, match: { pathPrefix: /upload }, upstream: "${upstream.url}", auth: [none], idleTimeoutMs: 1500, queueTimeoutMs: 600 }
  - { name: api, match: { pathPrefix: /api }, upstream: "${upstream.url}", auth: [apiKey], queueTimeoutMs: 600 }
  - { name: stall, match: { pathPrefix: /stall }, upstream: "${upstream.url}", auth: [none], idleTimeoutMs: 800 }
  - { name: quick-head, match: { pathPrefix: /quick-head }, upstream: "${upstream.url}", auth: [none], timeoutMs: 800, idleTimeoutMs: 2000, maxBodyBytes: 100000 }
`);
});

afterAll(async () => {
  await proxy?.close();
  await upstream?.close();
});

/** Every test leaves the pool empty for the next: nothing in flight, nothing held upstream. */
afterEach(async () => {
  await waitFor(() => proxy.gate.state.inflight === 0, 'the proxy to have nothing in flight', 10_000);
  await waitFor(() => upstream.tracked.every((t) => t.ended || t.aborted), 'the upstream to have nothing open', 10_000);
});

function since(before: number, prefix: string): Tracked[] {
  return upstream.tracked.slice(before).filter((t) => t.url.startsWith(prefix));
}

describe('a pool held by slow uploads (scaled down from 520 trickling connections)', () => {
  it('six trickling uploads on a public route hold only its share; an authenticated GET on another route still gets through', async () => {
    const before = upstream.tracked.length;
    const head = (i: number) => `POST /upload/${i} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n`;
    const trickles = [];
    for (let i = 0; i < 6; i++) trickles.push(await trickleUpload(proxy.port, head(i), 200));
    try {
      await waitFor(() => since(before, '/upload').length === 2, 'the upstream to get the route share of uploads');

      const get = await send(proxy.port, { path: '/api/orders', headers: { authorization: `Bearer ${acme.key}` }, timeoutMs: 5000 });
      expect(get.status).toBe(200);
      expect(get.body.toString()).toBe('ok /api/orders');

      // The four without a connection: 503 upstream_overloaded, at once (queue share full) or after queueTimeoutMs.
      const answers = await Promise.all(trickles.map((t) => t.conn.readResponse({ timeoutMs: 3000 })));
      const refused = answers.filter((r) => r !== null);
      expect(refused).toHaveLength(4);
      for (const r of refused) {
        expect(r!.status).toBe(503);
        expect(errorCodeOf(r!)).toBe('upstream_overloaded');
        expect(r!.headers['retry-after']).toBe('1');
      }
      // The two holding connections are still streaming, and nothing else of the route reached the upstream.
      const held = since(before, '/upload');
      expect(held).toHaveLength(2);
      expect(held.every((t) => !t.aborted && !t.ended && t.bodyBytes > 0)).toBe(true);
    } finally {
      for (const t of trickles) t.stop();
    }
    await waitFor(() => since(before, '/upload').every((t) => t.aborted), 'the held uploads to be aborted upstream');
  });

  it('one tenant holds at most its share: its next request waits then gets 503, the one after at once; another tenant gets through', async () => {
    const before = upstream.tracked.length;
    const acmeGet = async (path: string) => {
      const conn = await RawConnection.open(proxy.port);
      await conn.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${acme.key}\r\n\r\n`);
      return conn;
    };
    const holding = await acmeGet('/api/hang/1');
    await waitFor(() => since(before, '/api/hang').length === 1, 'the upstream to get the first request');
    const queued = await acmeGet('/api/hang/2');
    await sleep(50);
    const third = await acmeGet('/api/hang/3');
    try {
      const other = await send(proxy.port, { path: '/api/orders', headers: { authorization: `Bearer ${globex.key}` }, timeoutMs: 5000 });
      expect(other.status).toBe(200);

      const thirdRes = await third.readResponse({ timeoutMs: 3000 });
      expect(thirdRes?.status).toBe(503);
      expect(errorCodeOf(thirdRes!)).toBe('upstream_overloaded');
      const queuedRes = await queued.readResponse({ timeoutMs: 3000 });
      expect(queuedRes?.status).toBe(503);
      expect(errorCodeOf(queuedRes!)).toBe('upstream_overloaded');
      expect(since(before, '/api/hang').map((t) => t.url)).toEqual(['/api/hang/1']);
    } finally {
      for (const c of [holding, queued, third]) c.destroy();
    }
  });

  it('a request waiting for a connection gets it when one frees up, before its queueTimeoutMs', async () => {
    const before = upstream.tracked.length;
    const trickles = [];
    for (let i = 0; i < 2; i++) trickles.push(await trickleUpload(proxy.port, `POST /upload/q${i} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n`, 200));
    try {
      await waitFor(() => since(before, '/upload').length === 2, 'the uploads to hold the route share');
      const waiting = send(proxy.port, { method: 'POST', path: '/upload/after', body: 'done', timeoutMs: 5000 });
      await sleep(100);
      trickles[0]!.stop();
      const res = await waiting;
      expect(res.status).toBe(200);
      expect(res.body.toString()).toBe('ok /upload/after');
    } finally {
      for (const t of trickles) t.stop();
    }
  });
  it('Expect: 100-continue while waiting for a connection: the 100 comes only once there is one', async () => {
    const before = upstream.tracked.length;
    const trickles = [];
    for (let i = 0; i < 2; i++) trickles.push(await trickleUpload(proxy.port, `POST /upload/e${i} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n`, 200));
    const conn = await RawConnection.open(proxy.port);
    try {
      await waitFor(() => since(before, '/upload').length === 2, 'the uploads to hold the route share');
      await conn.write('POST /upload/expect HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n');
      await sleep(300);
      expect(conn.pending.length).toBe(0);
      trickles[0]!.stop();
      await waitFor(() => conn.pending.toString('latin1').startsWith('HTTP/1.1 100 '), 'the 100 Continue', 3000);
      await conn.write('body');
      const res = await conn.readResponse({ timeoutMs: 3000 });
      expect(res?.interim).toEqual([100]);
      expect(res?.status).toBe(200);
      expect(res!.body.toString()).toBe('ok /upload/expect');
    } finally {
      conn.destroy();
      for (const t of trickles) t.stop();
    }
  });
});

describe('idle bodies (routes[].idleTimeoutMs)', () => {
  it('a request body that stops flowing → 408 request_timeout, and the upstream sees its request aborted', async () => {
    const before = upstream.tracked.length;
    const conn = await RawConnection.open(proxy.port);
    await conn.write('POST /upload/stops HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789');
    const res = await conn.readResponse({ timeoutMs: 5000 });
    expect(res?.status).toBe(408);
    expect(errorCodeOf(res!)).toBe('request_timeout');
    expect(await conn.waitClosed(2000)).toBe(true);
    conn.destroy();
    const [t] = since(before, '/upload/stops');
    await waitFor(() => t!.aborted, 'the upstream to see the request aborted');
    expect(t!.ended).toBe(false);
    expect(t!.bodyBytes).toBe(10);
  });

  it('a stalled chunked upload (metered: the route has a body limit) is timed by idleTimeoutMs, not the shorter timeoutMs: 408, not 504', async () => {
    const before = upstream.tracked.length;
    const conn = await RawConnection.open(proxy.port);
    await conn.write('POST /quick-head/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
    await sleep(1200);
    expect(conn.pending.length).toBe(0); // past timeoutMs (800): no 504, the upstream was never the slow one
    const res = await conn.readResponse({ timeoutMs: 5000 });
    conn.destroy();
    expect(res?.status).toBe(408);
    expect(errorCodeOf(res!)).toBe('request_timeout');
    const [t] = since(before, '/quick-head');
    await waitFor(() => t!.aborted, 'the upstream to see the request aborted');
    expect(t!.ended).toBe(false);
  });

  it('a body that keeps moving, however slowly, is not cut', async () => {
    const conn = await RawConnection.open(proxy.port);
    const body = 'abcdefghijkl';
    await conn.write(`POST /upload/slow HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n`);
    // 12 bytes over ~2.4 s: longer than the route's idleTimeoutMs (1.5 s) in all, never idle that long.
    for (const c of body) {
      await conn.write(c);
      await sleep(200);
    }
    const res = await conn.readResponse({ timeoutMs: 5000 });
    conn.destroy();
    expect(res?.status).toBe(200);
    expect(res!.body.toString()).toBe('ok /upload/slow');
  });

  it('a response body that stalls after its head: the client connection is cut, not left hanging, and the upstream response abandoned', async () => {
    const before = upstream.tracked.length;
    const conn = await RawConnection.open(proxy.port);
    await conn.write('GET /stall/x HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(await conn.waitClosed(5000)).toBe(true);
    const text = conn.pending.toString('latin1');
    conn.destroy();
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(text.endsWith('partial')).toBe(true);
    const [t] = since(before, '/stall');
    await waitFor(() => t!.aborted, 'the upstream response to be abandoned');
  });
});
