/**
 * gRPC through the proxy (SPEC §12, issue #30): a real @grpc/grpc-js server
 * as the upstream (h2c) and real grpc-js clients on the proxy's HTTP/2 data
 * port. Every streaming kind, metadata both ways, the identity the upstream
 * sees, deadlines, cancels, each refusal as a trailers-only gRPC status, and
 * the usage event's grpcStatus.
 */
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, readFileSync } from 'node:fs';
import * as http2 from 'node:http2';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../src/auth/api-key-format.js';
import { closedPort, waitFor } from '../helpers/fwd-net.js';
import { captureLogger } from '../helpers/usage-sinks.js';
import { SPAN_KIND, startOtlpReceiver } from '../helpers/otlp-receiver.js';
import { EchoClient, startEchoServer, type EchoServer, type SeenCall } from '../helpers/grpc-echo.js';
import { startProxy, type RunningProxy } from '../helpers/servers.js';

const acme = generateApiKey({ env: 'live', id: 'ak_acme' });
const reader = generateApiKey({ env: 'live', id: 'ak_reader' });
const solo = generateApiKey({ env: 'live', id: 'ak_solo' });
const limited = generateApiKey({ env: 'live', id: 'ak_limited' });

let echo: EchoServer;
/** Accepts TCP connections and never answers a byte. */
let mute: { server: Server; accepted: number; port: number };
let proxy: RunningProxy;
let usageFile: string;
let logs: Record<string, unknown>[];
const clients: grpc.Client[] = [];

beforeAll(async () => {
  echo = await startEchoServer();
  const sockets: Socket[] = [];
  const muteServer = createServer((s) => {
    mute.accepted++;
    sockets.push(s);
  });
  await new Promise<void>((resolve) => muteServer.listen(0, '127.0.0.1', resolve));
  mute = { server: muteServer, accepted: 0, port: (muteServer.address() as AddressInfo).port };
  muteServer.on('close', () => sockets.forEach((s) => s.destroy()));
  const down = await closedPort();
  usageFile = join(mkdtempSync(join(tmpdir(), 'tg-grpc-')), 'usage.ndjson');
  const captured = captureLogger();
  logs = captured.lines;
  proxy = await startProxy(
    `
listen: { host: 127.0.0.1, port: 0, http2: true }
logging: { level: info, sample2xx: 0 }
plans:
  pro: { rate: null }
  single: { rate: null, concurrency: 1 }
  tight: { rate: { perSecond: 1, burst: 1 } }
tenants:
  - { id: acme, plan: pro }
  - { id: solo, plan: single }
  - { id: limited, plan: tight }
apiKeys:
  - { id: ak_acme, tenant: acme, project: web, hash: "${acme.hash}", scopes: ["echo:call"] }
  - { id: ak_reader, tenant: acme, hash: "${reader.hash}", scopes: ["orders:read"] }
  - { id: ak_solo, tenant: solo, hash: "${solo.hash}", scopes: ["echo:call"] }
  - { id: ak_limited, tenant: limited, hash: "${limited.hash}", scopes: ["echo:call"] }
routes:
  - { name: echo, match: { pathPrefix: /echo.v1.Echo/ }, upstream: "http://127.0.0.1:${echo.port}", protocol: grpc, auth: [apiKey], permission: "echo:call", timeoutMs: 1500 }
  - { name: mute, match: { pathPrefix: /mute.v1.Mute/ }, upstream: "http://127.0.0.1:${mute.port}", protocol: grpc, auth: [none] }
  - { name: down, match: { pathPrefix: /down.v1.Down/ }, upstream: "http://127.0.0.1:${down}", protocol: grpc, auth: [none] }
  - { name: small, match: { pathPrefix: /small }, upstream: "http://127.0.0.1:${echo.port}", protocol: grpc, auth: [none], stripPrefix: true, maxBodyBytes: 5000 }
usage:
  spoolDir: "${join(usageFile, '..', 'spool')}"
  sinks: [{ type: file, path: "${usageFile}" }]
`,
    {},
    captured.logger,
  );
});

afterAll(async () => {
  for (const c of clients) c.close();
  await proxy?.close();
  await echo?.close();
  mute?.server.close();
});

