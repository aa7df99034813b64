/**
 * HTTP/2 inbound on plain text (h2c with prior knowledge, `listen.http2`):
 * real clients (curl, Node's http2 client, a raw frame writer for what no
 * client library sends) through every stage to a real HTTP/1.1 upstream.
 * Each HTTP/2-specific attack gets an answer (a SPEC error or a stream reset
 * by the protocol layer), the upstream receives nothing from it, and the
 * proxy keeps serving. The tenant's concurrency limit counts streams, and a
 * stream the client resets gives its slot back, once.
 */
import { execFile } from 'node:child_process';
import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream, type OutgoingHttpHeaders } from 'node:http2';
import type { ServerResponse } from 'node:http';
import { promisify } from 'node:util';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../src/auth/api-key-format.js';
import { RawConnection, MB, waitFor, headerNames } from '../helpers/fwd-net.js';
import { errorCodeOf, FRAME, H2_ERROR, RawH2, statusOf, type Frame } from '../helpers/h2-raw.js';
import { startProxy, startUpstream, type RunningProxy, type Upstream } from '../helpers/servers.js';

const run = promisify(execFile);
const key = generateApiKey({ env: 'live', id: 'ak_h2' });
const MAX_HEADER_BYTES = 4096;
const MAX_STREAMS = 8;

let upstream: Upstream;
/** Holds every response until `release()`: requests in flight for the concurrency tests. */
let slow: Upstream;
let held: ServerResponse[] = [];
/** Writes up to 256 MiB, honouring back-pressure; counts what it managed to write. */
let big: Upstream;
let bigWritten = 0;
let bigClosed = false;
let proxy: RunningProxy;

function release(): void {
  for (const res of held.splice(0)) res.end('released');
}

beforeAll(async () => {
  upstream = await startUpstream((req, res, body) => {
    if (req.url!.startsWith('/public/hop')) {
      res.writeHead(200, { connection: 'x-private, close', 'x-private': 'secret', 'keep-alive': 'timeout=5', 'proxy-connection': 'keep-alive', 'content-type': 'text/plain' });
      res.end('hop');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ url: req.url, bytes: body.length }));
  });
  slow = await startUpstream((_req, res) => held.push(res));
  big = await startUpstream(
    (req, res) => {
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.on('close', () => (bigClosed = true));
      const pump = () => {
        while (bigWritten < 256 * MB && !res.destroyed) {
          bigWritten += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      req.resume();
      pump();
    },
    { stream: true },
  );
  proxy = await startProxy(`
listen: { host: 127.0.0.1, port: 0, http2: true, headersTimeoutMs: 2000, maxHeaderBytes: ${MAX_HEADER_BYTES}, http2MaxConcurrentStreams: ${MAX_STREAMS} }
plans:
  small: { rate: null, quota: null, concurrency: 2 }
tenants: [{ id: acme, plan: small }]
apiKeys:
  - { id: ak_h2, tenant: acme, project: web, hash: "${key.hash}", scopes: [orders:read] }
routes:
  - { name: public, match: { pathPrefix: /public }, upstream: "${upstream.url}", auth: [none] }
  - { name: keyed, match: { pathPrefix: /keyed }, upstream: "${upstream.url}", auth: [apiKey], permission: orders:read }
  - { name: slow, match: { pathPrefix: /slow }, upstream: "${slow.url}", auth: [apiKey] }
  - { name: slow-public, match: { pathPrefix: /held }, upstream: "${slow.url}", auth: [none] }
  - { name: big, match: { pathPrefix: /big }, upstream: "${big.url}", auth: [none] }
  - { name: big-idle, match: { pathPrefix: /stall }, upstream: "${big.url}", auth: [none], idleTimeoutMs: 500 }
  - { name: small-body, match: { pathPrefix: /small }, upstream: "${upstream.url}", auth: [none], maxBodyBytes: 1000 }
  - { name: idle-upload, match: { pathPrefix: /idle-upload }, upstream: "${upstream.url}", auth: [none], idleTimeoutMs: 500 }
`);
});

afterAll(async () => {
  release();
  await proxy?.close();
  await Promise.all([upstream?.close(), slow?.close(), big?.close()]);
});

beforeEach(() => {
  upstream.requests.length = 0;
  slow.requests.length = 0;
});

