/**
 * Metrics and access log (issue #5) end to end: a golden file of the
 * `/metrics` text after a known sequence of requests, the bounded tenant
 * label, and the access log parsed line by line — with proof that no API key,
 * JWT, cookie or assertion ever appears in it.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../src/auth/api-key-format.js';
import { createLogger } from '../../src/observability/logger.js';
import { ROOT, spawnProxy, startProxy, startUpstream, type RunningProxy, type SpawnedProxy, type Upstream } from '../helpers/servers.js';

const GOLDEN = join(ROOT, 'test/fixtures/metrics.golden.txt');
const acmeKey = generateApiKey({ env: 'live', id: 'ak_acme' });
const globexKey = generateApiKey({ env: 'live', id: 'ak_globex' });
const initechKey = generateApiKey({ env: 'live', id: 'ak_initech' });
const HS_SECRET = 'observability-test-secret-0123456789abcdef';

function config(upstream: string, extra = ''): string {
  return `${extra}
plans:
  open: { rate: null, quota: null, concurrency: null }
  tight: { rate: { perSecond: 0.001, burst: 1 } }
tenants:
  - { id: acme, plan: open, hosts: [acme.example.com] }
  - { id: globex, plan: tight }
  - { id: initech, plan: open }
apiKeys:
  - { id: ak_acme, tenant: acme, hash: "${acmeKey.hash}", scopes: ["*"] }
  - { id: ak_globex, tenant: globex, hash: "${globexKey.hash}", scopes: ["*"] }
  - { id: ak_initech, tenant: initech, hash: "${initechKey.hash}", scopes: ["*"] }
jwt:
  issuers:
    - { issuer: https://idp.test/, audience: api, secret: "${HS_SECRET}", algorithms: [HS256], tenantClaim: tid }
roles: { member: ["*"] }
routes:
  - { name: api, match: { pathPrefix: /api }, upstream: "${upstream}", auth: [apiKey, jwt], cost: 2 }
  - { name: public, match: { pathPrefix: /public }, upstream: "${upstream}", auth: [none] }
`;
}

let upstream: Upstream;
beforeAll(async () => {
  upstream = await startUpstream((req, res) => {
    if (req.url?.startsWith('/api/fail')) {
      res.statusCode = 500;
      res.end('boom');
      return;
    }
    res.end('{"ok":true}');
  });
});
afterAll(() => upstream.close());

/** The tenantgate_* series of a scrape, without what varies between runs (durations' buckets and sums). */
function stableMetrics(text: string): string {
  return text
    .split('\n')
    .filter((l) => /^(# (HELP|TYPE) )?tenantgate_/.test(l) && !/_(bucket|sum)[{ ]/.test(l))
    // Versions change with releases and CI images; test/unit/observability/metrics.test.ts checks their values.
    .map((l) => l.replace(/^tenantgate_build_info\{.*\}/, 'tenantgate_build_info{version="*",node_version="*"}'))
    .join('\n');
}

describe('/metrics', () => {
  let proxy: RunningProxy;
  afterEach(async () => proxy?.close());

  it('matches the golden file after a known sequence of requests (SPEC §6 names, types, labels)', async () => {
    proxy = await startProxy(config(upstream.url));
    const get = (path: string, headers: Record<string, string> = {}) => fetch(`${proxy.url}${path}`, { headers });
    expect((await get('/api/a', { 'x-api-key': acmeKey.key })).status).toBe(200);
    expect((await get('/api/b', { authorization: `Bearer ${acmeKey.key}` })).status).toBe(200);
    expect((await fetch(`${proxy.url}/api/c`, { method: 'POST', body: 'hello', headers: { 'x-api-key': initechKey.key } })).status).toBe(200);
    expect((await get('/api/fail', { 'x-api-key': acmeKey.key })).status).toBe(500);
    expect((await get('/api/a')).status).toBe(401);
    expect((await get('/api/a', { 'x-api-key': tampered(acmeKey.key) })).status).toBe(401);
    expect((await get('/api/a', { 'x-api-key': globexKey.key })).status).toBe(200);
    expect((await get('/api/a', { 'x-api-key': globexKey.key })).status).toBe(429);
    expect(await statusWithHost(proxy.port, '/api/a', 'acme.example.com', initechKey.key)).toBe(403);
    expect((await get('/nowhere')).status).toBe(404);
    expect((await get('/public/x')).status).toBe(200);

    // A request is accounted when the server sees its response close, which can come just after the client has the response.
    let text = '';
    const deadline = Date.now() + 5000;
    for (;;) {
      const res = await fetch(`${proxy.adminUrl}/metrics`);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      text = await res.text();
      const counted = [...text.matchAll(/^tenantgate_requests_total\{[^}]*\} (\d+)$/gm)].reduce((a, m) => a + Number(m[1]), 0);
      if (counted >= 11 || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const stable = stableMetrics(text);
    if (process.env.UPDATE_GOLDEN === '1') writeFileSync(GOLDEN, `${stable}\n`);
    expect(`${stable}\n`).toBe(readFileSync(GOLDEN, 'utf8'));

    // The histograms' +Inf bucket equals the count (what the golden file holds), and default process metrics are there.
    expect(text).toMatch(/^tenantgate_request_duration_seconds_bucket\{le="\+Inf",route="api",status_class="2xx"\} 4$/m);
    expect(text).toMatch(/^tenantgate_upstream_duration_seconds_bucket\{le="\+Inf",route="api"\} 5$/m);
    // globex's two checks, decided by the in-memory store without waiting: both in the first bucket, at 0.
    expect(text).toMatch(/^tenantgate_limit_wait_seconds_bucket\{le="0.0001"\} 2$/m);
    expect(text).toMatch(/^tenantgate_limit_wait_seconds_sum 0$/m);
    expect(text).toMatch(/^process_cpu_user_seconds_total /m);
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds /m);
  });

  it('bounds the tenant label: past metrics.maxTenantLabels, tenants count as "other"', async () => {
    proxy = await startProxy(config(upstream.url, 'metrics: { maxTenantLabels: 2 }'));
    for (const k of [acmeKey, globexKey, initechKey, initechKey]) await (await fetch(`${proxy.url}/api/x`, { headers: { 'x-api-key': k.key } })).arrayBuffer();
    const text = await metricsOnce(proxy.adminUrl, /tenant="other"\} 2/);
    expect(text).toMatch(/tenantgate_requests_total\{route="api",method="GET",status_class="2xx",tenant="acme"\} 1/);
    expect(text).toMatch(/tenantgate_requests_total\{route="api",method="GET",status_class="2xx",tenant="globex"\} 1/);
    expect(text).toMatch(/tenantgate_requests_total\{route="api",method="GET",status_class="2xx",tenant="other"\} 2/);
    expect(text).not.toContain('tenant="initech"');
  });

  it('metrics.enabled: false — requests still flow, nothing is counted, /metrics answers 404; a reload turns them back on', async () => {
    proxy = await startProxy(config(upstream.url, 'metrics: { enabled: false }'));
    const seenBefore = upstream.requests.length;
    for (const k of [acmeKey, globexKey, globexKey]) await (await fetch(`${proxy.url}/api/off`, { headers: { 'x-api-key': k.key } })).arrayBuffer();
    expect(await (await fetch(`${proxy.url}/api/off`)).json()).toMatchObject({ error: { code: 'unauthenticated' } });
    // The upstream got the two admitted requests (globex's second was rate limited), metrics or not.
    expect(upstream.requests.length - seenBefore).toBe(2);
    const off = await fetch(`${proxy.adminUrl}/metrics`);
    expect(off.status).toBe(404);
    expect(off.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await off.json()).toMatchObject({ error: { code: 'no_route', message: 'Metrics are off (metrics.enabled: false).' } });

    writeFileSync(proxy.configFile, readFileSync(proxy.configFile, 'utf8').replace('metrics: { enabled: false }', 'metrics: { enabled: true }'));
    expect(await proxy.gate.reload()).toBe(true);
    await (await fetch(`${proxy.url}/api/on`, { headers: { 'x-api-key': initechKey.key } })).arrayBuffer();
    expect((await fetch(`${proxy.url}/api/on`, { headers: { 'x-api-key': globexKey.key } })).status).toBe(429);
    const text = await metricsOnce(proxy.adminUrl, /tenant="globex"\} 1/);
    // Only what came after the reload: the four requests while off left no trace, in any series.
    expect(text).toMatch(/^tenantgate_requests_total\{route="api",method="GET",status_class="2xx",tenant="initech"\} 1$/m);
    expect(text).toMatch(/^tenantgate_requests_total\{route="api",method="GET",status_class="4xx",tenant="globex"\} 1$/m);
    expect(text).not.toMatch(/^tenantgate_requests_total\{[^}]*status_class="2xx",tenant="globex"/m);
    expect(text).not.toContain('tenant="acme"');
    expect(text).toMatch(/^tenantgate_limited_total\{tenant="globex",route="api",limit="rate"\} 1$/m);
    expect(text).not.toMatch(/^tenantgate_auth_failures_total\{/m);
    // globex's three limit checks, one after the reload: only that one was timed.
    expect(text).toMatch(/^tenantgate_limit_wait_seconds_count 1$/m);
    expect(text).toMatch(/^tenantgate_config_reloads_total\{result="success"\} 1$/m);
  });

  it('bounds the method label: an unusual method counts as OTHER', async () => {
    proxy = await startProxy(config(upstream.url));
    expect((await fetch(`${proxy.url}/public/x`, { method: 'PROPFIND' })).status).toBe(200);
    const text = await metricsOnce(proxy.adminUrl, /method="OTHER"/);
    expect(text).toMatch(/tenantgate_requests_total\{route="public",method="OTHER",status_class="2xx",tenant=""\} 1/);
  });
});

describe('access log', () => {
  let p: SpawnedProxy;
  afterEach(async () => p?.stop());

  it('one JSON line per request with the issue\'s fields; 5xx at error, rejections at info; no credential anywhere', async () => {
    p = await spawnProxy(config(upstream.url, 'logging: { level: info }'));
    const jwt = await new SignJWT({ tid: 'acme', roles: ['member'] })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer('https://idp.test/')
      .setAudience('api')
      .setSubject('user-1')
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(HS_SECRET));
    const secrets = [acmeKey.key, jwt, 'session=s3cr3t-cookie-value', 'assertion-value-from-client', 'query-secret-value'];
    const sent: [string, number][] = [];
    const send = async (path: string, headers: Record<string, string>, init: RequestInit = {}) => {
      const res = await fetch(`${p.url}${path}`, { ...init, headers });
      await res.arrayBuffer();
      sent.push([res.headers.get('x-request-id')!, res.status]);
    };
    await send('/api/ok?token=query-secret-value', { 'x-api-key': acmeKey.key, cookie: 'session=s3cr3t-cookie-value', 'x-tenant-assertion': 'assertion-value-from-client' });
    await send('/api/jwt', { authorization: `Bearer ${jwt}` });
    await send('/api/post', { authorization: `Bearer ${acmeKey.key}` }, { method: 'POST', body: 'x'.repeat(1234) });
    await send('/api/fail', { 'x-api-key': acmeKey.key });
    await send('/api/bad', { 'x-api-key': tampered(acmeKey.key) });
    await send('/api/bad', { authorization: `Bearer ${tamperedAt(jwt, jwt.indexOf('.') + 5)}` });

    const access = await waitForAccessLines(p, sent.length);
    for (const line of p.logs) expect(typeof line, `not JSON: ${String(line)}`).toBe('object');
    const byId = new Map(access.map((l) => [l.requestId, l]));
    for (const [id, status] of sent) expect(byId.get(id)?.status, id).toBe(status);

    const ok = byId.get(sent[0]![0])!;
    expect(ok).toMatchObject({ level: 30, tenant: 'acme', apiKeyId: 'ak_acme', route: 'api', method: 'GET', path: '/api/ok', outcome: 'forwarded', bytesIn: 0, bytesOut: 11 });
    expect(ok.durationMs).toBeGreaterThan(0);
    expect(ok.upstreamMs).toBeGreaterThan(0);
    expect(ok.upstreamMs).toBeLessThanOrEqual(ok.durationMs as number);
    expect(byId.get(sent[1]![0])).toMatchObject({ tenant: 'acme', apiKeyId: null, outcome: 'forwarded' });
    expect(byId.get(sent[2]![0])).toMatchObject({ method: 'POST', bytesIn: 1234, bytesOut: 11 });
    expect(byId.get(sent[3]![0])).toMatchObject({ level: 50, status: 500, outcome: 'forwarded' });
    expect(byId.get(sent[4]![0])).toMatchObject({ level: 30, status: 401, outcome: 'unauthenticated', tenant: null, upstreamMs: null });
    expect(byId.get(sent[5]![0])).toMatchObject({ level: 30, status: 401, outcome: 'unauthenticated' });

    const everything = JSON.stringify(p.logs);
    for (const s of secrets) expect(everything).not.toContain(s);
    // Not even the secret half of a key (its id is fine to log).
    expect(everything).not.toContain(acmeKey.key.slice(acmeKey.key.lastIndexOf('_') + 1));
  });

  it('sample2xx: 0 drops forwarded successes but keeps every rejection and failure', async () => {
    p = await spawnProxy(config(upstream.url, 'logging: { level: info, sample2xx: 0 }'));
    for (let i = 0; i < 5; i++) await (await fetch(`${p.url}/api/x`, { headers: { 'x-api-key': acmeKey.key } })).arrayBuffer();
    await (await fetch(`${p.url}/api/x`)).arrayBuffer();
    await (await fetch(`${p.url}/api/fail`, { headers: { 'x-api-key': acmeKey.key } })).arrayBuffer();
    const access = await waitForAccessLines(p, 2);
    await new Promise((r) => setTimeout(r, 200));
    expect(accessLines(p).map((l) => l.status)).toEqual([401, 500]);
    expect(access).toHaveLength(2);
  });

  it('level: error writes the 5xx lines only, and follows a level change; a line\'s time is the wall clock when its request ended', async () => {
    const lines: string[] = [];
    const logger = createLogger('error', { write: (line: string) => void lines.push(line) });
    const running = await startProxy(config(upstream.url), {}, logger);
    try {
      const before = Date.now();
      for (let i = 0; i < 3; i++) await (await fetch(`${running.url}/api/x`, { headers: { 'x-api-key': acmeKey.key } })).arrayBuffer();
      await (await fetch(`${running.url}/api/x`)).arrayBuffer(); // a 401
      const failed = await fetch(`${running.url}/api/fail`, { headers: { 'x-api-key': acmeKey.key } });
      await failed.arrayBuffer();
      const after = Date.now();
      const access = () => lines.map((l) => JSON.parse(l) as LogLine).filter((l) => l.msg === 'request');
      // A request is accounted when its response has closed, which can be just after the client has read it.
      const settled = async (n: number) => {
        for (let i = 0; i < 100 && access().length < n; i++) await new Promise((r) => setTimeout(r, 20));
        await new Promise((r) => setTimeout(r, 100));
      };
      await settled(1);
      expect(access()).toHaveLength(1);
      expect(access()[0]).toMatchObject({ level: 50, status: 500, requestId: failed.headers.get('x-request-id') });
      // From performance.now() plus an offset kept within 2 ms of Date.now() (observability/clock.ts): within the requests' span.
      const time = Date.parse(access()[0]!.time as string);
      expect(time).toBeGreaterThanOrEqual(before - 3);
      expect(time).toBeLessThanOrEqual(after + 3);
      // What a config reload does (app.ts): the next request's line follows the new level.
      logger.level = 'info';
      await (await fetch(`${running.url}/api/x`, { headers: { 'x-api-key': acmeKey.key } })).arrayBuffer();
      await settled(2);
      expect(access().map((l) => [l.level, l.status])).toEqual([[50, 500], [30, 200]]);
    } finally {
      await running.close();
    }
  });
});