function client(): EchoClient {
  const c = new EchoClient(`127.0.0.1:${proxy.port}`, grpc.credentials.createInsecure());
  clients.push(c);
  return c;
}

function withKey(key: string, extra: Record<string, string> = {}): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${key}`);
  for (const [k, v] of Object.entries(extra)) md.set(k, v);
  return md;
}

interface UnaryResult {
  err: grpc.ServiceError | null;
  value: Buffer | undefined;
  headers: grpc.Metadata | null;
  trailers: grpc.Metadata | null;
}

function unary(name: 'unary' | 'fail' | 'hang', md: grpc.Metadata, body = 'hi', options: grpc.CallOptions = {}, c: EchoClient = client()): Promise<UnaryResult> {
  return new Promise((resolve) => {
    let headers: grpc.Metadata | null = null;
    let trailers: grpc.Metadata | null = null;
    const call = (c[name] as (...args: unknown[]) => grpc.ClientUnaryCall)(Buffer.from(body), md, options, (err: grpc.ServiceError | null, value?: Buffer) => {
      setImmediate(() => resolve({ err, value, headers, trailers }));
    });
    call.on('metadata', (m: grpc.Metadata) => (headers = m));
    call.on('status', (s: grpc.StatusObject) => (trailers = s.metadata));
  });
}

const lastCall = (method: string): SeenCall => echo.calls.filter((c) => c.method === method).at(-1)!;

describe('calls of every kind', () => {
  it('unary: the answer, metadata both ways, and the identity the upstream sees as metadata', async () => {
    const r = await unary('unary', withKey(acme.key, { 'x-client-meta': 'm1', 'x-tenant-id': 'spoofed' }), 'hello');
    expect(r.err).toBeNull();
    expect(r.value!.toString()).toBe('echo:hello');
    expect(r.headers!.get('x-upstream-head')).toEqual(['from-upstream']);
    expect(r.headers!.get('x-request-id')).toHaveLength(1);
    expect(r.trailers!.get('x-upstream-trailer')).toEqual(['done']);
    const seen = lastCall('Unary').metadata;
    expect(seen).toMatchObject({ 'x-tenant-id': 'acme', 'x-tenant-plan': 'pro', 'x-project-id': 'web', 'x-api-key-id': 'ak_acme', 'x-scopes': 'echo:call', 'x-client-meta': 'm1' });
    expect(seen['x-request-id']).toBe(String(r.headers!.get('x-request-id')[0]));
    // The credential is not forwarded; the client's identity header never arrives.
    expect(seen.authorization).toBeUndefined();
  });

  it("an upstream's error status, message and trailers reach the client as they were", async () => {
    const r = await unary('fail', withKey(acme.key));
    expect(r.err!.code).toBe(grpc.status.NOT_FOUND);
    expect(r.err!.details).toBe('order 42 not found');
    expect(r.err!.metadata.get('x-why')).toEqual(['no such order']);
  });

  it('server streaming: every message, in order', async () => {
    const got: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const call = client().serverStream(Buffer.from('200'), withKey(acme.key));
      call.on('data', (b: Buffer) => got.push(b.toString()));
      call.on('error', reject);
      call.on('end', resolve);
    });
    expect(got).toEqual(Array.from({ length: 200 }, (_, i) => `msg-${i}`));
  });

  it('client streaming: the upstream gets every message, then the half-close', async () => {
    const answer = await new Promise<string>((resolve, reject) => {
      const call = client().clientStream(withKey(acme.key), (err: grpc.ServiceError | null, value?: Buffer) => (err ? reject(err) : resolve(value!.toString())));
      for (let i = 0; i < 100; i++) call.write(Buffer.alloc(1000, i));
      call.end();
    });
    expect(answer).toBe('100:100000');
  });

  it('bidi: each answer arrives before the next message is sent (nothing waits for the end)', async () => {
    const call = client().bidi(withKey(acme.key));
    const replies: string[] = [];
    for (const word of ['alpha', 'beta', 'gamma']) {
      const reply = new Promise<string>((resolve) => call.once('data', (b: Buffer) => resolve(b.toString())));
      call.write(Buffer.from(word));
      replies.push(await reply);
    }
    const ended = new Promise<void>((resolve) => call.on('status', () => resolve()));
    call.end();
    await ended;
    expect(replies).toEqual(['ALPHA', 'BETA', 'GAMMA']);
  });

  it("back-pressure: a client that stops reading stops the upstream's writes; then every message arrives", async () => {
    const call = client().flood(Buffer.from('256x256'), withKey(acme.key));
    const received: number[] = [];
    // Paused at the first message, before the client could read more than the flow-control windows hold.
    call.on('data', (b: Buffer) => {
      if (received.push(b.length) === 1) call.pause();
    });
    const done = new Promise<void>((resolve, reject) => {
      call.on('end', resolve);
      call.on('error', reject);
    });
    await waitFor(() => received.length > 0, 'the first message');
    // Paused: what the upstream got to write is bounded by the flow-control windows and buffers on the way.
    let last = -1;
    await waitFor(
      () => {
        const now = echo.flooded;
        const settled = now === last;
        last = now;
        return settled;
      },
      'the upstream to stop writing',
      10_000,
      300,
    );
    expect(echo.flooded).toBeLessThan(128); // 32 MiB of the 64: far from all of it
    call.resume();
    await done;
    expect(received.length).toBe(256);
    expect(received.every((n) => n === 256 * 1024)).toBe(true);
  });

  it('a large message streams through flow control both ways', async () => {
    const big = 'x'.repeat(3 * 1024 * 1024);
    const r = await unary('unary', withKey(acme.key), big);
    expect(r.err).toBeNull();
    expect(r.value!.length).toBe(big.length + 'echo:'.length);
  });
});

describe('deadlines and cancels', () => {
  it("the client's deadline, shorter than timeoutMs, reaches the upstream as grpc-timeout: DEADLINE_EXCEEDED", async () => {
    const r = await unary('hang', withKey(acme.key), 'x', { deadline: Date.now() + 300 });
    expect(r.err!.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    const left = lastCall('Hang').deadlineLeftMs;
    expect(left).not.toBeNull();
    expect(left!).toBeLessThanOrEqual(300);
  });

  it("a longer deadline is cut at the route's timeoutMs: DEADLINE_EXCEEDED from the proxy, the upstream sees the cancel", async () => {
    const r = await unary('hang', withKey(acme.key), 'x', { deadline: Date.now() + 20_000 });
    expect(r.err!.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(r.err!.details).toBe('The upstream service did not answer in time.');
    expect(r.err!.metadata.get('x-request-id')).toHaveLength(1);
    const seen = lastCall('Hang');
    expect(seen.deadlineLeftMs).not.toBeNull();
    expect(seen.deadlineLeftMs!).toBeLessThanOrEqual(1500);
    await waitFor(() => seen.cancelled, 'the upstream to see the cancel');
  });

  it('a deadline that passes mid-call: the messages so far, then DEADLINE_EXCEEDED in the trailers', async () => {
    const got: string[] = [];
    const status = await new Promise<grpc.StatusObject>((resolve) => {
      const call = client().drip(Buffer.from('x'), withKey(acme.key));
      call.on('data', (b: Buffer) => got.push(b.toString()));
      call.on('error', () => {});
      call.on('status', resolve);
    });
    expect(got).toEqual(['first']);
    expect(status.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(status.details).toBe('The upstream service did not answer in time.');
    const seen = lastCall('Drip');
    await waitFor(() => seen.cancelled, 'the upstream to see the cancel');
  });

  it('a cancel reaches the upstream and frees the concurrency slot', async () => {
    const c = client();
    const pending = new Promise<grpc.ServiceError | null>((resolve) => {
      const call = c.hang(Buffer.from('x'), withKey(solo.key), (err: grpc.ServiceError | null) => resolve(err));
      void waitFor(() => echo.calls.some((x) => x.method === 'Hang' && x.metadata['x-tenant-id'] === 'solo'), 'the hang call upstream').then(async () => {
        // The slot is held: a second call of the same tenant is refused meanwhile.
        const second = await unary('unary', withKey(solo.key));
        expect(second.err!.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
        call.cancel();
      });
    });
    expect((await pending)!.code).toBe(grpc.status.CANCELLED);
    const seen = echo.calls.find((x) => x.method === 'Hang' && x.metadata['x-tenant-id'] === 'solo')!;
    await waitFor(() => seen.cancelled, 'the upstream to see the cancel');
    await waitFor(() => proxy.gate.state.inflight === 0, 'the proxy to have nothing in flight');
    const after = await unary('unary', withKey(solo.key));
    expect(after.err).toBeNull();
  });
});

describe('refusals are trailers-only gRPC statuses (SPEC §12)', () => {
  const callsBefore = () => echo.calls.length;

  it('no credential: UNAUTHENTICATED (16)', async () => {
    const before = callsBefore();
    const r = await unary('unary', new grpc.Metadata());
    expect(r.err!.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(r.err!.details).toBe('A valid credential is required.');
    expect(r.err!.metadata.get('x-request-id')).toHaveLength(1);
    expect(echo.calls.length).toBe(before);
  });

  it('a key without the permission: PERMISSION_DENIED (7)', async () => {
    const before = callsBefore();
    expect((await unary('unary', withKey(reader.key))).err!.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(echo.calls.length).toBe(before);
  });

  it('no route: UNIMPLEMENTED (12)', async () => {
    const Nope = grpc.makeGenericClientConstructor({ x: { path: '/nope.v1.Nope/X', requestStream: false, responseStream: false, requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b } }, 'Nope');
    const c = new Nope(`127.0.0.1:${proxy.port}`, grpc.credentials.createInsecure());
    clients.push(c);
    const err = await new Promise<grpc.ServiceError>((resolve) => (c as unknown as { x: (...a: unknown[]) => void }).x(Buffer.from('x'), withKey(acme.key), (e: grpc.ServiceError) => resolve(e)));
    expect(err.code).toBe(grpc.status.UNIMPLEMENTED);
  });

  it('rate limited: RESOURCE_EXHAUSTED (8)', async () => {
    const before = callsBefore();
    expect((await unary('unary', withKey(limited.key))).err).toBeNull();
    const r = await unary('unary', withKey(limited.key));
    expect(r.err!.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(r.err!.details).toBe('Rate limit exceeded.');
    expect(r.err!.metadata.get('retry-after')).toHaveLength(1);
    expect(echo.calls.length).toBe(before + 1);
  });

  it('a malformed grpc-timeout: INVALID_ARGUMENT (3), trailers-only, nothing forwarded', async () => {
    const before = callsBefore();
    const session = http2.connect(`http://127.0.0.1:${proxy.port}`);
    const answer = await new Promise<{ headers: http2.IncomingHttpHeaders; endStream: boolean }>((resolve, reject) => {
      const stream = session.request({ ':method': 'POST', ':path': '/echo.v1.Echo/Unary', 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': 'soon', authorization: `Bearer ${acme.key}` });
      stream.on('response', (headers, flags) => resolve({ headers, endStream: (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0 }));
      stream.on('error', reject);
      stream.end(Buffer.from([0, 0, 0, 0, 0]));
    });
    session.close();
    expect(answer.endStream).toBe(true);
    expect(answer.headers).toMatchObject({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '3', 'grpc-message': 'The grpc-timeout header is malformed.' });
    expect(echo.calls.length).toBe(before);
  });

  it("a request body past the route's maxBodyBytes: INVALID_ARGUMENT (3), the upstream sees a cancel and never the end", async () => {
    const Small = grpc.makeGenericClientConstructor({ upload: { path: '/small/echo.v1.Echo/ClientStream', requestStream: true, responseStream: false, requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b } }, 'Small');
    const c = new Small(`127.0.0.1:${proxy.port}`, grpc.credentials.createInsecure());
    clients.push(c);
    const err = await new Promise<grpc.ServiceError | null>((resolve) => {
      const call = (c as unknown as { upload: (md: grpc.Metadata, cb: (e: grpc.ServiceError | null) => void) => grpc.ClientWritableStream<Buffer> }).upload(new grpc.Metadata(), (e) => resolve(e));
      for (let i = 0; i < 20; i++) call.write(Buffer.alloc(1000, i));
      call.end();
    });
    expect(err!.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err!.details).toBe('The request body is too large.');
    const seen = lastCall('ClientStream');
    await waitFor(() => seen.cancelled, 'the upstream to see the cancel');
  });

  it('an upstream that accepts the connection and never speaks HTTP/2: UNAVAILABLE after the 5 s connect timeout, not the 30 s deadline', async () => {
    const Mute = grpc.makeGenericClientConstructor({ x: { path: '/mute.v1.Mute/X', requestStream: false, responseStream: false, requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b } }, 'Mute');
    const c = new Mute(`127.0.0.1:${proxy.port}`, grpc.credentials.createInsecure());
    clients.push(c);
    const err = await new Promise<grpc.ServiceError>((resolve) => (c as unknown as { x: (...a: unknown[]) => void }).x(Buffer.from('x'), new grpc.Metadata(), (e: grpc.ServiceError) => resolve(e)));
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    expect(mute.accepted).toBeGreaterThan(0);
  }, 15_000);

  it('upstream down: UNAVAILABLE (14)', async () => {
    const Down = grpc.makeGenericClientConstructor({ x: { path: '/down.v1.Down/X', requestStream: false, responseStream: false, requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b } }, 'Down');
    const c = new Down(`127.0.0.1:${proxy.port}`, grpc.credentials.createInsecure());
    clients.push(c);
    const err = await new Promise<grpc.ServiceError>((resolve) => (c as unknown as { x: (...a: unknown[]) => void }).x(Buffer.from('x'), new grpc.Metadata(), (e: grpc.ServiceError) => resolve(e)));
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    expect(err.details).toBe('The upstream service is unavailable.');
  });

});