interface H2Response {
  status: number;
  headers: Record<string, unknown>;
  body: Buffer;
}

function h2c(): ClientHttp2Session {
  const session = connect(proxy.url);
  session.on('error', () => {});
  return session;
}

/** One request on `session`; resolves with the whole response. */
function request(session: ClientHttp2Session, headers: OutgoingHttpHeaders, body?: Buffer | string): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: body === undefined });
    collect(stream).then(resolve, reject);
    if (body !== undefined) stream.end(body);
  });
}

function collect(stream: ClientHttp2Stream): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    let status = 0;
    let headers: Record<string, unknown> = {};
    const chunks: Buffer[] = [];
    stream.on('response', (h) => {
      status = Number(h[':status']);
      headers = h;
    });
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve({ status, headers, body: Buffer.concat(chunks) }));
    stream.on('error', reject);
  });
}

function errorCode(res: H2Response): string {
  return (JSON.parse(res.body.toString()) as { error: { code: string } }).error.code;
}

describe('h2c with prior knowledge', () => {
  it('curl --http2-prior-knowledge passes every stage: the upstream gets the verified identity over HTTP/1.1', async () => {
    const { stdout } = await run('curl', ['-sS', '-i', '--http2-prior-knowledge', '-H', `X-API-Key: ${key.key}`, `${proxy.url}/keyed/orders?x=1`]);
    expect(stdout).toMatch(/^HTTP\/2 200/);
    expect(stdout).toMatch(/^x-request-id: \S+/m);
    expect(upstream.requests).toHaveLength(1);
    const rec = upstream.requests[0]!;
    expect(rec.url).toBe('/keyed/orders?x=1');
    expect(rec.headers['x-tenant-id']).toBe('acme');
    expect(rec.headers['x-project-id']).toBe('web');
    expect(rec.headers['x-api-key']).toBeUndefined();
    expect(rec.headers['x-forwarded-proto']).toBe('http');
    expect(headerNames(rec.rawHeaders).filter((n) => n.startsWith(':'))).toEqual([]);
  });

  it('identity headers a client sends, twice or with underscores, never reach the upstream', async () => {
    const session = h2c();
    try {
      const res = await request(session, {
        ':path': '/keyed/a',
        'x-api-key': key.key,
        'x-tenant-id': ['evil-1', 'evil-2'],
        x_tenant_id: 'evil-3',
        'x-scopes': 'admin:*',
        'x-tenant-plan': 'enterprise',
        'x_api_key_id': 'evil-4',
      });
      expect(res.status).toBe(200);
      const rec = upstream.requests[0]!;
      expect(rec.headers['x-tenant-id']).toBe('acme');
      expect(rec.headers['x-scopes']).toBe('orders:read');
      expect(rec.headers['x-tenant-plan']).toBe('small');
      expect(rec.rawHeaders.join('\n')).not.toContain('evil');
      expect(headerNames(rec.rawHeaders)).not.toContain('x_tenant_id');
    } finally {
      session.close();
    }
  });

  it('refusals are the SPEC JSON errors, on the stream', async () => {
    const session = h2c();
    try {
      const noKey = await request(session, { ':path': '/keyed/a' });
      expect(noKey.status).toBe(401);
      expect(errorCode(noKey)).toBe('unauthenticated');
      expect(noKey.headers['www-authenticate']).toBeDefined();
      const noRoute = await request(session, { ':path': '/nowhere' });
      expect(noRoute.status).toBe(404);
      expect(errorCode(noRoute)).toBe('no_route');
      expect(upstream.requests).toHaveLength(0);
    } finally {
      session.close();
    }
  });

  it('a request body without Content-Length streams to the upstream', async () => {
    const session = h2c();
    try {
      const stream = session.request({ ':path': '/public/upload', ':method': 'POST' }, { endStream: false });
      const done = collect(stream);
      stream.write(Buffer.alloc(100_000, 1));
      stream.end(Buffer.alloc(50_000, 2));
      const res = await done;
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body.toString()).bytes).toBe(150_000);
      expect(upstream.requests[0]!.body.length).toBe(150_000);
    } finally {
      session.close();
    }
  });

  it('a body over the route limit, without Content-Length: 413 payload_too_large; with a larger Content-Length: 413 before any byte is forwarded', async () => {
    const session = h2c();
    try {
      const stream = session.request({ ':path': '/small/up', ':method': 'POST' }, { endStream: false });
      stream.on('error', () => {});
      const done = collect(stream);
      stream.write(Buffer.alloc(800, 1));
      stream.write(Buffer.alloc(800, 2));
      const res = await done;
      expect(res.status).toBe(413);
      expect(errorCode(res)).toBe('payload_too_large');
      const declared = await new Promise<H2Response>((resolve, reject) => {
        const s2 = session.request({ ':path': '/small/up', ':method': 'POST', 'content-length': '5000' }, { endStream: false });
        s2.on('error', () => {});
        collect(s2).then(resolve, reject);
        s2.write(Buffer.alloc(100));
      });
      expect(declared.status).toBe(413);
      expect(upstream.requests.filter((r) => r.body.length > 1000)).toEqual([]);
      await new Promise((r) => setTimeout(r, 500)); console.log('INFLIGHT', proxy.gate.state.inflight);
      await waitFor(() => proxy.gate.state.inflight === 0, 'both requests ended');
      expect((await request(session, { ':path': '/public/after' })).status).toBe(200);
    } finally {
      session.close();
    }
  });

  it("an upload that stops moving for the route's idleTimeoutMs: 408 request_timeout, the upstream request aborted", async () => {
    const session = h2c();
    try {
      const stream = session.request({ ':path': '/idle-upload/x', ':method': 'POST' }, { endStream: false });
      stream.on('error', () => {});
      const done = collect(stream);
      stream.write(Buffer.alloc(1000, 1)); // then nothing more
      const res = await done;
      expect(res.status).toBe(408);
      expect(errorCode(res)).toBe('request_timeout');
      await waitFor(() => proxy.gate.state.inflight === 0, 'the request ended');
      expect(upstream.requests.filter((r) => r.url === '/idle-upload/x' && r.body.length > 0)).toEqual([]);
    } finally {
      session.close();
    }
  });

  it('Expect: 100-continue is answered once the request is admitted, then the body goes through', async () => {
    const session = h2c();
    try {
      const stream = session.request({ ':path': '/public/continue', ':method': 'POST', expect: '100-continue' }, { endStream: false });
      const done = collect(stream);
      await new Promise<void>((resolve) => stream.once('continue', () => resolve()));
      stream.end('after continue');
      const res = await done;
      expect(res.status).toBe(200);
      expect(upstream.requests[0]!.body.toString()).toBe('after continue');
      expect(upstream.requests[0]!.headers.expect).toBeUndefined();
    } finally {
      session.close();
    }
  });

  it('a client that resets its stream mid-upload: the upstream request is aborted, the proxy carries on', async () => {
    const session = h2c();
    try {
      const stream = session.request({ ':path': '/held/upload', ':method': 'POST' }, { endStream: false });
      stream.on('error', () => {});
      stream.write(Buffer.alloc(10_000, 1));
      await waitFor(() => slow.requests.length === 1, 'the upload at the upstream');
      const before = proxy.gate.state.inflight;
      stream.close(constants.NGHTTP2_CANCEL);
      await waitFor(() => proxy.gate.state.inflight === before - 1, 'the reset request ended');
      expect((await request(session, { ':path': '/public/after' })).status).toBe(200);
    } finally {
      release();
      session.close();
    }
  });

  it("the upstream's connection-specific response headers are dropped (HTTP/2 forbids them), and what Connection names", async () => {
    const session = h2c();
    try {
      const res = await request(session, { ':path': '/public/hop' });
      expect(res.status).toBe(200);
      expect(res.body.toString()).toBe('hop');
      for (const h of ['connection', 'keep-alive', 'proxy-connection', 'x-private', 'transfer-encoding']) expect(res.headers[h], h).toBeUndefined();
    } finally {
      session.close();
    }
  });

  it('HTTP/1.1 keeps working on the same port, pipelined requests included', async () => {
    const plain = await fetch(`${proxy.url}/public/h1`);
    expect(plain.status).toBe(200);
    const conn = await RawConnection.open(proxy.port);
    try {
      await conn.write('GET /public/p1 HTTP/1.1\r\nHost: x\r\n\r\nGET /public/p2 HTTP/1.1\r\nHost: x\r\n\r\n');
      const first = await conn.readResponse();
      const second = await conn.readResponse();
      expect([first?.status, second?.status]).toEqual([200, 200]);
      expect(upstream.requests.map((r) => r.url)).toEqual(['/public/h1', '/public/p1', '/public/p2']);
    } finally {
      conn.destroy();
    }
  });

  it('an HTTP/1.1 Upgrade to h2c is refused (prior knowledge only): 400, nothing forwarded', async () => {
    const conn = await RawConnection.open(proxy.port);
    try {
      await conn.write('GET /public/a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n');
      const res = await conn.readResponse();
      expect(res?.status).toBe(400);
      expect(upstream.requests).toHaveLength(0);
    } finally {
      conn.destroy();
    }
  });

  it('a connection that never says which protocol it speaks is closed after headersTimeoutMs', async () => {
    const conn = await RawConnection.open(proxy.port);
    await conn.write('PRI * HTTP/2.0\r\n'); // a prefix of the preface, then silence
    expect(await conn.waitClosed(15_000)).toBe(true);
  }, 20_000);
});

