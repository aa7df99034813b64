/**
 * Usage delivery with real parts: a real redis-server (killed with SIGKILL
 * mid-stream, then restarted), real HTTP collectors on loopback (answering
 * 500, then refusing connections), real files and spool segments in a temp
 * dir. At-least-once means: after removing repeats, every sink holds exactly
 * the ids recorded, in the order recorded.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runUsage } from '../../src/cli/usage.js';
import { createUsageRecorder } from '../../src/usage/index.js';
import type { UsageRecorder } from '../../src/usage/types.js';
import { closedPort } from '../helpers/fwd-net.js';
import { ROOT } from '../helpers/servers.js';
import { RedisServer } from '../helpers/redis.js';
import {
  assertDeliveredInOrder,
  captureLogger,
  deliveryCounter,
  eventually,
  fileIds,
  HttpCollector,
  makeEvents,
  spoolIds,
  streamIds,
  usageConfig,
} from '../helpers/usage-sinks.js';

const FAST = { batchSize: 50, flushMs: 20 };
const TUNING = { spool: { fsyncMs: 20, segmentBytes: 16 * 1024 }, replay: { minBackoffMs: 50, maxBackoffMs: 400 }, flushTimeoutMs: 2000 };
const HTTP = { ...FAST, retries: 1, backoffMs: 20, timeoutMs: 2000 };

let dir: string;
let redis: RedisServer;
const recorders: UsageRecorder[] = [];
const collectors: HttpCollector[] = [];

beforeAll(async () => {
  redis = new RedisServer();
  await redis.start();
});
afterAll(async () => {
  await redis.kill();
});
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tg-usage-'));
});
afterEach(async () => {
  for (const r of recorders.splice(0)) await r.close();
  for (const c of collectors.splice(0)) await c.stop();
  await rm(dir, { recursive: true, force: true });
});

async function collector(): Promise<HttpCollector> {
  const c = new HttpCollector();
  await c.start();
  collectors.push(c);
  return c;
}

async function recorder(usage: Record<string, unknown>, redisUrl: string | null = redis.url) {
  const counter = deliveryCounter();
  const log = captureLogger();
  const config = usageConfig({ spoolDir: join(dir, 'spool'), ...TUNING, ...usage });
  const r = await createUsageRecorder(config, { redis: redisUrl, logger: log.logger, onDelivery: counter.onDelivery });
  recorders.push(r);
  return { recorder: r, counter, log };
}

describe('usage delivery', () => {
  it('every sink delivers N events in order: redis-stream, file, http (JSON array and NDJSON)', async () => {
    const json = await collector();
    const ndjson = await collector();
    const file = join(dir, 'out', 'usage.ndjson');
    const { recorder: r, counter } = await recorder({
      sinks: [
        { type: 'redis-stream', stream: 'usage:in-order', maxLen: 100_000, ...FAST },
        { type: 'file', path: file, ...FAST },
        { type: 'http', url: json.url, ...HTTP },
        { type: 'http', url: ndjson.url, format: 'ndjson', ...HTTP },
      ],
    });
    const events = makeEvents(1000);
    for (const e of events) r.record(e);
    const sent = events.map((e) => e.id);
    await eventually(async () => (await streamIds(redis.url, 'usage:in-order')).length === 1000, 'redis stream has 1000');
    await eventually(async () => (await fileIds(file)).length === 1000, 'file has 1000');
    await eventually(() => json.ids.length === 1000 && ndjson.ids.length === 1000, 'collectors have 1000');
    expect(await streamIds(redis.url, 'usage:in-order')).toEqual(sent);
    expect(await fileIds(file)).toEqual(sent);
    expect(json.ids).toEqual(sent);
    expect(ndjson.ids).toEqual(sent);
    expect(json.contentTypes[0]).toBe('application/json');
    expect(ndjson.contentTypes[0]).toBe('application/x-ndjson');
    for (const sink of ['redis-stream-0', 'file-0', 'http-0', 'http-1']) expect(counter.get(`${sink}/sent`)).toBe(1000);
  });

  it('a large redis-stream batch (~650 KB) goes out in one EVAL: complete, in order, counted once', async () => {
    const { Redis } = await import('ioredis');
    const admin = new Redis(redis.url);
    const evalCalls = async () => Number(/cmdstat_eval:calls=(\d+)/.exec(await admin.info('commandstats'))?.[1] ?? 0);
    try {
      const { recorder: r, counter } = await recorder({ sinks: [{ type: 'redis-stream', stream: 'usage:pieces', maxLen: 100_000, batchSize: 500, flushMs: 20 }] });
      // One event first: its batch is sent before the batch below is counted.
      const [first] = makeEvents(1, 'warm');
      r.record(first!);
      await eventually(() => counter.get('redis-stream-0/sent') === 1, 'the first event sent');
      // ~1.3 K characters per line, of uneven lengths: one batch of 500 is ~655 K characters.
      const events = makeEvents(500).map((e, i) => ({ ...e, subject: `s${i}-${'x'.repeat(900 + (i % 37) * 7)}` }));
      const before = await evalCalls();
      for (const e of events) r.record(e);
      await eventually(() => counter.get('redis-stream-0/sent') === 501, 'the batch counted as sent');
      expect(await streamIds(redis.url, 'usage:pieces')).toEqual([first!.id, ...events.map((e) => e.id)]);
      expect((await evalCalls()) - before).toBe(1);
      expect(counter.get('redis-stream-0/spooled')).toBe(0);
    } finally {
      admin.disconnect();
    }
  });

  it('redis killed mid-stream and an http sink failing (500, then refused): spooled, replayed in order, none lost; the file sink never waits', async () => {
    const persistent = new RedisServer(dir);
    await persistent.start();
    const http = await collector();
    const file = join(dir, 'usage.ndjson');
    const { recorder: r, counter } = await recorder(
      { sinks: [{ type: 'redis-stream', stream: 'usage:outage', timeoutMs: 500, ...FAST }, { type: 'file', path: file, ...FAST }, { type: 'http', url: http.url, ...HTTP }] },
      persistent.url,
    );
    const events = makeEvents(1500);
    let next = 0;
    const recordSome = async (n: number) => {
      for (const end = next + n; next < end; next++) {
        r.record(events[next]!);
        if (next % 25 === 0) await new Promise((res) => setTimeout(res, 2));
      }
    };
    try {
      await recordSome(300);
      // Mid-stream: kill Redis and fail the collector while events keep coming.
      const killed = persistent.kill();
      http.mode = 'fail';
      await recordSome(300);
      await killed;
      await recordSome(200);
      await eventually(() => counter.get('redis-stream-0/spooled') > 0 && counter.get('http-0/spooled') > 0, 'both sinks spooling');
      // Per-sink independence: the file has everything so far while the other two are down.
      await eventually(async () => (await fileIds(file)).length === next, 'file sink keeps up during the outage');
      await http.stop(); // now connections are refused
      await recordSome(300);
      await eventually(() => counter.get('http-0/spooled') + counter.get('http-0/sent') >= next, 'http events all spooled or sent');
      await persistent.start();
      http.mode = 'ok';
      await http.start();
      await recordSome(400);
      const sent = events.map((e) => e.id);
      await eventually(() => new Set(http.ids).size === sent.length, 'http has every id', 30_000);
      await eventually(async () => new Set(await streamIds(persistent.url, 'usage:outage')).size === sent.length, 'redis has every id', 30_000);
      assertDeliveredInOrder(http.ids, sent);
      assertDeliveredInOrder(await streamIds(persistent.url, 'usage:outage'), sent);
      expect(await fileIds(file)).toEqual(sent);
      expect(counter.get('redis-stream-0/replayed')).toBeGreaterThan(0);
      expect(counter.get('http-0/replayed')).toBeGreaterThan(0);
      expect(counter.get('file-0/spooled')).toBe(0);
      // Caught up: the spool directories are empty again.
      await eventually(async () => (await spoolIds(join(dir, 'spool', 'http-0'))).length === 0 && (await spoolIds(join(dir, 'spool', 'redis-stream-0'))).length === 0, 'spools emptied');
    } finally {
      await r.close();
      await persistent.kill();
    }
  });

  it('a full queue spools instead of dropping; everything still arrives in order', async () => {
    const http = await collector();
    const { recorder: r, counter } = await recorder({ queueSize: 40, sinks: [{ type: 'http', url: http.url, ...HTTP }] });
    const events = makeEvents(500);
    for (const e of events) r.record(e); // one tick: the queue fills at 40
    await eventually(() => new Set(http.ids).size === 500, 'all delivered');
    assertDeliveredInOrder(http.ids, events.map((e) => e.id));
    expect(counter.get('http-0/spooled')).toBeGreaterThanOrEqual(460);
    // The collector holds the ids before the lane has read its answer and counted the batch as replayed.
    await eventually(() => counter.get('http-0/replayed') >= 460, 'the replayed batches counted');
  });

  it('flush() with a full queue and dead sinks leaves every event in the spool on disk', async () => {
    const dead = new RedisServer();
    await dead.start();
    await dead.kill();
    const { recorder: r } = await recorder(
      {
        queueSize: 100,
        sinks: [
          { type: 'http', url: `http://127.0.0.1:${await closedPort()}/usage`, ...HTTP, flushMs: 60_000 },
          { type: 'redis-stream', stream: 'usage:dead', timeoutMs: 200, ...FAST, flushMs: 60_000 },
        ],
      },
      dead.url,
    );
    const events = makeEvents(350);
    for (const e of events) r.record(e);
    await r.flush();
    const sent = events.map((e) => e.id);
    expect(await spoolIds(join(dir, 'spool', 'http-0'))).toEqual(sent);
    expect(await spoolIds(join(dir, 'spool', 'redis-stream-0'))).toEqual(sent);
  });

  it('a new recorder replays a spool left behind by a crash (segments on disk, no close())', async () => {
    // A spool written by hand, as a killed process leaves it: two segments, the last cut mid-line.
    const events = makeEvents(120, 'crash');
    const lines = events.map((e) => JSON.stringify(e));
    const fileSpool = join(dir, 'spool', 'file-0');
    await mkdir(fileSpool, { recursive: true });
    await writeFile(join(fileSpool, '0000000000000007.ndjson'), `${lines.slice(0, 60).join('\n')}\n`);
    await writeFile(join(fileSpool, '0000000000000008.ndjson'), `${lines.slice(60).join('\n')}\n{"id":"half-writ`);

    // A recorder whose http sink is down spools, and is then abandoned without close().
    const crashed = await recorder({ sinks: [{ type: 'http', url: `http://127.0.0.1:${await closedPort()}/usage`, ...HTTP }] });
    for (const e of events) crashed.recorder.record(e);
    await eventually(async () => (await spoolIds(join(dir, 'spool', 'http-0'))).length === 120, 'http events spooled');

    const http = await collector();
    const file = join(dir, 'usage.ndjson');
    const { recorder: r, counter } = await recorder({ sinks: [{ type: 'file', path: file, ...FAST }, { type: 'http', url: http.url, ...HTTP }] });
    const later = makeEvents(30, 'later');
    for (const e of later) r.record(e);
    const sent = [...events, ...later].map((e) => e.id);
    await eventually(async () => (await fileIds(file)).length >= 150 && new Set(http.ids).size === 150, 'spool replayed and new events delivered');
    assertDeliveredInOrder(await fileIds(file), sent);
    assertDeliveredInOrder(http.ids, sent);
    // The lines are in the file a moment before the lane, its write done, counts them as replayed.
    await eventually(() => counter.get('file-0/replayed') >= 120, 'replays counted');
    expect(counter.get('file-0/replayed')).toBeGreaterThanOrEqual(120);
    await eventually(async () => (await readdir(fileSpool)).length === 0, 'replayed segments deleted');
  });

  it('a process killed with SIGKILL leaves its spool, and the next start replays it', async () => {
    const config = usageConfig({ spoolDir: join(dir, 'spool'), ...TUNING, sinks: [{ type: 'http', url: `http://127.0.0.1:${await closedPort()}/usage`, ...HTTP }] });
    // The built recorder in a child process (like the other process tests, this needs `npm run build`).
    const script = `
      import { createUsageRecorder } from ${JSON.stringify(join(ROOT, 'dist/usage/index.js'))};
      import { createLogger } from ${JSON.stringify(join(ROOT, 'dist/observability/logger.js'))};
      let spooled = 0;
      const r = await createUsageRecorder(${JSON.stringify(config)}, { redis: null, logger: createLogger('silent'), onDelivery(sink, outcome, n) {
        if (outcome === 'spooled' && (spooled += n) === 200) process.stdout.write('spooled\\n');
      } });
      for (let i = 0; i < 200; i++) r.record({ id: 'k-' + String(i).padStart(6, '0'), ts: new Date().toISOString(), type: 'request', tenantId: 'acme' });
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => void (out += d.toString()));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    try {
      await eventually(() => out.includes('spooled'), 'child spooled its events');
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    const http = await collector();
    const { counter } = await recorder({ sinks: [{ type: 'http', url: http.url, ...HTTP }] });
    const sent = Array.from({ length: 200 }, (_, i) => `k-${String(i).padStart(6, '0')}`);
    await eventually(() => new Set(http.ids).size === 200, 'spool of the killed process replayed');
    assertDeliveredInOrder(http.ids, sent);
    // The collector has a batch when its POST arrives; the lane counts it only once the answer is back.
    await eventually(() => counter.get('http-0/replayed') >= 200, 'replays counted');
    expect(counter.get('http-0/replayed')).toBeGreaterThanOrEqual(200);
  });

  it('with no sinks record() is a no-op; a spool of a sink no longer configured is left alone, with a warning', async () => {
    const none = await recorder({ sinks: [] });
    none.recorder.record(makeEvents(1)[0]!);
    await none.recorder.flush();
    await mkdir(join(dir, 'spool', 'gone-sink'), { recursive: true });
    await writeFile(join(dir, 'spool', 'gone-sink', '0000000000000001.ndjson'), `${JSON.stringify(makeEvents(1)[0])}\n`);
    const { log } = await recorder({ sinks: [{ type: 'file', path: join(dir, 'usage.ndjson'), ...FAST }] });
    expect(log.lines.some((l) => String(l.msg).includes('no longer configured') && String(l.spool).endsWith('gone-sink'))).toBe(true);
    expect(await readdir(join(dir, 'spool', 'gone-sink'))).toEqual(['0000000000000001.ndjson']);
  });

  it('usage report reads a redis stream, de-duplicating by id', async () => {
    const { recorder: r } = await recorder({ sinks: [{ type: 'redis-stream', stream: 'usage:report', ...FAST }] });
    const ok = makeEvents(4, 'ok', { cost: 3, bytesIn: 5, bytesOut: 9 });
    const rejected = makeEvents(2, 'rej', { outcome: 'quota_exceeded', status: 429, cost: 0, bytesIn: 0, bytesOut: 20 });
    for (const e of [...ok, ...rejected, ...ok.slice(0, 2)]) r.record(e);
    r.record({ id: 'warn-1', ts: '2026-11-25T12:00:00Z', type: 'quota_warning', tenantId: 'acme', plan: 'pro', quota: 'daily', threshold: 0.8, used: 8, limit: 10, period: '2026-11-25' });
    await eventually(async () => (await streamIds(redis.url, 'usage:report')).length === 9, 'stream written');
    let out = '';
    const code = await runUsage(['report', '--from', '2026-11-25', '--to', '2026-11-25', '--json', '--redis', redis.url, '--stream', 'usage:report'], { stdout: (s) => void (out += s), stderr: () => undefined });
    expect(code).toBe(0);
    const report = JSON.parse(out) as { tenants: unknown[]; duplicates: number };
    expect(report.tenants).toEqual([{ tenant: 'acme', requests: 6, cost: 12, bytesIn: 20, bytesOut: 76, rejections: 2 }]);
    expect(report.duplicates).toBe(2);

    let err = '';
    const down = await runUsage(['report', '--from', '2026-11-25', '--to', '2026-11-25', '--redis', `redis://:secret@127.0.0.1:${await closedPort()}`, '--stream', 's'], { stdout: () => undefined, stderr: (s) => void (err += s) });
    expect(down).toBe(1);
    expect(err).toMatch(/cannot read stream "s"/);
    expect(err).not.toContain('secret');
  });
});