describe('gRPC requests on HTTP/1.1 (no gRPC client speaks it; a curl may)', () => {
  let http1: RunningProxy;
  beforeAll(async () => {
    // HTTP/2 on, as a gRPC route requires: the same port still speaks HTTP/1.1 to fetch.
    http1 = await startProxy(`
listen: { host: 127.0.0.1, port: 0, http2: true }
routes:
  - { name: echo, match: { pathPrefix: /echo.v1.Echo/ }, upstream: "http://127.0.0.1:${echo.port}", protocol: grpc, auth: [none] }
`);
  });
  afterAll(() => http1?.close());

  const post = (path: string, contentType: string) => fetch(`${http1.url}${path}`, { method: 'POST', headers: { 'content-type': contentType }, body: 'x' });

  it('a gRPC route answers INVALID_ARGUMENT (3) as a gRPC status, and forwards nothing', async () => {
    const before = echo.calls.length;
    const res = await post('/echo.v1.Echo/Unary', 'application/grpc');
    expect(res.status).toBe(200);
    expect(res.headers.get('grpc-status')).toBe('3');
    expect(res.headers.get('grpc-message')).toBe('gRPC needs HTTP/2.');
    expect(res.headers.get('x-request-id')).toBeTruthy();
    expect(await res.text()).toBe('');
    expect(echo.calls.length).toBe(before);
  });

  it('a refusal of an application/grpc request is a gRPC status; of any other, the SPEC §4 JSON', async () => {
    const grpcRes = await post('/nope/X', 'application/grpc+proto');
    expect([grpcRes.status, grpcRes.headers.get('grpc-status')]).toEqual([200, '12']);
    const jsonRes = await post('/nope/X', 'application/json');
    expect(jsonRes.status).toBe(404);
    expect(((await jsonRes.json()) as { error: { code: string } }).error.code).toBe('no_route');
  });
});

