/**
 * Usage events end to end (issue #5, SPEC §7) through real proxy processes:
 * one event per request with exactly the SPEC fields, counted across sinks;
 * a redis-server and an HTTP collector taken down mid-load and brought back
 * (every event arrives); SIGTERM with a full queue and a dead sink (all
 * spooled); SIGKILL with a spool on disk (replayed by the next process);
 * quota warnings once per threshold and period.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../src/auth/api-key-format.js';
import { RawConnection } from '../helpers/fwd-net.js';
import { rawJson, rawRequest, spawnProxy, startUpstream, type SpawnedProxy, type Upstream } from '../helpers/servers.js';
import { RedisServer } from '../helpers/redis.js';
import { HttpCollector, dedupe, eventually, fileIds, spoolIds, streamIds } from '../helpers/usage-sinks.js';
import { readFile } from 'node:fs/promises';

const key = generateApiKey({ env: 'live', id: 'ak_use' });
// SPEC §7's fields, then SPEC §13's traceId, SPEC §10's requestedTenant, SPEC §11's limit and SPEC §12's grpcStatus.
const SPEC_FIELDS = ['id', 'ts', 'tenantId', 'projectId', 'apiKeyId', 'subject', 'route', 'method', 'status', 'outcome', 'durationMs', 'bytesIn', 'bytesOut', 'cost', 'requestId', 'plan', 'traceId', 'requestedTenant', 'limit', 'grpcStatus'];

function config(upstream: string, sinks: string, opts: { spoolDir: string; plan?: string }): string {
  return `
logging: { level: info, sample2xx: 0 }
plans:
  metered: ${opts.plan ?? '{ rate: { perSecond: 1000, burst: 1000 } }'}
tenants: [{ id: acme, plan: metered }]
apiKeys:
  - { id: ak_use, tenant: acme, project: web, hash: "${key.hash}", scopes: ["*"] }
routes:
  - { name: api, match: { pathPrefix: /api }, upstream: "${upstream}", auth: [apiKey], cost: 3 }
usage:
  spoolDir: "${opts.spoolDir}"
  sinks:
${sinks}
`;
}

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => undefined);
});

async function upstreamServer(): Promise<Upstream> {
  const u = await startUpstream((_req, res) => res.end('{"ok":true}'));
  cleanups.push(() => u.close());
  return u;
}

async function collector(): Promise<HttpCollector> {
  const c = new HttpCollector();
  await c.start();
  cleanups.push(() => c.stop());
  return c;
}

async function proxy(yaml: string): Promise<SpawnedProxy> {
  const p = await spawnProxy(yaml);
  cleanups.push(() => p.stop('SIGKILL'));
  return p;
}

const tempDir = () => mkdtempSync(join(tmpdir(), 'tg-usage-e2e-'));

/** Sends `n` requests, a mix of admitted and refused, sequentially in small parallel groups; returns their X-Request-IDs. */
async function load(url: string, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i += 10) {
    const group = Array.from({ length: Math.min(10, n - i) }, async (_, j) => {
      const k = i + j;
      const headers: Record<string, string> = k % 5 === 4 ? {} : { 'x-api-key': key.key };
      const res = await fetch(`${url}${k % 7 === 6 ? '/nowhere' : '/api/item'}`, { headers });
      await res.arrayBuffer();
      return res.headers.get('x-request-id')!;
    });
    ids.push(...(await Promise.all(group)));
  }
  return ids;
}

async function metricValue(adminUrl: string, pattern: RegExp): Promise<number> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  return Number(pattern.exec(text)?.[1] ?? 0);
}

