/**
 * Forwarding, end to end against real servers on loopback: methods and bodies
 * (Content-Length, chunked, 100-continue), what the client gets back (status,
 * headers, hop-by-hop removal, X-Request-ID), the forwarding headers, route
 * matching (host, prefix, methods, 404/405), path rewriting, upstream failures
 * (timeout, refused, reset, client abort) and an auth route that fails closed.
 * Every refusal asserts the status, the JSON error code and what the upstream
 * received.
 */
import { createHash, randomBytes } from 'node:crypto';
import { request, type IncomingMessage, type ServerResponse } from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  closedPort,
  countHeader,
  errorCodeOf,
  headerValues,
  jsonOf,
  RawConnection,
  rawExchange,
  send,
  startRawUpstream,
  startTrackingUpstream,
  waitFor,
  type ErrorBody,
  type Tracked,
} from '../helpers/fwd-net.js';
import { startProxy, startUpstream, type RunningProxy, type Upstream } from '../helpers/servers.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface Echo {
  method: string;
  url: string;
  bytes: number;
  sha256: string;
  te: string | null;
  cl: string | null;
}

/** The main upstream: echoes what it received, or plays a status / header scenario named in the path. */
function echoHandler(req: IncomingMessage, res: ServerResponse, body: Buffer): void {
  const path = req.url!.split('?')[0]!;
  const status = /\/status\/(\d{3})$/.exec(path);
  if (status) {
    const code = Number(status[1]);
    const headers: Record<string, string | string[]> = { 'x-upstream-status': String(code) };
    if (code === 301) headers.location = '/elsewhere';
    if (code === 204 || code === 304) {
      res.writeHead(code, headers);
      res.end();
    } else {
      res.writeHead(code, { ...headers, 'content-type': 'text/plain' });
      res.end(`upstream says ${code}`);
    }
    return;
  }
  if (path.endsWith('/hop')) {
    res.writeHead(200, [
      'Content-Type', 'text/plain',
      'Connection', 'X-Secret-Hop, x-other-hop',
      'X-Secret-Hop', 'leak-1',
      'X-Other-Hop', 'leak-2',
      'Keep-Alive', 'timeout=5, max=7',
      'Proxy-Connection', 'keep-alive',
      'X-End-To-End', 'kept',
      'Set-Cookie', 'a=1; Path=/',
      'Set-Cookie', 'b=2; Path=/',
      'X-Request-ID', 'upstream-made-this-up',
    ]);
    res.end('hop');
    return;
  }
  if (path.endsWith('/two-connection-headers')) {
    res.writeHead(200, ['Connection', 'x-first-hop', 'Connection', 'x-second-hop', 'X-First-Hop', 'leak-1', 'X-Second-Hop', 'leak-2', 'Content-Length', '2']);
    res.end('ok');
    return;
  }
  const echo: Echo = {
    method: req.method!,
    url: req.url!,
    bytes: body.length,
    sha256: sha256(body),
    te: req.headers['transfer-encoding'] ?? null,
    cl: req.headers['content-length'] ?? null,
  };
  const text = JSON.stringify(echo);
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'x-echo': 'yes' });
  res.end(req.method === 'HEAD' ? undefined : text);
}

let upstream: Upstream;
let slow: Upstream;
let hanging: Upstream & { tracked: Tracked[] };
let early: Upstream & { tracked: Tracked[] };
let resetter: Awaited<ReturnType<typeof startRawUpstream>>;
let midReset: Awaited<ReturnType<typeof startRawUpstream>>;
let bodyReset: Awaited<ReturnType<typeof startRawUpstream>>;
let garbage: Awaited<ReturnType<typeof startRawUpstream>>;
let proxy: RunningProxy;
let refusedPort: number;