describe('tracing', () => {
  it("the upstream gets the proxy's client span as traceparent metadata", async () => {
    const otlp = await startOtlpReceiver();
    const traced = await startProxy(`
listen: { host: 127.0.0.1, port: 0, http2: true }
tracing: { otlp: { url: "${otlp.url}", timeoutMs: 2000 }, exportIntervalMs: 50 }
routes:
  - { name: echo, match: { pathPrefix: /echo.v1.Echo/ }, upstream: "http://127.0.0.1:${echo.port}", protocol: grpc, auth: [none] }
`);
    try {
      const c = new EchoClient(`127.0.0.1:${traced.port}`, grpc.credentials.createInsecure());
      clients.push(c);
      const r = await unary('unary', withoutKey('grpc-traced'), 'x', {}, c);
      expect(r.err).toBeNull();
      const traceparent = lastCall('Unary').metadata.traceparent;
      const [, traceId, spanId] = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(traceparent ?? '') ?? [];
      expect(traceId).toBeDefined();
      const spans = await otlp.waitFor((s) => s.some((x) => x.spanId === spanId));
      expect(spans.find((x) => x.spanId === spanId)).toMatchObject({ traceId, kind: SPAN_KIND.client });
    } finally {
      await traced.close();
      await otlp.close();
    }
  });
});