describe('requests refused before any stage: by the HTTP parser, and CONNECT', () => {
  let p: SpawnedProxy;
  let dir: string;
  afterEach(async () => {
    await p?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('each gets its JSON error and is accounted: a metric, an access line and a usage event with no tenant', async () => {
    dir = mkdtempSync(join(tmpdir(), 'tg-refused-'));
    const events = join(dir, 'events.ndjson');
    p = await spawnProxy(
      config(upstream.url, `logging: { level: info }\nlisten: { host: 127.0.0.1, port: 0, maxHeaderBytes: 4096 }\nusage: { spoolDir: "${join(dir, 'spool')}", sinks: [{ type: file, path: "${events}", flushMs: 10 }] }`),
    );
    const before = upstream.requests.length;
    const answers = [
      await rawExchange(p.port, 'GET /api/x HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n'),
      await rawExchange(p.port, `GET /api/x HTTP/1.1\r\nHost: a\r\nX-Big: ${'b'.repeat(8000)}\r\n\r\n`),
      await rawExchange(p.port, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nX-API-Key: ' + acmeKey.key + '\r\n\r\n'),
    ];
    expect(answers.map((a) => [a.status, a.code])).toEqual([
      [400, 'bad_request'],
      [431, 'headers_too_large'],
      [405, 'method_not_allowed'],
    ]);
    expect(upstream.requests.length).toBe(before);

    const text = await metricsOnce(p.adminUrl, /status_class="4xx",tenant=""\} 3/);
    expect(text).toMatch(/^tenantgate_requests_total\{route="",method="OTHER",status_class="4xx",tenant=""\} 3$/m);

    const access = await waitForAccessLines(p, 3);
    const byId = new Map(access.map((l) => [l.requestId, l]));
    for (const [i, outcome] of ['bad_request', 'headers_too_large', 'method_not_allowed'].entries()) {
      expect(byId.get(answers[i]!.requestId), outcome).toMatchObject({ level: 30, outcome, tenant: null, route: null, path: '', upstreamMs: null, bytesIn: 0 });
    }
    expect(byId.get(answers[1]!.requestId)).toMatchObject({ reason: 'HPE_HEADER_OVERFLOW', status: 431 });

    const deadline = Date.now() + 5000;
    let lines: Record<string, unknown>[] = [];
    while (Date.now() < deadline) {
      // The file sink creates its file with its first batch.
      const text = existsSync(events) ? readFileSync(events, 'utf8') : '';
      lines = text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
      if (lines.length >= 3) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(lines.map((e) => [e.requestId, e.outcome, e.tenantId, e.cost])).toEqual(answers.map((a) => [a.requestId, a.code, null, 0]));
    expect(JSON.stringify(p.logs) + readFileSync(events, 'utf8')).not.toContain(acmeKey.key);
  });
});

/** Writes raw bytes and reads the answer: status, error code and request id from the JSON body. */
function rawExchange(port: number, text: string): Promise<{ status: number; code: string; requestId: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(text));
    let buf = '';
    socket.on('data', (d) => (buf += d.toString()));
    socket.on('error', reject);
    socket.on('close', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(buf)?.[1]);
      const body = JSON.parse(buf.slice(buf.indexOf('\r\n\r\n') + 4)) as { error: { code: string; requestId: string } };
      resolve({ status, code: body.error.code, requestId: body.error.requestId });
    });
  });
}

