/**
 * The proxy core end to end: routing and path normalisation, sanitizing,
 * forwarding headers, upstream failures, and the parser-level hardening —
 * each bad input asserting the status, the error code and what the upstream
 * did (or did not) receive.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { rawJson, rawRequest, startProxy, startUpstream, type RunningProxy, type Upstream } from '../helpers/servers.js';

let upstream: Upstream;
let slow: Upstream;
let proxy: RunningProxy;

beforeAll(async () => {
  upstream = await startUpstream((req, res, body) => {
    const text = JSON.stringify({ url: req.url, bytes: body.length });
    res.writeHead(201, { 'content-type': 'application/json', 'x-upstream': 'yes', connection: 'x-secret-hop', 'x-secret-hop': 'leak', 'keep-alive': 'timeout=5' });
    res.end(text);
  });
  slow = await startUpstream(() => {
    /* never answers */
  });
  proxy = await startProxy(`
listen: { host: 127.0.0.1, port: 0, maxHeaderBytes: 4096, maxBodyBytes: 1000 }
routes:
  - name: public
    match: { pathPrefix: /public }
    upstream: ${upstream.url}
    auth: [none]
  - name: admin
    match: { pathPrefix: /admin }
    upstream: ${upstream.url}
    auth: [apiKey]
  - name: readonly
    match: { pathPrefix: /public/ro, methods: [GET] }
    upstream: ${upstream.url}
    auth: [none]
  - name: hosted
    match: { host: "*.tenant.test", pathPrefix: /public }
    upstream: ${upstream.url}/base
    auth: [none]
    stripPrefix: true
  - name: slow
    match: { pathPrefix: /slow }
    upstream: ${slow.url}
    auth: [none]
    timeoutMs: 300
  - name: refused
    match: { pathPrefix: /refused }
    upstream: http://127.0.0.1:1
    auth: [none]
  - name: creds
    match: { pathPrefix: /creds }
    upstream: ${upstream.url}
    auth: [none]
    forwardCredentials: true
`);
});
afterAll(async () => {
  await proxy.close();
  await upstream.close();
  await slow.close();
});
beforeEach(() => {
  upstream.requests.length = 0;
});

function get(path: string, headers: Record<string, string> = {}) {
  return fetch(`${proxy.url}${path}`, { headers });
}

describe('routing', () => {
  it('forwards within the prefix, keeps the query, relays status and headers', async () => {
    const res = await get('/public/a/b?x=1&y=%2F');
    expect(res.status).toBe(201);
    expect(res.headers.get('x-upstream')).toBe('yes');
    expect(await res.json()).toEqual({ url: '/public/a/b?x=1&y=%2F', bytes: 0 });
  });

  it('removes hop-by-hop response headers, Connection-nominated ones too', async () => {
    const res = await get('/public/x');
    expect(res.headers.get('x-secret-hop')).toBeNull();
    expect(res.headers.get('keep-alive')).not.toBe('timeout=5');
  });

  it('matches prefixes on segment boundaries: /publicity is no route', async () => {
    const res = await get('/publicity');
    expect(res.status).toBe(404);
    expect((await res.json()).error.code).toBe('no_route');
    expect(upstream.requests).toHaveLength(0);
  });

  it('longest prefix decides; a method it does not allow is 405, never a fall-through', async () => {
    const res = await fetch(`${proxy.url}/public/ro/x`, { method: 'POST', body: 'x' });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET, HEAD');
    expect((await res.json()).error.code).toBe('method_not_allowed');
    expect(upstream.requests).toHaveLength(0);
  });

  it('host routes: wildcard host, stripPrefix and upstream base path', async () => {
    const res = await rawRequest(proxy.port, 'GET /public/z?q=1 HTTP/1.1\r\nHost: Acme.Tenant.Test:8080\r\nConnection: close\r\n\r\n');
    expect(res.status).toBe(201);
    expect(rawJson(res)).toEqual({ url: '/base/z?q=1', bytes: 0 });
  });

  it('a route that requires an API key refuses a request without a valid one', async () => {
    const res = await get('/admin/users', { authorization: 'Bearer tg_live_x_y' });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect((await res.json()).error.code).toBe('unauthenticated');
    expect(upstream.requests).toHaveLength(0);
  });
});