describe('the access log', () => {
  it('carries the grpc-status; a failed call is never sampled away, a successful one is (sample2xx: 0)', async () => {
    await unary('unary', withKey(acme.key, { 'x-request-id': 'grpc-log-ok' }));
    await unary('fail', withKey(acme.key, { 'x-request-id': 'grpc-log-fail' }));
    await waitFor(() => logs.some((l) => l.requestId === 'grpc-log-fail'), 'the failed call logged');
    expect(logs.find((l) => l.msg === 'request' && l.requestId === 'grpc-log-fail')).toMatchObject({ status: 200, outcome: 'forwarded', grpcStatus: 5 });
    expect(logs.some((l) => l.requestId === 'grpc-log-ok')).toBe(false);
  });
});

describe('usage events', () => {
  interface Event {
    route: string | null;
    status: number;
    outcome: string;
    grpcStatus: number | null;
    tenantId: string | null;
  }

  it("record the call's gRPC status: the upstream's, or the refusal's", async () => {
    const ok = await unary('unary', withKey(acme.key, { 'x-request-id': 'grpc-usage-ok' }));
    const failed = await unary('fail', withKey(acme.key, { 'x-request-id': 'grpc-usage-fail' }));
    const refused = await unary('unary', withoutKey('grpc-usage-refused'));
    expect([ok.err, failed.err?.code, refused.err?.code]).toEqual([null, grpc.status.NOT_FOUND, grpc.status.UNAUTHENTICATED]);
    const hangs = echo.calls.filter((c) => c.method === 'Hang').length;
    const cancelled = await new Promise<grpc.ServiceError>((resolve) => {
      const call = client().hang(Buffer.from('x'), withKey(acme.key, { 'x-request-id': 'grpc-usage-cancel' }), (e: grpc.ServiceError) => resolve(e));
      void waitFor(() => echo.calls.filter((c) => c.method === 'Hang').length > hangs, 'the call upstream').then(() => call.cancel());
    });
    expect(cancelled.code).toBe(grpc.status.CANCELLED);
    const byId = new Map<string, Event>();
    await waitFor(
      () => {
        let text = '';
        try {
          text = readFileSync(usageFile, 'utf8');
        } catch {
          return false;
        }
        for (const line of text.split('\n').filter(Boolean)) {
          const e = JSON.parse(line) as Event & { requestId: string };
          byId.set(e.requestId, e);
        }
        return ['grpc-usage-ok', 'grpc-usage-fail', 'grpc-usage-refused', 'grpc-usage-cancel'].every((id) => byId.has(id));
      },
      'the four usage events',
    );
    expect(byId.get('grpc-usage-ok')).toMatchObject({ route: 'echo', status: 200, outcome: 'forwarded', grpcStatus: 0, tenantId: 'acme' });
    expect(byId.get('grpc-usage-fail')).toMatchObject({ route: 'echo', status: 200, outcome: 'forwarded', grpcStatus: 5 });
    expect(byId.get('grpc-usage-refused')).toMatchObject({ route: 'echo', status: 401, outcome: 'unauthenticated', grpcStatus: 16 });
    expect(byId.get('grpc-usage-cancel')).toMatchObject({ route: 'echo', status: 499, outcome: 'client_aborted', grpcStatus: 1 });
  });
});

function withoutKey(requestId: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('x-request-id', requestId);
  return md;
}