describe('usage events through the proxy', () => {
  it('N requests → N events with unique ids and exactly the SPEC fields, in every sink', async () => {
    const dir = tempDir();
    const upstream = await upstreamServer();
    const http = await collector();
    const file = join(dir, 'usage.ndjson');
    const p = await proxy(
      config(upstream.url, `    - { type: file, path: "${file}", flushMs: 50 }\n    - { type: http, url: "${http.url}", flushMs: 50, batchSize: 25 }`, { spoolDir: join(dir, 'spool') }),
    );
    const requestIds = await load(p.url, 120);
    await eventually(async () => (await fileIds(file)).length >= 120 && http.ids.length >= 120, '120 events in both sinks');

    const lines = (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(120);
    expect(new Set(lines.map((e) => e.id)).size).toBe(120);
    expect(dedupe(http.ids).sort()).toEqual(lines.map((e) => e.id).sort());
    expect(lines.map((e) => e.requestId).sort()).toEqual([...requestIds].sort());
    for (const e of lines) expect(Object.keys(e).filter((k) => k !== 'type').sort()).toEqual([...SPEC_FIELDS].sort());
    // In SPEC §7's order, `type` right after `ts`.
    for (const e of lines) expect(Object.keys(e)).toEqual(['id', 'ts', 'type', ...SPEC_FIELDS.slice(2)]);

    const admitted = lines.find((e) => e.outcome === 'forwarded')!;
    expect(admitted).toMatchObject({ type: 'request', tenantId: 'acme', projectId: 'web', apiKeyId: 'ak_use', route: 'api', method: 'GET', status: 200, cost: 3, plan: 'metered', bytesIn: 0, bytesOut: 11 });
    expect(Date.parse(admitted.ts as string)).toBeGreaterThan(Date.now() - 60_000);
    expect(lines.filter((e) => e.outcome === 'unauthenticated').every((e) => e.status === 401 && e.cost === 0 && e.tenantId === null)).toBe(true);
    expect(lines.filter((e) => e.outcome === 'no_route').every((e) => e.status === 404 && e.route === null)).toBe(true);
    expect(lines.filter((e) => e.outcome === 'forwarded')).toHaveLength(120 - lines.filter((e) => e.outcome !== 'forwarded').length);

    expect(await metricValue(p.adminUrl, /tenantgate_usage_events_total\{sink="file-0",outcome="sent"\} (\d+)/)).toBe(120);
    expect(await metricValue(p.adminUrl, /tenantgate_usage_events_total\{sink="http-0",outcome="sent"\} (\d+)/)).toBeGreaterThanOrEqual(120);
  });

  it('a request that never reached the upstream is never billed as forwarded (HTTP/0.9 lines, a client that left first, a public route)', async () => {
    const dir = tempDir();
    let answer: (() => void) | null = null;
    const upstream = await startUpstream((req, res) => {
      if (req.url === '/api/wait') answer = () => res.end('late');
      else res.end('ok');
    });
    cleanups.push(() => (answer?.(), upstream.close()));
    const file = join(dir, 'usage.ndjson');
    const yaml = config(upstream.url, `    - { type: file, path: "${file}", flushMs: 20 }`, { spoolDir: join(dir, 'spool') }).replace(
      'routes:\n',
      `routes:\n  - { name: pub, match: { pathPrefix: /pub }, upstream: "${upstream.url}", auth: [none] }\n`,
    );
    const p = await proxy(yaml);
    for (const line of ['PRI /api/x\r\n\r\n', 'GET /api/x\r\n\r\n']) {
      const res = await rawRequest(p.port, line);
      expect(res.status).toBe(400);
      expect((rawJson(res) as { error: { code: string } }).error.code).toBe('bad_request');
    }
    const leaving = await RawConnection.open(p.port);
    await leaving.write(`GET /api/wait HTTP/1.1\r\nHost: x\r\nX-API-Key: ${key.key}\r\n\r\n`);
    await eventually(async () => answer !== null, 'the upstream holds the request');
    leaving.destroy();
    expect((await fetch(`${p.url}/pub/x`)).status).toBe(200);
    await eventually(async () => (await fileIds(file)).length >= 4, 'four events');
    const events = (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events.slice(0, 2).map((e) => [e.status, e.outcome, e.cost, e.route])).toEqual([[400, 'bad_request', 0, null], [400, 'bad_request', 0, null]]);
    expect(events.find((e) => e.route === 'api')).toMatchObject({ outcome: 'client_aborted', cost: 3, tenantId: 'acme' });
    expect(events.find((e) => e.route === 'pub')).toMatchObject({ outcome: 'forwarded', status: 200, cost: 0, tenantId: null });
    expect(upstream.requests.map((r) => r.url)).toEqual(['/api/wait', '/pub/x']);
  });

  it("an event's id: the request id when tenantgate made it; a fresh UUID when the client sent its own (which can repeat)", async () => {
    const dir = tempDir();
    const upstream = await upstreamServer();
    const file = join(dir, 'usage.ndjson');
    const p = await proxy(config(upstream.url, `    - { type: file, path: "${file}", flushMs: 50 }`, { spoolDir: join(dir, 'spool') }));
    const send = async (headers: Record<string, string>) => (await fetch(`${p.url}/api/item`, { headers: { 'x-api-key': key.key, ...headers } })).headers.get('x-request-id')!;
    const ours = [await send({}), await send({})];
    // A client retrying with its own id sends the same one twice: two requests, two events, two ids.
    const theirs = [await send({ 'x-request-id': 'client-retry-1' }), await send({ 'x-request-id': 'client-retry-1' })];
    await eventually(async () => (await fileIds(file)).length >= 4, '4 events');
    const events = (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { id: string; requestId: string });
    const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    expect(ours.every((id) => UUID_V4.test(id))).toBe(true);
    expect(events.filter((e) => ours.includes(e.requestId)).map((e) => e.id).sort()).toEqual([...ours].sort());
    const retried = events.filter((e) => e.requestId === 'client-retry-1');
    expect(theirs).toEqual(['client-retry-1', 'client-retry-1']);
    expect(retried).toHaveLength(2);
    expect(retried.every((e) => UUID_V4.test(e.id) && !ours.includes(e.id))).toBe(true);
    expect(new Set(events.map((e) => e.id)).size).toBe(4);
  });

  it('redis-server and the HTTP sink go down mid-load and come back: every event arrives (sent + replayed, after de-duplication)', async () => {
    const dir = tempDir();
    const upstream = await upstreamServer();
    const http = await collector();
    const redis = new RedisServer(dir);
    await redis.start();
    cleanups.push(() => redis.kill());
    const p = await proxy(
      config(
        upstream.url,
        `    - { type: redis-stream, url: "${redis.url}", stream: "usage-e2e", flushMs: 20, batchSize: 20 }\n    - { type: http, url: "${http.url}", flushMs: 20, batchSize: 20, retries: 1, backoffMs: 50, timeoutMs: 1000 }`,
        { spoolDir: join(dir, 'spool') },
      ),
    );
    const before = await load(p.url, 100);
    await redis.kill();
    await http.stop();
    const during = await load(p.url, 150);
    await eventually(async () => (await metricValue(p.adminUrl, /tenantgate_usage_events_total\{sink="http-0",outcome="spooled"\} (\d+)/)) > 0, 'http events spooled');
    await redis.start();
    await http.start();
    const after = await load(p.url, 100);
    const all = [...before, ...during, ...after];
    expect(all).toHaveLength(350);

    await eventually(async () => dedupe(http.ids).length >= 350, 'every event at the HTTP collector', 30_000);
    await eventually(async () => dedupe(await streamIds(redis.url, 'usage-e2e')).length >= 350, 'every event in the stream', 30_000);
    expect(dedupe(http.ids)).toHaveLength(350);
    const streamed = dedupe(await streamIds(redis.url, 'usage-e2e'));
    expect(streamed).toHaveLength(350);
    expect(new Set(streamed)).toEqual(new Set(dedupe(http.ids)));

    const sent = await metricValue(p.adminUrl, /tenantgate_usage_events_total\{sink="http-0",outcome="sent"\} (\d+)/);
    const replayed = await metricValue(p.adminUrl, /tenantgate_usage_events_total\{sink="http-0",outcome="replayed"\} (\d+)/);
    expect(replayed).toBeGreaterThan(0);
    expect(sent + replayed).toBeGreaterThanOrEqual(350);
    expect(await metricValue(p.adminUrl, /tenantgate_usage_events_total\{sink="redis-stream-0",outcome="replayed"\} (\d+)/)).toBeGreaterThan(0);
  });

  it('SIGTERM with a full queue and a dead sink: exit 0 with every event on disk', async () => {
    const dir = tempDir();
    const upstream = await upstreamServer();
    const http = await collector();
    await http.stop(); // refused from the start
    const spoolDir = join(dir, 'spool');
    const p = await proxy(config(upstream.url, `    - { type: http, url: "${http.url}", flushMs: 600000, batchSize: 10000, retries: 0, timeoutMs: 500 }`, { spoolDir }));
    await load(p.url, 200);
    expect(await p.stop('SIGTERM')).toBe(0);
    expect(dedupe(await spoolIds(join(spoolDir, 'http-0')))).toHaveLength(200);
  });

  it('SIGKILL with events in the spool: the next process replays them', async () => {
    const dir = tempDir();
    const upstream = await upstreamServer();
    const http = await collector();
    http.mode = 'fail';
    const spoolDir = join(dir, 'spool');
    const yaml = config(upstream.url, `    - { type: http, url: "${http.url}", flushMs: 20, batchSize: 50, retries: 0, timeoutMs: 500 }`, { spoolDir });
    const first = await proxy(yaml);
    await load(first.url, 150);
    await eventually(async () => (await metricValue(first.adminUrl, /tenantgate_usage_events_total\{sink="http-0",outcome="spooled"\} (\d+)/)) >= 150, '150 events spooled');
    await first.stop('SIGKILL');
    expect(http.ids).toHaveLength(0);

    http.mode = 'ok';
    const second = await proxy(yaml);
    await eventually(() => dedupe(http.ids).length >= 150, 'the spool replayed by the next process', 30_000);
    expect(dedupe(http.ids)).toHaveLength(150);
    expect(await metricValue(second.adminUrl, /tenantgate_usage_events_total\{sink="http-0",outcome="replayed"\} (\d+)/)).toBeGreaterThanOrEqual(150);
  });

  it('a redis-stream sink with no Redis configured (SPEC §3 example, REDIS_URL unset): the proxy serves and spools the events', async () => {
    const dir = tempDir();
    const upstream = await upstreamServer();
    const spoolDir = join(dir, 'spool');
    const p = await proxy(config(upstream.url, `    - { type: redis-stream, stream: "tg:usage", flushMs: 20 }`, { spoolDir }));
    const ids = await load(p.url, 30);
    await eventually(async () => dedupe(await spoolIds(join(spoolDir, 'redis-stream-0'))).length >= 30, '30 events spooled');
    expect(ids).toHaveLength(30);
    expect(p.logs.some((l) => (l as { msg?: string }).msg?.includes('events are spooled until one is configured'))).toBe(true);
  });

  it('quota warnings: one event at 80 % and one at 95 % of the daily quota, with stable ids', async () => {
    const dir = tempDir();
    const upstream = await upstreamServer();
    const file = join(dir, 'usage.ndjson');
    // cost 3 per request, daily 60: 48 units (80 %) are reached by request 16 (45 → 48), 57 (95 %) by request 19 (54 → 57).
    const p = await proxy(config(upstream.url, `    - { type: file, path: "${file}", flushMs: 20 }`, { spoolDir: join(dir, 'spool'), plan: '{ quota: { daily: 60 } }' }));
    for (let i = 0; i < 22; i++) await (await fetch(`${p.url}/api/x`, { headers: { 'x-api-key': key.key } })).arrayBuffer();
    await eventually(async () => (await fileIds(file)).length >= 24, 'request events and warnings');
    await new Promise((r) => setTimeout(r, 200));
    const events = (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
    const warnings = events.filter((e) => e.type === 'quota_warning');
    const day = new Date().toISOString().slice(0, 10);
    expect(warnings).toEqual([
      expect.objectContaining({ id: `qw:acme:daily:${day}:0.8`, tenantId: 'acme', plan: 'metered', quota: 'daily', threshold: 0.8, used: 48, limit: 60, period: day }),
      expect.objectContaining({ id: `qw:acme:daily:${day}:0.95`, quota: 'daily', threshold: 0.95, used: 57, limit: 60, period: day }),
    ]);
    const requests = events.filter((e) => e.type === 'request');
    expect(requests.filter((e) => e.outcome === 'forwarded')).toHaveLength(20);
    expect(requests.filter((e) => e.outcome === 'quota_exceeded')).toHaveLength(2);
  });
});