/** The same string with the character at `i` changed (never to itself: a key ending in "x" stays valid with "x"). */
function tamperedAt(s: string, i: number): string {
  return `${s.slice(0, i)}${s[i] === 'x' ? 'y' : 'x'}${s.slice(i + 1)}`;
}
/** An API key with its last character (part of its checksum) changed. */
const tampered = (s: string): string => tamperedAt(s, s.length - 1);

/** The /metrics text once it matches `ready` (accounting runs when the server sees the response close), or after 5 s. */
async function metricsOnce(adminUrl: string, ready: RegExp): Promise<string> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const text = await (await fetch(`${adminUrl}/metrics`)).text();
    if (ready.test(text) || Date.now() > deadline) return text;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** fetch() cannot set Host; node:http can. */
function statusWithHost(port: number, path: string, host: string, key: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ port, host: '127.0.0.1', path, headers: { host, 'x-api-key': key } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
    req.end();
  });
}

type LogLine = Record<string, unknown>;

function accessLines(p: SpawnedProxy): LogLine[] {
  return p.logs.filter((l): l is LogLine => typeof l === 'object' && l !== null && (l as LogLine).msg === 'request');
}

async function waitForAccessLines(p: SpawnedProxy, n: number): Promise<LogLine[]> {
  const deadline = Date.now() + 5000;
  while (accessLines(p).length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const lines = accessLines(p);
  expect(lines.length).toBeGreaterThanOrEqual(n);
  return lines;
}
