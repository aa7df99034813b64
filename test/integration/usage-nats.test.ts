/**
 * The NATS JetStream sink (issue #34, SPEC §16) against real servers: the
 * machine's nats-server with JetStream on 4222, on a stream each test creates
 * for itself and deletes. Every event is one message on `<prefix>.<tenant>`
 * with `Nats-Msg-Id` = event id; a replay of the spool is dropped by the
 * stream as duplicates; a consumer reads each event once. NATS unreachable:
 * the events are spooled, and delivered by the next process that reaches it.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudEvent } from 'cloudevents';
import { afterEach, describe, expect, it } from 'vitest';
import { createUsageRecorder } from '../../src/usage/index.js';
import { closedPort } from '../helpers/fwd-net.js';
import { createTestStream, hasNatsServer, OwnNatsServer, type TestStream } from '../helpers/nats.js';
import { captureLogger, deliveryCounter, eventually, makeEvents, spoolIds, usageConfig } from '../helpers/usage-sinks.js';
import type { UsageEvent } from '../../src/usage/types.js';

const TUNING = { spool: { fsyncMs: 20 }, replay: { minBackoffMs: 50, maxBackoffMs: 300 }, flushTimeoutMs: 3000 };
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => undefined);
});

async function stream(url?: string): Promise<TestStream> {
  const s = await createTestStream(url);
  cleanups.push(() => s.remove());
  return s;
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tg-usage-nats-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function recorder(spoolDir: string, sink: Record<string, unknown>) {
  const counter = deliveryCounter();
  const r = await createUsageRecorder(usageConfig({ spoolDir, ...TUNING, sinks: [{ type: 'nats', name: 'nats', flushMs: 20, batchSize: 50, timeoutMs: 1000, ...sink }] }), {
    redis: null,
    logger: captureLogger().logger,
    onDelivery: counter.onDelivery,
  });
  cleanups.push(() => r.close());
  return { recorder: r, counter };
}

/** 3 tenants (one with a dot in its id) and events refused before a tenant was known. */
function mixedEvents(n: number, prefix: string): UsageEvent[] {
  const tenants = ['acme', 'globex', 'eu.initech', null];
  return makeEvents(n, prefix).map((e, i) => ({ ...e, tenantId: tenants[i % tenants.length]! }));
}
const token = (tenant: string | null) => (tenant === null ? '_' : tenant.replace('.', '%2E'));
const header = (m: { headers?: { get(k: string): string } }) => m.headers?.get('Nats-Msg-Id');

describe('NATS JetStream usage sink', () => {
  it('publishes each event on <prefix>.<tenant> with Nats-Msg-Id; a replay of the same events is dropped as duplicates', async () => {
    const s = await stream();
    const dir = await tempDir();
    const events = mixedEvents(200, 'n');
    const first = await recorder(join(dir, 'spool'), { url: 'nats://127.0.0.1:4222', stream: s.name, subjectPrefix: s.prefix });
    for (const e of events) first.recorder.record(e);
    await first.recorder.close();
    expect(first.counter.get('nats/sent')).toBe(200);

    // A spool left behind (a crash after delivery, before the cursor was saved): the next recorder replays it all.
    await mkdir(join(dir, 'spool2', 'nats'), { recursive: true });
    await writeFile(join(dir, 'spool2', 'nats', '0000000000000001.ndjson'), `${events.map((e) => JSON.stringify(e)).join('\n')}\n`);
    const second = await recorder(join(dir, 'spool2'), { url: 'nats://127.0.0.1:4222', stream: s.name, subjectPrefix: s.prefix });
    await eventually(() => second.counter.get('nats/replayed') >= 200, 'the spool replayed');
    await second.recorder.close();

    const msgs = await s.readAll(200);
    expect(msgs).toHaveLength(200);
    const byId = new Map(events.map((e) => [e.id, e]));
    expect(new Set(msgs.map((m) => header(m)))).toEqual(new Set(byId.keys()));
    for (const m of msgs) {
      const body = m.json<UsageEvent>();
      expect(header(m)).toBe(body.id);
      expect(m.subject).toBe(`${s.prefix}.${token(byId.get(body.id)!.tenantId as string | null)}`);
      expect(m.info.redelivered).toBe(false);
    }
    expect(msgs.map((m) => m.json<UsageEvent>().id)).toEqual(events.map((e) => e.id));
  });

  it('format cloudevents: every message is a valid CloudEvent whose id is the Nats-Msg-Id', async () => {
    const s = await stream();
    const dir = await tempDir();
    const events = mixedEvents(40, 'c');
    const { recorder: r } = await recorder(join(dir, 'spool'), { url: 'nats://127.0.0.1:4222', stream: s.name, subjectPrefix: s.prefix, format: 'cloudevents', subject: 'key' });
    for (const e of events) r.record(e);
    await r.close();
    const msgs = await s.readAll(40);
    expect(msgs).toHaveLength(40);
    for (const m of msgs) {
      const ce = new CloudEvent<Record<string, unknown>>(m.json<Record<string, unknown>>(), true);
      expect(ce.id).toBe(header(m));
      expect(ce.subject).toBe('ak_1');
      expect(ce.type).toBe('tenantgate.request');
    }
  });

  it('NATS unreachable: events are spooled, and the next process that reaches it delivers each once', async () => {
    const s = await stream();
    const dir = await tempDir();
    const spoolDir = join(dir, 'spool');
    const events = mixedEvents(120, 'u');
    const down = await recorder(spoolDir, { url: `nats://127.0.0.1:${await closedPort()}`, stream: s.name, subjectPrefix: s.prefix });
    for (const e of events) down.recorder.record(e);
    await eventually(() => down.counter.get('nats/spooled') >= 120, '120 events spooled');
    await down.recorder.close();
    expect(new Set(await spoolIds(join(spoolDir, 'nats')))).toEqual(new Set(events.map((e) => e.id)));

    const up = await recorder(spoolDir, { url: 'nats://127.0.0.1:4222', stream: s.name, subjectPrefix: s.prefix });
    await eventually(() => up.counter.get('nats/replayed') >= 120, 'the spool delivered');
    const msgs = await s.readAll(120);
    expect(msgs.map((m) => header(m))).toEqual(events.map((e) => e.id));
  });

  it.skipIf(!hasNatsServer)('a nats-server killed with SIGKILL mid-load and restarted: every event arrives once', async () => {
    const server = new OwnNatsServer();
    await server.start();
    cleanups.push(() => server.kill());
    const s = await stream(server.url);
    const dir = await tempDir();
    const events = mixedEvents(300, 'k');
    const { recorder: r, counter } = await recorder(join(dir, 'spool'), { url: server.url, stream: s.name, subjectPrefix: s.prefix, timeoutMs: 500 });
    for (const e of events.slice(0, 100)) r.record(e);
    await eventually(() => counter.get('nats/sent') >= 100, 'first 100 sent');
    await server.kill();
    for (const e of events.slice(100, 200)) r.record(e);
    await eventually(() => counter.get('nats/spooled') > 0, 'events spooled while the server is down');
    await server.start();
    for (const e of events.slice(200)) r.record(e);
    await eventually(() => counter.get('nats/sent') + counter.get('nats/replayed') >= 300, 'every event delivered', 30_000);
    const msgs = await s.readAll(300);
    expect(msgs.map((m) => header(m))).toEqual(events.map((e) => e.id));
  });
});