beforeAll(async () => {
  upstream = await startUpstream(echoHandler);
  slow = await startUpstream(() => {
    /* never answers */
  });
  hanging = await startTrackingUpstream(() => {
    /* never answers: the test aborts */
  });
  // Answers 413 at once, without waiting for (or reading) the request body.
  early = await startTrackingUpstream((_req, res) => {
    res.writeHead(413, { 'content-type': 'text/plain' });
    res.end('upstream refuses this body');
  });
  // Resets the connection as soon as the request head is complete.
  resetter = await startRawUpstream((socket, received) => {
    if (received.includes('\r\n\r\n')) socket.resetAndDestroy();
  });
  // Answers a head and part of the body, then resets.
  midReset = await startRawUpstream((socket, received) => {
    if (!received.includes('\r\n\r\n')) return;
    socket.write(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n${'x'.repeat(1000)}`, () => setTimeout(() => socket.resetAndDestroy(), 50));
  });
  // Resets after the head of a request whose body has not been sent yet.
  bodyReset = await startRawUpstream((socket, received) => {
    if (received.includes('\r\n\r\n')) socket.resetAndDestroy();
  });
  // Answers something that is not HTTP.
  garbage = await startRawUpstream((socket, received) => {
    if (received.includes('\r\n\r\n')) socket.end('SSH-2.0-OpenSSH_9.6\r\n\r\nnot http at all\r\n');
  });
  refusedPort = await closedPort();
  proxy = await startProxy(`
routes:
  - name: echo
    match: { pathPrefix: /echo }
    upstream: ${upstream.url}
    auth: [none]
  - name: items
    match: { pathPrefix: /items }
    upstream: ${upstream.url}/r-items
    auth: [none]
  - name: items-archive
    match: { pathPrefix: /items/archive, methods: [GET] }
    upstream: ${upstream.url}/r-archive
    auth: [none]
  - name: orders
    match: { pathPrefix: /orders, methods: [GET, POST] }
    upstream: ${upstream.url}/r-orders
    auth: [none]
  - name: orders-delete
    match: { pathPrefix: /orders, methods: [delete] }
    upstream: ${upstream.url}/r-orders-delete
    auth: [none]
  - name: shop-items
    match: { host: shop.test, pathPrefix: /items }
    upstream: ${upstream.url}/r-shop
    auth: [none]
  - name: tenant-items
    match: { host: "*.tenants.test", pathPrefix: /items, methods: [GET] }
    upstream: ${upstream.url}/r-wild
    auth: [none]
  - name: tenant-svc
    match: { host: "*.tenants.test", pathPrefix: /svc }
    upstream: ${upstream.url}/r-wild-svc
    auth: [none]
    stripPrefix: true
  - name: svc
    match: { pathPrefix: /svc }
    upstream: ${upstream.url}/base/v1/
    auth: [none]
    stripPrefix: true
  - name: based
    match: { pathPrefix: /based }
    upstream: ${upstream.url}/root
    auth: [none]
  - name: keep-host
    match: { pathPrefix: /keep-host }
    upstream: ${upstream.url}
    auth: [none]
    preserveHost: true
  - name: rewrite-host
    match: { pathPrefix: /rewrite-host }
    upstream: ${upstream.url}
    auth: [none]
    preserveHost: false
  - name: slow
    match: { pathPrefix: /slow }
    upstream: ${slow.url}
    auth: [none]
    timeoutMs: 500
  - name: early
    match: { pathPrefix: /early }
    upstream: ${early.url}
    auth: [none]
  - name: hang
    match: { pathPrefix: /hang }
    upstream: ${hanging.url}
    auth: [none]
  - name: refused
    match: { pathPrefix: /refused }
    upstream: http://127.0.0.1:${refusedPort}
    auth: [none]
  - name: reset
    match: { pathPrefix: /reset }
    upstream: ${resetter.url}
    auth: [none]
  - name: mid-reset
    match: { pathPrefix: /mid-reset }
    upstream: ${midReset.url}
    auth: [none]
  - name: body-reset
    match: { pathPrefix: /body-reset }
    upstream: ${bodyReset.url}
    auth: [none]
  - name: garbage
    match: { pathPrefix: /garbage }
    upstream: ${garbage.url}
    auth: [none]
  - name: secure
    match: { pathPrefix: /secure }
    upstream: ${upstream.url}
    auth: [apiKey]
`);
});

afterAll(async () => {
  await proxy?.close();
  await Promise.all([upstream?.close(), slow?.close(), hanging?.close(), early?.close(), resetter?.close(), midReset?.close(), bodyReset?.close(), garbage?.close()]);
});

beforeEach(() => {
  upstream.requests.length = 0;
});

const urls = () => upstream.requests.map((r) => r.url);

describe('methods and bodies are forwarded intact', () => {
  it('GET keeps the query string exactly as sent and relays the body', async () => {
    const res = await send(proxy.port, { path: '/echo/get?a=1&b=%2F&c=%20x&d&e=%E2%82%AC&a=2' });
    expect(res.status).toBe(200);
    expect(res.headers['x-echo']).toBe('yes');
    expect(jsonOf<Echo>(res)).toMatchObject({ method: 'GET', url: '/echo/get?a=1&b=%2F&c=%20x&d&e=%E2%82%AC&a=2', bytes: 0 });
    expect(urls()).toEqual(['/echo/get?a=1&b=%2F&c=%20x&d&e=%E2%82%AC&a=2']);
  });

  it('POST with Content-Length: 1 MiB of random bytes arrive byte-exact with the same length', async () => {
    const body = randomBytes(1024 * 1024);
    const res = await send(proxy.port, { method: 'POST', path: '/echo/post', body, headers: { 'content-type': 'application/octet-stream' } });
    expect(res.status).toBe(200);
    expect(jsonOf<Echo>(res)).toMatchObject({ method: 'POST', bytes: body.length, sha256: sha256(body), cl: String(body.length), te: null });
    expect(upstream.requests).toHaveLength(1);
    expect(upstream.requests[0]!.body.equals(body)).toBe(true);
    expect(upstream.requests[0]!.headers['content-type']).toBe('application/octet-stream');
  });

  it('PUT with a chunked body arrives byte-exact (still chunked, no invented Content-Length)', async () => {
    const chunks = [randomBytes(10), randomBytes(70_000), Buffer.from('tail'), randomBytes(1)];
    const all = Buffer.concat(chunks);
    const res = await send(proxy.port, { method: 'PUT', path: '/echo/put', chunks });
    expect(res.status).toBe(200);
    expect(jsonOf<Echo>(res)).toMatchObject({ method: 'PUT', bytes: all.length, sha256: sha256(all), te: 'chunked', cl: null });
    expect(upstream.requests[0]!.body.equals(all)).toBe(true);
  });

  it('DELETE with a body forwards the body', async () => {
    const res = await send(proxy.port, { method: 'DELETE', path: '/echo/thing/7', body: '{"reason":"test"}', headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(200);
    expect(jsonOf<Echo>(res)).toMatchObject({ method: 'DELETE', url: '/echo/thing/7', bytes: 17 });
    expect(upstream.requests[0]!.body.toString()).toBe('{"reason":"test"}');
  });

  it('GET with a body (search APIs do this) forwards the body', async () => {
    const res = await send(proxy.port, { method: 'GET', path: '/echo/search', body: '{"query":{"match_all":{}}}', headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(200);
    expect(jsonOf<Echo>(res)).toMatchObject({ method: 'GET', bytes: 26 });
    expect(upstream.requests[0]!.body.toString()).toBe('{"query":{"match_all":{}}}');
  });

  it('DELETE, PATCH and OPTIONS without a body, and POST with Content-Length: 0', async () => {
    for (const method of ['DELETE', 'PATCH', 'OPTIONS']) {
      const res = await send(proxy.port, { method, path: `/echo/${method.toLowerCase()}` });
      expect(res.status).toBe(200);
      expect(jsonOf<Echo>(res)).toMatchObject({ method, bytes: 0 });
    }
    const empty = await send(proxy.port, { method: 'POST', path: '/echo/empty', body: '' });
    expect(jsonOf<Echo>(empty)).toMatchObject({ method: 'POST', bytes: 0 });
    expect(upstream.requests.map((r) => r.method)).toEqual(['DELETE', 'PATCH', 'OPTIONS', 'POST']);
  });

  it('HEAD is forwarded as HEAD; the client gets the headers and no body', async () => {
    const conn = await RawConnection.open(proxy.port);
    await conn.write('HEAD /echo/head HTTP/1.1\r\nHost: x\r\n\r\n');
    const res = await conn.readResponse({ head: true });
    expect(res!.status).toBe(200);
    expect(res!.headers['x-echo']).toBe('yes');
    // The same connection still works: no stray body bytes were sent after the HEAD answer.
    await conn.write('GET /echo/after-head HTTP/1.1\r\nHost: x\r\n\r\n');
    const next = await conn.readResponse();
    conn.destroy();
    expect(next!.status).toBe(200);
    expect(jsonOf<Echo>(next!).url).toBe('/echo/after-head');
    expect(upstream.requests.map((r) => r.method)).toEqual(['HEAD', 'GET']);
  });

  it('an HTTP/1.0 request without Host is forwarded (with the upstream host) and the connection then closed', async () => {
    const conn = await RawConnection.open(proxy.port);
    await conn.write('GET /echo/v10?x=1 HTTP/1.0\r\n\r\n');
    const res = await conn.readResponse();
    expect(await conn.waitClosed(5000)).toBe(true);
    conn.destroy();
    expect(res!.status).toBe(200);
    expect(jsonOf<Echo>(res!).url).toBe('/echo/v10?x=1');
    expect(headerValues(upstream.requests[0]!.rawHeaders, 'host')).toEqual([`127.0.0.1:${upstream.port}`]);
  });

  it('several requests on one keep-alive client connection each reach the upstream', async () => {
    const conn = await RawConnection.open(proxy.port);
    for (let i = 0; i < 5; i++) {
      await conn.write(`POST /echo/ka/${i} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nab${i}`);
      const res = await conn.readResponse();
      expect(res!.status).toBe(200);
      expect(jsonOf<Echo>(res!)).toMatchObject({ url: `/echo/ka/${i}`, bytes: 3 });
    }
    conn.destroy();
    expect(upstream.requests.map((r) => r.body.toString())).toEqual(['ab0', 'ab1', 'ab2', 'ab3', 'ab4']);
  });
});

describe('responses are relayed', () => {
  it.each([201, 202, 204, 301, 400, 404, 418, 500, 503])('upstream status %i with its own body and headers', async (code) => {
    const res = await send(proxy.port, { path: `/echo/status/${code}` });
    expect(res.status).toBe(code);
    expect(res.headers['x-upstream-status']).toBe(String(code));
    if (code === 204) expect(res.body.length).toBe(0);
    else expect(res.body.toString()).toBe(`upstream says ${code}`);
    if (code === 301) expect(res.headers.location).toBe('/elsewhere');
    expect(res.headers['x-request-id']).toMatch(UUID);
    expect(urls()).toEqual([`/echo/status/${code}`]);
  });

  it('an upstream 404 is relayed as is, not turned into no_route', async () => {
    const res = await send(proxy.port, { path: '/echo/status/404' });
    expect(res.headers['content-type']).toBe('text/plain');
    expect(res.body.toString()).not.toContain('no_route');
  });

  it('hop-by-hop response headers and the ones the upstream Connection header names are removed; end-to-end ones kept', async () => {
    const conn = await RawConnection.open(proxy.port);
    await conn.write('GET /echo/hop HTTP/1.1\r\nHost: x\r\n\r\n');
    const res = (await conn.readResponse())!;
    conn.destroy();
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('hop');
    const names = res.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    expect(names).not.toContain('x-secret-hop');
    expect(names).not.toContain('x-other-hop');
    expect(names).not.toContain('proxy-connection');
    expect(res.head).not.toContain('leak-');
    expect(res.head).not.toContain('max=7');
    expect(headerValues(res.rawHeaders, 'connection').join(',')).not.toMatch(/hop/i);
    expect(res.headers['x-end-to-end']).toBe('kept');
    expect(headerValues(res.rawHeaders, 'set-cookie')).toEqual(['a=1; Path=/', 'b=2; Path=/']);
  });

  it('headers named by every Connection header line of the upstream are removed (not only the last line)', async () => {
    const res = (await rawExchange(proxy.port, 'GET /echo/two-connection-headers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'))!;
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('ok');
    expect(res.head).not.toContain('leak-2');
    expect(res.head).not.toContain('leak-1');
  });

  it('an upstream that answers early (413) while the client still uploads: its answer is relayed, not a 502', async () => {
    const res = await send(proxy.port, { method: 'POST', path: '/early/x', body: randomBytes(2 * 1024 * 1024) });
    expect(res.status).toBe(413);
    expect(res.body.toString()).toBe('upstream refuses this body');
    expect(early.tracked.map((t) => t.url)).toEqual(['/early/x']);
  });

  it("the upstream's own X-Request-ID is replaced by the proxy's", async () => {
    const res = await send(proxy.port, { path: '/echo/hop', headers: { 'x-request-id': 'client-id-42' } });
    expect(headerValues(res.rawHeaders, 'x-request-id')).toEqual(['client-id-42']);
  });
});

describe('X-Request-ID', () => {
  it('a well-formed client id is kept, forwarded once and returned', async () => {
    const id = 'req_01HZX9-abc.def:ghi+jkl=/mno';
    const res = await send(proxy.port, { path: '/echo/rid', headers: { 'x-request-id': id } });
    expect(res.status).toBe(200);
    expect(res.headers['x-request-id']).toBe(id);
    expect(upstream.requests[0]!.headers['x-request-id']).toBe(id);
    expect(countHeader(upstream.requests[0]!.rawHeaders, 'x-request-id')).toBe(1);
  });

  it('a 200-character id is kept', async () => {
    const id = 'a'.repeat(200);
    const res = await send(proxy.port, { path: '/echo/rid', headers: { 'x-request-id': id } });
    expect(res.headers['x-request-id']).toBe(id);
    expect(upstream.requests[0]!.headers['x-request-id']).toBe(id);
  });

  it('a 300-character id is replaced by a fresh one, the same upstream and downstream', async () => {
    const res = await send(proxy.port, { path: '/echo/rid', headers: { 'x-request-id': 'a'.repeat(300) } });
    expect(res.status).toBe(200);
    expect(res.headers['x-request-id']).toMatch(UUID);
    expect(upstream.requests[0]!.headers['x-request-id']).toBe(res.headers['x-request-id']);
    expect(countHeader(upstream.requests[0]!.rawHeaders, 'x-request-id')).toBe(1);
  });

  it.each([
    ['spaces', 'has some spaces'],
    ['a quote and angle brackets', '"><script>'],
    ['a tab', 'a\tb'],
    ['non-ASCII', 'caf\xe9'],
  ])('an id with %s (raw) is replaced', async (_what, id) => {
    const res = (await rawExchange(proxy.port, Buffer.from(`GET /echo/rid HTTP/1.1\r\nHost: x\r\nX-Request-ID: ${id}\r\nConnection: close\r\n\r\n`, 'latin1')))!;
    expect(res.status).toBe(200);
    expect(res.headers['x-request-id']).toMatch(UUID);
    expect(upstream.requests).toHaveLength(1);
    expect(upstream.requests[0]!.headers['x-request-id']).toBe(res.headers['x-request-id']);
  });

  it('two X-Request-ID lines are not both forwarded: one fresh id', async () => {
    const res = (await rawExchange(proxy.port, 'GET /echo/rid HTTP/1.1\r\nHost: x\r\nX-Request-ID: one\r\nx-request-id: two\r\nConnection: close\r\n\r\n'))!;
    expect(res.status).toBe(200);
    expect(res.headers['x-request-id']).toMatch(UUID);
    expect(headerValues(upstream.requests[0]!.rawHeaders, 'x-request-id')).toEqual([res.headers['x-request-id']]);
  });

  it('error answers carry the client id in the header and in the JSON body', async () => {
    const res = await send(proxy.port, { path: '/nowhere', headers: { 'x-request-id': 'trace-me-1' } });
    expect(res.status).toBe(404);
    expect(res.headers['x-request-id']).toBe('trace-me-1');
    expect(jsonOf<ErrorBody>(res).error).toMatchObject({ code: 'no_route', requestId: 'trace-me-1' });
    expect(upstream.requests).toHaveLength(0);
  });
});

describe('forwarding headers', () => {
  it('sets X-Forwarded-For/Proto/Host itself and drops the client ones (trustProxy off)', async () => {
    const res = await send(proxy.port, {
      path: '/echo/xff',
      headers: {
        host: 'app.example.test',
        'x-forwarded-for': '6.6.6.6, 7.7.7.7',
        'x-forwarded-proto': 'https',
        'x-forwarded-host': 'evil.test',
        'x-forwarded-port': '443',
        forwarded: 'for=6.6.6.6;proto=https;host=evil.test',
        'x-real-ip': '6.6.6.6',
      },
    });
    expect(res.status).toBe(200);
    const rec = upstream.requests[0]!;
    expect(headerValues(rec.rawHeaders, 'x-forwarded-for')).toEqual(['127.0.0.1']);
    expect(headerValues(rec.rawHeaders, 'x-forwarded-proto')).toEqual(['http']);
    expect(headerValues(rec.rawHeaders, 'x-forwarded-host')).toEqual(['app.example.test']);
    expect(countHeader(rec.rawHeaders, 'x-forwarded-port')).toBe(0);
    expect(countHeader(rec.rawHeaders, 'forwarded')).toBe(0);
    expect(countHeader(rec.rawHeaders, 'x-real-ip')).toBe(0);
    expect(JSON.stringify(rec.rawHeaders)).not.toContain('6.6.6.6');
  });

  it('the _ spelling of X-Forwarded-For is dropped as well', async () => {
    await rawExchange(proxy.port, 'GET /echo/xff HTTP/1.1\r\nHost: x\r\nX_Forwarded_For: 6.6.6.6\r\nx_real_ip: 6.6.6.6\r\nConnection: close\r\n\r\n');
    const rec = upstream.requests[0]!;
    expect(headerValues(rec.rawHeaders, 'x-forwarded-for')).toEqual(['127.0.0.1']);
    expect(JSON.stringify(rec.rawHeaders)).not.toContain('6.6.6.6');
  });

  it('traceparent and tracestate pass through unchanged', async () => {
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    await send(proxy.port, { path: '/echo/trace', headers: { traceparent, tracestate: 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7' } });
    const h = upstream.requests[0]!.headers;
    expect(h.traceparent).toBe(traceparent);
    expect(h.tracestate).toBe('congo=t61rcWkgMzE,rojo=00f067aa0ba902b7');
  });

  describe('with listen.trustProxy: true', () => {
    let trusting: RunningProxy;
    beforeAll(async () => {
      trusting = await startProxy(`
listen: { host: 127.0.0.1, port: 0, trustProxy: true }
routes:
  - { name: echo, match: { pathPrefix: /echo }, upstream: "${upstream.url}", auth: [none] }
`);
    });
    afterAll(async () => trusting?.close());

    it("appends the peer to the client's X-Forwarded-For and keeps its Proto and Host", async () => {
      const res = await send(trusting.port, {
        path: '/echo/trusted',
        headers: { host: 'edge.test', 'x-forwarded-for': '203.0.113.7, 10.0.0.1', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'public.example.com' },
      });
      expect(res.status).toBe(200);
      const rec = upstream.requests[0]!;
      expect(headerValues(rec.rawHeaders, 'x-forwarded-for')).toEqual(['203.0.113.7, 10.0.0.1, 127.0.0.1']);
      expect(headerValues(rec.rawHeaders, 'x-forwarded-proto')).toEqual(['https']);
      expect(headerValues(rec.rawHeaders, 'x-forwarded-host')).toEqual(['public.example.com']);
    });

    it('joins repeated X-Forwarded-For lines into one chain', async () => {
      await rawExchange(trusting.port, 'GET /echo/t2 HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\nConnection: close\r\n\r\n');
      expect(headerValues(upstream.requests[0]!.rawHeaders, 'x-forwarded-for')).toEqual(['1.1.1.1, 2.2.2.2, 127.0.0.1']);
    });

    it('without client forwarding headers it sets them like an untrusting proxy', async () => {
      await send(trusting.port, { path: '/echo/t3', headers: { host: 'edge.test' } });
      const rec = upstream.requests[0]!;
      expect(headerValues(rec.rawHeaders, 'x-forwarded-for')).toEqual(['127.0.0.1']);
      expect(headerValues(rec.rawHeaders, 'x-forwarded-proto')).toEqual(['http']);
      expect(headerValues(rec.rawHeaders, 'x-forwarded-host')).toEqual(['edge.test']);
    });
  });
});

describe('route matching', () => {
  const matched: [string, string, string, string][] = [
    // method, host, path, what the upstream receives
    ['GET', 'x', '/items', '/r-items/items'],
    ['GET', 'x', '/items/', '/r-items/items/'],
    ['POST', 'x', '/items/1', '/r-items/items/1'],
    ['GET', 'x', '/items/archive', '/r-archive/items/archive'],
    ['GET', 'x', '/items/archive/2024', '/r-archive/items/archive/2024'],
    ['HEAD', 'x', '/items/archive/2024', '/r-archive/items/archive/2024'],
    ['POST', 'x', '/items/archivex', '/r-items/items/archivex'],
    ['GET', 'x', '/orders/9', '/r-orders/orders/9'],
    ['POST', 'x', '/orders', '/r-orders/orders'],
    ['DELETE', 'x', '/orders/9', '/r-orders-delete/orders/9'],
    ['GET', 'shop.test', '/items/1', '/r-shop/items/1'],
    ['DELETE', 'SHOP.Test:8443', '/items/1', '/r-shop/items/1'],
    ['GET', 'shop.test', '/orders/1', '/r-orders/orders/1'],
    ['GET', 'a.tenants.test', '/items/1', '/r-wild/items/1'],
    ['GET', 'deep.a.tenants.test:81', '/items', '/r-wild/items'],
    ['GET', 'tenants.test', '/items/1', '/r-items/items/1'],
    ['GET', 'other.test', '/items/1', '/r-items/items/1'],
    // A wildcard host route (Host in mixed case, with a port) with stripPrefix and an upstream base path; the query is kept.
    ['GET', 'Acme.Tenants.Test:8080', '/svc/z?q=1', '/r-wild-svc/z?q=1'],
  ];
  it.each(matched)('%s %s %s → upstream %s', async (method, host, path, expected) => {
    const res = await send(proxy.port, { method, path, headers: { host } });
    expect(res.status).toBe(200);
    expect(upstream.requests.map((r) => `${r.method} ${r.url}`)).toEqual([`${method} ${expected}`]);
  });

  const unmatched: [string, string][] = [
    ['x', '/ordersx'],
    ['x', '/orders-admin/1'],
    ['x', '/itemsx'],
    ['x', '/'],
    ['x', '/ITEMS/1'],
    ['shop.test', '/shop'],
  ];
  it.each(unmatched)('Host %s %s → 404 no_route, nothing forwarded', async (host, path) => {
    const res = await send(proxy.port, { path, headers: { host } });
    expect(res.status).toBe(404);
    expect(errorCodeOf(res)).toBe('no_route');
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(upstream.requests).toHaveLength(0);
  });

  it('an absolute-form target routes by its own host, not the Host header', async () => {
    const res = await rawExchange(proxy.port, 'GET http://a.tenants.test/svc/k HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n');
    expect(res!.status).toBe(200);
    expect(urls()).toEqual(['/r-wild-svc/k']);
  });

  it('405 on the longest prefix lists its methods in Allow and never falls through to the shorter /items', async () => {
    const res = await send(proxy.port, { method: 'POST', path: '/items/archive/1', body: 'x' });
    expect(res.status).toBe(405);
    expect(errorCodeOf(res)).toBe('method_not_allowed');
    expect(res.headers.allow!.split(/,\s*/).sort()).toEqual(['GET', 'HEAD']);
    expect(upstream.requests).toHaveLength(0);
  });

  it('405 for a prefix shared by two routes lists the methods of both', async () => {
    const res = await send(proxy.port, { method: 'PUT', path: '/orders/1', body: '{}' });
    expect(res.status).toBe(405);
    expect(errorCodeOf(res)).toBe('method_not_allowed');
    expect(res.headers.allow!.split(/,\s*/).sort()).toEqual(['DELETE', 'GET', 'HEAD', 'POST']);
    expect(upstream.requests).toHaveLength(0);
  });

  it('405 on a host-specific route does not fall through to the any-host route with the same prefix', async () => {
    const res = await send(proxy.port, { method: 'POST', path: '/items/1', headers: { host: 'a.tenants.test' }, body: 'x' });
    expect(res.status).toBe(405);
    expect(errorCodeOf(res)).toBe('method_not_allowed');
    expect(res.headers.allow!.split(/,\s*/).sort()).toEqual(['GET', 'HEAD']);
    expect(upstream.requests).toHaveLength(0);
  });

  it('stripPrefix with an upstream base path: /svc/a/b?x=1 → /base/v1/a/b?x=1', async () => {
    for (const [sent, expected] of [
      ['/svc/a/b?x=1', '/base/v1/a/b?x=1'],
      ['/svc', '/base/v1/'],
      ['/svc/', '/base/v1/'],
      ['/svc?q=2', '/base/v1/?q=2'],
      ['/svc/a/../c', '/base/v1/c'],
    ] as const) {
      upstream.requests.length = 0;
      const res = await send(proxy.port, { path: sent });
      expect(res.status, sent).toBe(200);
      expect(urls(), sent).toEqual([expected]);
    }
  });

  it('an upstream base path without stripPrefix is prepended to the whole path', async () => {
    const res = await send(proxy.port, { path: '/based/x/y?z=1' });
    expect(res.status).toBe(200);
    expect(urls()).toEqual(['/root/based/x/y?z=1']);
  });

  it("preserveHost: true sends the client's Host, false the upstream's", async () => {
    await send(proxy.port, { path: '/keep-host/1', headers: { host: 'Client.Example.test:8080' } });
    await send(proxy.port, { path: '/rewrite-host/1', headers: { host: 'client.example.test' } });
    const [kept, rewritten] = upstream.requests;
    expect(headerValues(kept!.rawHeaders, 'host')).toEqual(['Client.Example.test:8080']);
    expect(headerValues(rewritten!.rawHeaders, 'host')).toEqual([`127.0.0.1:${upstream.port}`]);
    // X-Forwarded-Host still tells the upstream what the client asked for.
    expect(rewritten!.headers['x-forwarded-host']).toBe('client.example.test');
  });
});

describe('upstream failures', () => {
  it('an upstream that never answers within the route timeoutMs → 504 upstream_timeout (it did get the request)', async () => {
    const before = slow.requests.length;
    const res = await send(proxy.port, { path: '/slow/x?y=1', headers: { 'x-request-id': 'slow-1' } });
    expect(res.status).toBe(504);
    expect(jsonOf<ErrorBody>(res).error).toMatchObject({ code: 'upstream_timeout', requestId: 'slow-1' });
    expect(slow.requests.slice(before).map((r) => r.url)).toEqual(['/slow/x?y=1']);
  });

  it('a refused upstream (closed port) → 502 upstream_unavailable', async () => {
    const res = await send(proxy.port, { path: '/refused/x' });
    expect(res.status).toBe(502);
    expect(errorCodeOf(res)).toBe('upstream_unavailable');
    expect(res.headers['x-request-id']).toMatch(UUID);
  });

  it('an upstream that resets the connection after reading the request → 502 upstream_unavailable', async () => {
    const before = resetter.connections.length;
    const res = await send(proxy.port, { path: '/reset/x' });
    expect(res.status).toBe(502);
    expect(errorCodeOf(res)).toBe('upstream_unavailable');
    const got = resetter.connections.slice(before).map((c) => c.received.toString('latin1'));
    expect(got.some((t) => t.startsWith('GET /reset/x HTTP/1.1\r\n'))).toBe(true);
  });

  it('an upstream that resets while the request body is still coming → 502 upstream_unavailable', async () => {
    const before = bodyReset.connections.length;
    const conn = await RawConnection.open(proxy.port);
    // Half the body: the proxy has started the upstream request and waits for the rest.
    await conn.write('POST /body-reset/x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhalf-');
    await waitFor(() => bodyReset.connections.slice(before).some((c) => c.closed), 'the upstream to reset');
    const res = await conn.readResponse();
    conn.destroy();
    expect(res?.status).toBe(502);
    expect(errorCodeOf(res!)).toBe('upstream_unavailable');
    expect(bodyReset.connections.slice(before)[0]!.received.toString('latin1')).toMatch(/^POST \/body-reset\/x HTTP\/1\.1\r\n/);
  });

  it('an upstream that resets mid-response: the client sees a truncated 200 and a closed connection, never a 502 glued on', async () => {
    const conn = await RawConnection.open(proxy.port);
    await conn.write('GET /mid-reset/x HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(await conn.waitClosed(10_000)).toBe(true);
    const text = conn.pending.toString('latin1');
    conn.destroy();
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(text.match(/HTTP\/1\.1 \d{3}/g)).toHaveLength(1);
    expect(text).not.toContain('upstream_unavailable');
    // The proxy is still fine.
    expect((await send(proxy.port, { path: '/echo/after-reset' })).status).toBe(200);
  });

  it('an upstream that answers something that is not HTTP → 502 upstream_unavailable', async () => {
    const res = await send(proxy.port, { path: '/garbage/x' });
    expect(res.status).toBe(502);
    expect(errorCodeOf(res)).toBe('upstream_unavailable');
    expect(garbage.connections.length).toBeGreaterThan(0);
  });

  it('a client that goes away while the upstream is slow aborts the upstream request', async () => {
    const before = hanging.tracked.length;
    const req = request({ host: '127.0.0.1', port: proxy.port, path: '/hang/abort-me', agent: false });
    req.on('error', () => {});
    req.end();
    await waitFor(() => hanging.tracked.length > before, 'the upstream to receive the request');
    const t = hanging.tracked[before]!;
    expect(t.url).toBe('/hang/abort-me');
    expect(t.aborted).toBe(false);
    req.destroy();
    await waitFor(() => t.aborted, 'the upstream to see its request aborted');
  });

  it('a client that goes away in the middle of an upload aborts the upstream request before its body ends', async () => {
    const before = hanging.tracked.length;
    const conn = await RawConnection.open(proxy.port);
    await conn.write(`POST /hang/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n${'u'.repeat(1000)}`);
    await waitFor(() => hanging.tracked.length > before && hanging.tracked[before]!.bodyBytes >= 1000, 'the upstream to receive the first body bytes');
    conn.destroy();
    const t = hanging.tracked[before]!;
    await waitFor(() => t.aborted, 'the upstream to see its request aborted');
    expect(t.ended).toBe(false);
    expect(t.bodyBytes).toBeLessThan(100_000);
  });
});

describe('Expect: 100-continue', () => {
  it('node:http with Expect gets a 100, then its body is forwarded; the upstream sees no Expect', async () => {
    const body = randomBytes(50_000);
    const res = await send(proxy.port, { method: 'POST', path: '/echo/continue', body, expectContinue: true });
    expect(res.gotContinue).toBe(true);
    expect(res.status).toBe(200);
    expect(jsonOf<Echo>(res)).toMatchObject({ bytes: body.length, sha256: sha256(body) });
    expect(upstream.requests[0]!.headers.expect).toBeUndefined();
  });

  it('raw: the client waits for the 100 before sending, the body arrives intact', async () => {
    const conn = await RawConnection.open(proxy.port);
    await conn.write('PUT /echo/raw-continue HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n');
    const interim = await conn.readBytes('HTTP/1.1 100 Continue\r\n\r\n'.length);
    expect(interim.toString('latin1')).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\n$/);
    expect(upstream.requests).toHaveLength(0);
    await conn.write('hello world');
    const res = await conn.readResponse();
    conn.destroy();
    expect(res!.status).toBe(200);
    expect(jsonOf<Echo>(res!)).toMatchObject({ method: 'PUT', bytes: 11 });
    expect(upstream.requests[0]!.body.toString()).toBe('hello world');
  });

  it('a chunked body after Expect: 100-continue arrives intact', async () => {
    const chunks = ['first ', 'second ', 'third'];
    const res = await send(proxy.port, { method: 'POST', path: '/echo/chunked-continue', chunks, expectContinue: true, headers: { 'transfer-encoding': 'chunked' } });
    expect(res.gotContinue).toBe(true);
    expect(jsonOf<Echo>(res)).toMatchObject({ bytes: 18, te: 'chunked' });
    expect(upstream.requests[0]!.body.toString()).toBe('first second third');
  });

  it('no route: a 404 comes instead of the 100, nothing forwarded', async () => {
    const conn = await RawConnection.open(proxy.port);
    await conn.write('POST /nowhere HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n');
    const res = await conn.readResponse();
    conn.destroy();
    expect(res!.interim).toEqual([]);
    expect(res!.status).toBe(404);
    expect(errorCodeOf(res!)).toBe('no_route');
    expect(upstream.requests).toHaveLength(0);
  });

  it('an auth route: a 401 comes instead of the 100, nothing forwarded', async () => {
    const conn = await RawConnection.open(proxy.port);
    await conn.write('POST /secure/x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n');
    const res = await conn.readResponse();
    conn.destroy();
    expect(res!.interim).toEqual([]);
    expect(res!.status).toBe(401);
    expect(errorCodeOf(res!)).toBe('unauthenticated');
    expect(upstream.requests).toHaveLength(0);
  });
});

describe('a route with auth: [apiKey] fails closed', () => {
  const attempts: [string, Record<string, string>][] = [
    ['no credential', {}],
    ['a made-up API key in X-API-Key', { 'x-api-key': 'tg_live_ak_nobody_000000000000000000000000000000' }],
    ['a made-up API key as Bearer', { authorization: 'Bearer tg_live_ak_nobody_000000000000000000000000000000' }],
    ['a JWT-looking Bearer', { authorization: 'Bearer eyJhbGciOiJub25lIn0.eyJ0aWQiOiJhY21lIn0.' }],
    ['Basic credentials', { authorization: 'Basic YWRtaW46YWRtaW4=' }],
    ['an empty X-API-Key', { 'x-api-key': '' }],
    ['a spoofed identity instead of a credential', { 'x-tenant-id': 'acme', 'x-api-key-id': 'ak_acme_1', 'x-scopes': '*' }],
  ];
  it.each(attempts)('%s → 401 unauthenticated with WWW-Authenticate, nothing forwarded', async (_what, headers) => {
    const res = await send(proxy.port, { path: '/secure/data', headers });
    expect(res.status).toBe(401);
    expect(errorCodeOf(res)).toBe('unauthenticated');
    expect(res.headers['www-authenticate']).toMatch(/^Bearer /);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(upstream.requests).toHaveLength(0);
  });

  it('a POST with a body → 401, the body is never forwarded', async () => {
    const res = await send(proxy.port, { method: 'POST', path: '/secure/data', body: randomBytes(100_000) });
    expect(res.status).toBe(401);
    expect(errorCodeOf(res)).toBe('unauthenticated');
    expect(upstream.requests).toHaveLength(0);
  });
});