describe('HTTP/2-specific attacks', () => {
  it('a Host header that differs from :authority: 400 authority_mismatch, nothing forwarded', async () => {
    const session = h2c();
    try {
      const res = await request(session, { ':path': '/public/a', ':authority': 'api.example.com', host: 'admin.internal' });
      expect(res.status).toBe(400);
      expect(errorCode(res)).toBe('bad_request');
      expect(upstream.requests).toHaveLength(0);
      const same = await request(session, { ':path': '/public/a', ':authority': 'api.example.com', host: 'API.example.com' });
      expect(same.status).toBe(200);
      expect(upstream.requests[0]!.headers['x-forwarded-host']).toBe('api.example.com');
    } finally {
      session.close();
    }
  });

  const base = (path: string): [string, string][] => [
    [':method', 'GET'],
    [':scheme', 'http'],
    [':path', path],
    [':authority', 'x'],
  ];

  /** Sends `headers` on stream 1 of a raw connection; then a clean request on stream 3 must still work, unless the whole connection was refused. */
  async function rawAttempt(headers: [string, string][], afterSettings = false): Promise<{ answer: number; code: number | null; next: boolean; first: Frame }> {
    const conn = await RawH2.open(proxy.port);
    try {
      if (afterSettings) await conn.settings();
      conn.request(1, headers);
      const f = await conn.answer(1);
      expect(f, 'no answer to the stream').not.toBeNull();
      let next = false;
      if (f!.type !== FRAME.goaway) {
        conn.request(3, base('/public/after'));
        const g = await conn.answer(3);
        next = g?.type === FRAME.headers && statusOf(g) === 200;
      }
      return { answer: f!.type, code: f!.type === FRAME.headers ? null : errorCodeOf(f!), next, first: f! };
    } finally {
      conn.close();
    }
  }

  it.each([
    ['a credential in an unknown pseudo-header', [...base('/keyed/a'), [':x-api-key', key.key]]],
    ['a pseudo-header after a regular header', [[':method', 'GET'], [':scheme', 'http'], ['x-api-key', key.key], [':path', '/keyed/a']]],
    ['Connection', [...base('/public/a'), ['connection', 'x-tenant-id']]],
    ['Keep-Alive', [...base('/public/a'), ['keep-alive', 'timeout=5']]],
    ['Transfer-Encoding', [...base('/public/a'), ['transfer-encoding', 'chunked']]],
    ['Upgrade', [...base('/public/a'), ['upgrade', 'websocket']]],
    ['TE other than trailers', [...base('/public/a'), ['te', 'gzip']]],
    ['an upper-case header name', [...base('/public/a'), ['X-Tenant-ID', 'evil']]],
    ['extended CONNECT (WebSocket over HTTP/2, not offered)', [[':method', 'CONNECT'], [':protocol', 'websocket'], [':scheme', 'http'], [':path', '/public/ws'], [':authority', 'x']]],
  ] as [string, [string, string][]][])('%s: the stream is refused, nothing forwarded, the connection still serves', async (_name, headers) => {
    const r = await rawAttempt(headers);
    if (r.answer === FRAME.rstStream) expect(r.code).toBe(H2_ERROR.protocolError);
    else expect(statusOf(r.first)).toBeGreaterThanOrEqual(400);
    expect(r.next).toBe(true);
    expect(upstream.requests.map((q) => q.url)).toEqual(['/public/after']);
  });

  it('plain CONNECT (not a forward proxy): a clean 4xx on the stream', async () => {
    const conn = await RawH2.open(proxy.port);
    try {
      conn.request(1, [[':method', 'CONNECT'], [':authority', 'internal.example:443']]);
      const f = await conn.answer(1);
      expect(f).not.toBeNull();
      if (f!.type === FRAME.rstStream) expect(errorCodeOf(f!)).toBe(H2_ERROR.protocolError);
      else expect([400, 404, 405]).toContain(statusOf(f!));
      expect(upstream.requests).toHaveLength(0);
    } finally {
      conn.close();
    }
  });

  it('an oversized header list sent before our SETTINGS apply: 431 headers_too_large, nothing forwarded', async () => {
    const r = await rawAttempt([...base('/public/a'), ['x-padding', 'p'.repeat(MAX_HEADER_BYTES + 100)]]);
    expect(r.answer).toBe(FRAME.headers);
    expect(statusOf(r.first)).toBe(431);
    expect(r.next).toBe(true);
    expect(upstream.requests.map((q) => q.url)).toEqual(['/public/after']);
  });

  it('an oversized header list once SETTINGS_MAX_HEADER_LIST_SIZE applies: nghttp2 resets the stream, nothing forwarded', async () => {
    const r = await rawAttempt([...base('/public/a'), ['x-padding', 'p'.repeat(MAX_HEADER_BYTES + 100)]], true);
    expect(r.answer).toBe(FRAME.rstStream);
    expect(r.code).toBe(H2_ERROR.enhanceYourCalm);
    expect(r.next).toBe(true);
    expect(upstream.requests.map((q) => q.url)).toEqual(['/public/after']);
  });

  it('many small headers adding up past maxHeaderBytes count as one list: refused', async () => {
    const many = Array.from({ length: 60 }, (_, i) => [`x-h${i}`, 'v'.repeat(60)] as [string, string]);
    const r = await rawAttempt([...base('/public/a'), ...many]);
    expect(r.answer).toBe(FRAME.headers);
    expect(statusOf(r.first)).toBe(431);
    expect(upstream.requests.map((q) => q.url)).toEqual(['/public/after']);
  });

  it('a malformed path the stages refuse: 400 on the stream', async () => {
    const conn = await RawH2.open(proxy.port);
    try {
      conn.request(1, base('/public/../../etc/passwd%00'));
      const f = await conn.answer(1);
      expect(f?.type).toBe(FRAME.headers);
      expect(statusOf(f!)).toBe(400);
      expect(upstream.requests).toHaveLength(0);
    } finally {
      conn.close();
    }
  });

  it(`streams beyond http2MaxConcurrentStreams (${MAX_STREAMS}) are refused with REFUSED_STREAM; the rest are served`, async () => {
    const conn = await RawH2.open(proxy.port);
    try {
      const streams = Array.from({ length: MAX_STREAMS + 3 }, (_, i) => 2 * i + 1);
      for (const s of streams) conn.request(s, base(`/held/${s}`));
      const extra = streams.slice(MAX_STREAMS);
      for (const s of extra) {
        const f = await conn.answer(s);
        expect(f?.type, `stream ${s}`).toBe(FRAME.rstStream);
        expect(errorCodeOf(f!)).toBe(H2_ERROR.refusedStream);
      }
      await waitFor(() => slow.requests.length === MAX_STREAMS, 'the admitted streams reach the upstream');
      expect(slow.requests.map((r) => r.url).sort()).toEqual(streams.slice(0, MAX_STREAMS).map((s) => `/held/${s}`).sort());
    } finally {
      conn.close();
      release();
    }
    await waitFor(() => proxy.gate.state.inflight === 0, 'every stream ended when the connection closed');
  });

  it('a slow reader: the upstream is paused by back-pressure, not buffered without bound', async () => {
    bigWritten = 0;
    bigClosed = false;
    const session = h2c();
    try {
      const stream = session.request({ ':path': '/big' });
      await new Promise<void>((resolve) => stream.once('response', () => resolve()));
      stream.pause();
      // Let the upstream write as far as back-pressure allows, then check it stopped far short of the 256 MiB.
      let last = -1;
      await waitFor(() => {
        const settled = bigWritten === last && bigWritten > 0;
        last = bigWritten;
        return settled;
      }, 'the upstream to stop writing', 20_000, 500);
      expect(bigWritten).toBeLessThan(64 * MB);
      stream.close(constants.NGHTTP2_CANCEL);
      await waitFor(() => bigClosed, 'the upstream response to be cut when the client cancels');
    } finally {
      session.destroy();
    }
  }, 30_000);
});

