/**
 * One lane's ordering rules, with a sink the test controls (answers, fails,
 * or holds a batch until told) and a real spool in a temp dir.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Lane, type LaneOptions } from '../../../src/usage/lane.js';
import { Spool } from '../../../src/usage/spool.js';
import type { UsageSink } from '../../../src/usage/types.js';
import { assertDeliveredInOrder, captureLogger, deliveryCounter, eventually, spoolIds } from '../../helpers/usage-sinks.js';

class ControlledSink implements UsageSink {
  readonly name = 'test';
  mode: 'ok' | 'fail' | 'manual' = 'ok';
  readonly received: string[] = [];
  readonly held: { lines: readonly string[]; resolve: () => void; reject: (e: Error) => void }[] = [];
  async send(lines: readonly string[]): Promise<void> {
    if (this.mode === 'fail') throw new Error('sink down');
    if (this.mode === 'manual') {
      await new Promise<void>((resolve, reject) => this.held.push({ lines, resolve, reject }));
    }
    this.received.push(...lines);
  }
  async close(): Promise<void> {}
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tg-lane-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const ids = (n: number, p = 'e') => Array.from({ length: n }, (_, i) => `${p}${String(i).padStart(5, '0')}`);
const idOf = (line: string) => (JSON.parse(line) as { id: string }).id;
const line = (id: string) => JSON.stringify({ id });

async function lane(sink: UsageSink, opts: Partial<LaneOptions> = {}) {
  const counter = deliveryCounter();
  const { logger } = captureLogger();
  const spool = await Spool.open(join(dir, sink.name), { segmentBytes: 4096, fsyncMs: 20 }, (n) => counter.onDelivery(sink.name, 'spooled', n), logger);
  const l = new Lane(sink, spool, { batchSize: 10, flushMs: 20, queueSize: 100, minBackoffMs: 10, maxBackoffMs: 100, ...opts }, counter.onDelivery, logger);
  return { lane: l, counter };
}

describe('usage lane', () => {
  it('delivers in order, in batches of at most batchSize', async () => {
    const sink = new ControlledSink();
    const { lane: l, counter } = await lane(sink);
    const sent = ids(95);
    for (const id of sent) l.push(line(id));
    await eventually(() => sink.received.length === 95, 'all delivered');
    expect(sink.received.map(idOf)).toEqual(sent);
    expect(counter.get('test/sent')).toBe(95);
    expect(counter.get('test/spooled')).toBe(0);
    await l.close(Date.now() + 1000);
  });

  it('spools while the sink fails and replays in order once it is back', async () => {
    const sink = new ControlledSink();
    const { lane: l, counter } = await lane(sink);
    const sent = ids(200);
    for (const id of sent.slice(0, 50)) l.push(line(id));
    await eventually(() => sink.received.length === 50, 'first part delivered');
    sink.mode = 'fail';
    for (const id of sent.slice(50, 150)) l.push(line(id));
    await eventually(() => counter.get('test/spooled') >= 100, 'second part spooled');
    sink.mode = 'ok';
    for (const id of sent.slice(150)) l.push(line(id));
    await eventually(() => new Set(sink.received).size === 200, 'everything delivered');
    assertDeliveredInOrder(sink.received.map(idOf), sent);
    expect(counter.get('test/replayed')).toBeGreaterThanOrEqual(100);
    // Back to direct delivery: the spool is gone.
    await eventually(async () => (await spoolIds(join(dir, 'test'))).length === 0, 'spool emptied');
    await l.close(Date.now() + 1000);
  });

  it('a full queue spools instead of dropping, and a batch in flight that then fails still goes first', async () => {
    const sink = new ControlledSink();
    sink.mode = 'manual';
    const { lane: l, counter } = await lane(sink, { queueSize: 20, batchSize: 10 });
    const sent = ids(100);
    for (const id of sent.slice(0, 10)) l.push(line(id));
    await eventually(() => sink.held.length === 1, 'first batch in flight');
    // 20 fill the queue; the other 70 overflow into the spool.
    for (const id of sent.slice(10)) l.push(line(id));
    sink.mode = 'ok';
    sink.held[0]!.reject(new Error('failed late'));
    await eventually(() => new Set(sink.received).size === 100, 'everything delivered');
    assertDeliveredInOrder(sink.received.map(idOf), sent);
    expect(counter.get('test/spooled')).toBe(100);
    expect(counter.get('test/replayed')).toBe(100);
    await l.close(Date.now() + 1000);
  });

  it('flush() with a full queue and a sink that never answers leaves everything in the spool on disk', async () => {
    const sink = new ControlledSink();
    sink.mode = 'manual';
    const { lane: l } = await lane(sink, { queueSize: 30, batchSize: 10, flushMs: 60_000 });
    const sent = ids(70);
    for (const id of sent) l.push(line(id));
    await eventually(() => sink.held.length === 1, 'first batch in flight');
    await l.flush(Date.now() + 200);
    expect(await spoolIds(join(dir, 'test'))).toEqual(sent);
    await l.close(Date.now() + 200);
  });

  it('close() mid-replay saves how far it got, and the next start resumes there', async () => {
    const sent = ids(30);
    await mkdir(join(dir, 'test'), { recursive: true });
    await writeFile(join(dir, 'test', '0000000000000001.ndjson'), sent.map((id) => `${line(id)}\n`).join(''));
    const first = new ControlledSink();
    first.mode = 'manual';
    const { lane: l } = await lane(first);
    for (let i = 0; i < 2; i++) {
      await eventually(() => first.held.length === i + 1, `replay batch ${i + 1}`);
      first.held[i]!.resolve();
    }
    await eventually(() => first.held.length === 3, 'third batch in flight');
    await l.close(Date.now() + 100);
    expect(first.received.map(idOf)).toEqual(sent.slice(0, 20));

    const second = new ControlledSink();
    const { lane: again } = await lane(second);
    await eventually(() => second.received.length === 10, 'the rest replayed');
    expect(second.received.map(idOf)).toEqual(sent.slice(20));
    await eventually(async () => (await spoolIds(join(dir, 'test'))).length === 0, 'segment deleted');
    await again.close(Date.now() + 1000);
  });

  it('flush() out of time with nothing in flight still spools the queue', async () => {
    const sink = new ControlledSink();
    const { lane: l } = await lane(sink, { flushMs: 60_000 });
    const sent = ids(5);
    for (const id of sent) l.push(line(id));
    await l.flush(Date.now() - 1);
    expect(await spoolIds(join(dir, 'test'))).toEqual(sent);
    // …and the replay then delivers it.
    await eventually(() => sink.received.length === 5, 'replayed');
    expect(sink.received.map(idOf)).toEqual(sent);
    await l.close(Date.now() + 1000);
  });
});