describe('path normalisation: the path matched is the path forwarded', () => {
  const forwarded: [string, string][] = [
    ['/public/a/../b', '/public/b'],
    ['/public//b///c', '/public/b/c'],
    ['/public/./b/.', '/public/b/'],
    ['/public/%62', '/public/b'],
    ['/%70ublic/x', '/public/x'],
    ['/public/%e2%82%ac', '/public/%E2%82%AC'],
    ['/public/a/%2e%2e/c', '/public/c'],
  ];
  it.each(forwarded)('%s reaches the upstream as %s', async (sent, expected) => {
    const res = await rawRequest(proxy.port, `GET ${sent} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    expect(res.status).toBe(201);
    expect(upstream.requests.map((r) => r.url)).toEqual([expected]);
  });

  const escapes: [string, number, string][] = [
    ['/public/../admin/users', 401, 'unauthenticated'],
    ['/public/%2e%2e/admin', 401, 'unauthenticated'],
    ['/public/%2E%2E/%61dmin', 401, 'unauthenticated'],
    ['/public/..%2fadmin', 400, 'bad_request'],
    ['/public%2f..%2fadmin', 400, 'bad_request'],
    ['/public/%5c..%5cadmin', 400, 'bad_request'],
    ['/public/..\\admin', 400, 'bad_request'],
    ['/public/../../etc/passwd', 400, 'bad_request'],
    ['/public/%zz', 400, 'bad_request'],
    ['/public/%00', 400, 'bad_request'],
    ['*', 400, 'bad_request'],
  ];
  it.each(escapes)('%s never reaches an upstream outside its prefix (%i %s)', async (sent, status, code) => {
    const res = await rawRequest(proxy.port, `GET ${sent} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    expect(res.status).toBe(status);
    expect((rawJson(res) as { error: { code: string } }).error.code).toBe(code);
    expect(upstream.requests).toHaveLength(0);
  });

  it('absolute-form targets route by their own host', async () => {
    const res = await rawRequest(proxy.port, 'GET http://a.tenant.test/public/k HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n');
    expect(res.status).toBe(201);
    expect(upstream.requests.map((r) => r.url)).toEqual(['/base/k']);
  });
});

describe('sanitize and injected headers', () => {
  const spoofed = [
    'X-Tenant-ID', 'x-tenant-id', 'X_Tenant_ID', 'X-TENANT-PLAN', 'X-Project-ID', 'X-Api-Key-ID', 'x_api_key_id',
    'X-Subject', 'X-Scopes', 'X-Roles', 'X-Tenant-Assertion',
  ];

  it('drops every identity header in every spelling, even duplicated', async () => {
    const lines = spoofed.flatMap((h) => [`${h}: evil`, `${h}: evil2`]).join('\r\n');
    const res = await rawRequest(proxy.port, `GET /public/s HTTP/1.1\r\nHost: x\r\n${lines}\r\nConnection: close\r\n\r\n`);
    expect(res.status).toBe(201);
    const names = upstream.requests[0]!.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase().replaceAll('_', '-'));
    for (const h of spoofed) expect(names).not.toContain(h.toLowerCase().replaceAll('_', '-'));
  });

  it('a Connection header cannot make the upstream drop an injected header', async () => {
    const res = await rawRequest(
      proxy.port,
      'GET /public/c HTTP/1.1\r\nHost: x\r\nConnection: close, X-Request-ID, X-Forwarded-For, x-foo\r\nX-Foo: bar\r\nX-Request-ID: my-id-1\r\n\r\n',
    );
    expect(res.status).toBe(201);
    const h = upstream.requests[0]!.headers;
    expect(h['x-request-id']).toBe('my-id-1');
    expect(h['x-forwarded-for']).toBe('127.0.0.1');
    expect(h['x-foo']).toBeUndefined();
    expect(h.connection).not.toMatch(/x-request-id|x-forwarded-for/i);
  });

  it('sets X-Forwarded-* and ignores the client ones (trustProxy off)', async () => {
    await get('/public/f', { 'x-forwarded-for': '6.6.6.6', 'x-forwarded-host': 'evil', 'x-forwarded-proto': 'https', forwarded: 'for=6.6.6.6', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
    const h = upstream.requests[0]!.headers;
    expect(h['x-forwarded-for']).toBe('127.0.0.1');
    expect(h['x-forwarded-proto']).toBe('http');
    expect(h['x-forwarded-host']).toBe(new URL(proxy.url).host);
    expect(h.forwarded).toBeUndefined();
    expect(h.traceparent).toBe('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
  });

  it('keeps a well-formed client request id and replaces a hostile one', async () => {
    const ok = await get('/public/r', { 'x-request-id': 'abc-123' });
    expect(ok.headers.get('x-request-id')).toBe('abc-123');
    const bad = await get('/public/r', { 'x-request-id': `${'a'.repeat(300)}` });
    expect(bad.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(upstream.requests[1]!.headers['x-request-id']).toBe(bad.headers.get('x-request-id'));
  });

  it('removes credentials unless the route forwards them', async () => {
    await get('/public/k', { authorization: 'Bearer secret', 'x-api-key': 'k' });
    await get('/creds/k', { authorization: 'Bearer secret', 'x-api-key': 'k' });
    expect(upstream.requests[0]!.headers.authorization).toBeUndefined();
    expect(upstream.requests[0]!.headers['x-api-key']).toBeUndefined();
    expect(upstream.requests[1]!.headers.authorization).toBe('Bearer secret');
  });

  it('sanitizes a chunked POST with Expect: 100-continue, and forwards its body', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${proxy.url}/public/up`, { method: 'POST', headers: { expect: '100-continue', 'x-tenant-id': 'evil', 'transfer-encoding': 'chunked' } });
      req.on('continue', () => {
        req.write('hello ');
        req.end('world');
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
    });
    expect(status).toBe(201);
    const rec = upstream.requests[0]!;
    expect(rec.body.toString()).toBe('hello world');
    expect(rec.headers['x-tenant-id']).toBeUndefined();
    expect(rec.headers.expect).toBeUndefined();
  });
});

describe('upstream failures', () => {
  it('an upstream that does not answer within timeoutMs → 504 upstream_timeout', async () => {
    const res = await get('/slow/x');
    expect(res.status).toBe(504);
    expect((await res.json()).error.code).toBe('upstream_timeout');
  });

  it('a refused upstream → 502 upstream_unavailable', async () => {
    const res = await get('/refused/x');
    expect(res.status).toBe(502);
    expect((await res.json()).error.code).toBe('upstream_unavailable');
  });

  it('a client abort aborts the upstream request', async () => {
    const before = slow.requests.length;
    const closed = new Promise<void>((resolve) => slow.server.once('request', (req) => req.socket.once('close', () => resolve())));
    const controller = new AbortController();
    const pending = fetch(`${proxy.url}/slow/abort`, { signal: controller.signal }).catch(() => 'aborted');
    await new Promise((r) => setTimeout(r, 100));
    controller.abort();
    expect(await pending).toBe('aborted');
    await closed;
    expect(slow.requests.length).toBe(before + 1);
  });
});

describe('hardening: the parser refuses, the upstream never sees it', () => {
  const cases: [string, string, number, string][] = [
    ['CL + TE', 'POST /public/h HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400, 'bad_request'],
    ['two Content-Length', 'POST /public/h HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!', 400, 'bad_request'],
    ['obs-fold', 'GET /public/h HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  folded\r\n\r\n', 400, 'bad_request'],
    ['bad header name', 'GET /public/h HTTP/1.1\r\nHost: x\r\nBad Name: a\r\n\r\n', 400, 'bad_request'],
    ['no Host', 'GET /public/h HTTP/1.1\r\n\r\n', 400, 'bad_request'],
    ['garbage', 'HELLO\r\n\r\n', 400, 'bad_request'],
    ['oversized head', `GET /public/h HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(8000)}\r\n\r\n`, 431, 'headers_too_large'],
    ['CONNECT', 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n', 405, 'method_not_allowed'],
    ['h2c upgrade', 'GET /public/h HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n', 400, 'bad_request'],
    ['body over maxBodyBytes', `POST /public/h HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n${'a'.repeat(2000)}`, 413, 'payload_too_large'],
  ];
  const named = cases.map(([name, payload, status, code]) => ({ name, payload, status, code }));
  it.each(named)('$name → $status $code', async ({ payload, status, code }) => {
    const res = await rawRequest(proxy.port, payload);
    expect(res.status).toBe(status);
    expect((rawJson(res) as { error: { code: string } }).error.code).toBe(code);
    expect(upstream.requests).toHaveLength(0);
  });

  it('a chunked body over maxBodyBytes is cut off with 413, never a 500', async () => {
    const chunk = 'a'.repeat(600);
    const res = await rawRequest(proxy.port, `POST /public/h HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n${chunk}\r\n258\r\n${chunk}\r\n0\r\n\r\n`);
    expect([413, null]).toContain(res.status);
    if (res.status === 413) expect((rawJson(res) as { error: { code: string } }).error.code).toBe('payload_too_large');
    const ok = await get('/public/after');
    expect(ok.status).toBe(201);
  });
});