describe('a client that stops reading', () => {
  it("is cut after the route's idleTimeoutMs (client_stalled): the stream is reset and the upstream request aborted", async () => {
    bigWritten = 0;
    bigClosed = false;
    const session = h2c();
    try {
      const stream = session.request({ ':path': '/stall' });
      stream.on('error', () => {});
      await new Promise<void>((resolve) => stream.once('response', () => resolve()));
      stream.pause();
      await waitFor(() => bigClosed, 'the upstream response cut', 10_000);
      expect(bigWritten).toBeLessThan(64 * MB);
      await waitFor(() => proxy.gate.state.inflight === 0, 'the request ended');
      // Reading again, the client finds a truncated response: the stream ends without END_STREAM.
      let received = 0;
      stream.on('data', (c: Buffer) => (received += c.length));
      const ended = new Promise<boolean>((resolve) => {
        stream.once('end', () => resolve(true));
        stream.once('aborted', () => resolve(false));
        stream.once('close', () => resolve(false));
      });
      stream.resume();
      await ended;
      expect(received).toBeLessThan(bigWritten);
    } finally {
      session.destroy();
    }
  }, 20_000);
});

describe('the concurrency limit counts streams', () => {
  it('two streams hold both slots, a third is refused; a reset stream frees its slot exactly once', async () => {
    const session = h2c();
    const auth = { 'x-api-key': key.key };
    try {
      const s1 = session.request({ ':path': '/slow/1', ...auth });
      s1.on('error', () => {});
      const s2 = session.request({ ':path': '/slow/2', ...auth });
      const r2 = collect(s2);
      await waitFor(() => slow.requests.length === 2, 'both streams at the upstream');
      const third = await request(session, { ':path': '/slow/3', ...auth });
      expect(third.status).toBe(429);
      expect(errorCode(third)).toBe('concurrency_limited');

      s1.close(constants.NGHTTP2_CANCEL);
      // The reset ends the request once the proxy has processed it: only s2 is left in flight.
      await waitFor(() => proxy.gate.state.inflight === 1, 'the reset stream to end');
      // The cancelled stream's slot comes back: a new stream is admitted...
      const s4 = session.request({ ':path': '/slow/4', ...auth });
      const r4 = collect(s4);
      await waitFor(() => slow.requests.length === 3, 'a new stream admitted after the reset', 10_000);
      // ...and only one: were the slot released twice, this one would be admitted too.
      const fifth = await request(session, { ':path': '/slow/5', ...auth });
      expect(fifth.status).toBe(429);
      expect(slow.requests.map((r) => r.url)).toEqual(['/slow/1', '/slow/2', '/slow/4']);

      release();
      expect((await r2).status).toBe(200);
      expect((await r4).status).toBe(200);
      await waitFor(() => proxy.gate.state.inflight === 0, 'every request ended');
      const after = await request(session, { ':path': '/public/after' });
      expect(after.status).toBe(200);
    } finally {
      release();
      session.close();
    }
  });
});

describe('drain (SIGTERM) with HTTP/2 connections', () => {
  it('GOAWAY stops new streams, the stream in flight finishes, then the proxy stops', async () => {
    const own = await startProxy(`
listen: { host: 127.0.0.1, port: 0, http2: true }
routes:
  - { name: held, match: { pathPrefix: /held }, upstream: "${slow.url}", auth: [none] }
`);
    const session = connect(own.url);
    session.on('error', () => {});
    try {
      const inFlight = collect(session.request({ ':path': '/held/drain' }));
      await waitFor(() => slow.requests.length === 1, 'the stream at the upstream');
      const stopped = own.close();
      await new Promise<void>((resolve) => session.once('goaway', () => resolve()));
      release();
      const res = await inFlight;
      expect(res.status).toBe(200);
      expect(res.body.toString()).toBe('released');
      await stopped;
      expect(own.gate.state.inflight).toBe(0);
    } finally {
      release();
      session.destroy();
    }
  });
});
