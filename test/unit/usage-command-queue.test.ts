/**
 * The redis-stream sink's queue (src/usage/sinks/redis-stream-queue.ts):
 * lines encoded as they are queued into whole EVAL commands. Every piece is
 * parsed back here as RESP, the way Redis reads it: the argument count, each
 * argument's byte count and its bytes, the CRLFs. ASCII, non-ASCII (2-, 3-
 * and 4-byte UTF-8) and lines longer than a piece; batches of batchSize in
 * order; the lines decoded back for the spool; buffers reused only after a
 * delivered batch.
 */
import { describe, expect, it } from 'vitest';
import { LineShape } from '../../src/observability/line-shape.js';
import { RequestEventParts, requestEventLine } from '../../src/usage/event-json.js';
import type { QueuedBatch } from '../../src/usage/queue.js';
import { CommandFrame, StreamCommandQueue, type Piece } from '../../src/usage/sinks/redis-stream-queue.js';

const FIXED = ['EVAL', 'return 1', '1', 'usage:stréam', '1000'];

/** A RESP array of bulk strings, as Redis parses it: throws on any framing error. */
function parseCommand(bytes: Buffer): string[] {
  let at = 0;
  const line = (): string => {
    const end = bytes.indexOf('\r\n', at);
    if (end < 0) throw new Error(`no CRLF after ${at}`);
    const text = bytes.toString('latin1', at, end);
    at = end + 2;
    return text;
  };
  const head = line();
  if (!/^\*[1-9][0-9]*$/.test(head)) throw new Error(`bad count line ${head}`);
  const args: string[] = [];
  for (let i = 0, n = Number(head.slice(1)); i < n; i++) {
    const len = line();
    if (!/^\$(0|[1-9][0-9]*)$/.test(len)) throw new Error(`bad length line ${len}`);
    const size = Number(len.slice(1));
    args.push(bytes.toString('utf8', at, at + size));
    if (bytes.toString('latin1', at + size, at + size + 2) !== '\r\n') throw new Error(`argument ${i} not followed by CRLF`);
    at += size + 2;
  }
  if (at !== bytes.length) throw new Error(`${bytes.length - at} bytes after the command`);
  return args;
}

function queue(batchSize: number, deliver: (pieces: readonly Piece[]) => Promise<void> = async () => {}) {
  const sent: string[][] = [];
  const q = new StreamCommandQueue(new CommandFrame(FIXED), batchSize, async (pieces) => {
    for (const p of pieces) sent.push(parseCommand(Buffer.from(p.bytes())));
    await deliver(pieces);
  });
  return { q, sent };
}

const event = (i: number, extra = '') => JSON.stringify({ id: `e${i}`, subject: extra });

describe('redis-stream command queue', () => {
  it('ASCII and non-ASCII lines: every piece is one valid command, the fixed arguments then the lines, in order', async () => {
    const { q, sent } = queue(50);
    const lines = Array.from({ length: 120 }, (_, i) => event(i, ['', 'é', '中文', '💡', 'x'.repeat(i * 13)][i % 5]));
    for (const l of lines) q.push(l);
    expect(q.length).toBe(120);
    const batches: QueuedBatch[] = [];
    while (q.length > 0) batches.push(q.take());
    expect(batches.map((b) => b.count)).toEqual([50, 50, 20]);
    for (const b of batches) await b.send();
    for (const args of sent) expect(args.slice(0, 5)).toEqual(FIXED);
    expect(sent.flatMap((args) => args.slice(5))).toEqual(lines);
  });

  it('pieces of ~32 KiB: a batch of long lines is several commands, each ending with the line that crosses 32 KiB', async () => {
    const { q, sent } = queue(500);
    const lines = Array.from({ length: 300 }, (_, i) => event(i, 'y'.repeat(900 + (i % 37) * 7)));
    for (const l of lines) q.push(l);
    const batch = q.take();
    expect(batch.count).toBe(300);
    await batch.send();
    expect(sent.length).toBeGreaterThan(5);
    for (const args of sent.slice(0, -1)) {
      const lineBytes = args.slice(5).map((l) => `$${l.length}\r\n`.length + l.length + 2);
      const total = lineBytes.reduce((a, b) => a + b, 0);
      expect(total).toBeGreaterThanOrEqual(32 * 1024);
      expect(total - lineBytes.at(-1)!).toBeLessThan(32 * 1024);
    }
    expect(sent.flatMap((args) => args.slice(5))).toEqual(lines);
  });

  it('a line longer than a piece (200 KB, non-ASCII) goes in a command of its own, between its neighbours', async () => {
    const { q, sent } = queue(10);
    const long = event(1, 'ü'.repeat(100_000));
    q.push(event(0));
    q.push(long);
    q.push(event(2));
    const batch = q.take();
    expect(batch.lines()).toEqual([event(0), long, event(2)]);
    await batch.send();
    expect(sent.map((args) => args.length - 5)).toEqual([1, 1, 1]);
    expect(sent.flatMap((args) => args.slice(5))).toEqual([event(0), long, event(2)]);
  });

  it('takeAll(): every queued line as a string, oldest first, sealed batches and the open one; the queue starts again empty', async () => {
    const { q, sent } = queue(4);
    const lines = Array.from({ length: 10 }, (_, i) => event(i, i % 2 ? 'ñ' : ''));
    for (const l of lines) q.push(l);
    expect(q.takeAll()).toEqual(lines);
    expect(q.length).toBe(0);
    q.push(event(99));
    const batch = q.take();
    expect(batch.count).toBe(1);
    await batch.send();
    expect(sent).toEqual([[...FIXED, event(99)]]);
  });

  it('a failed batch keeps its bytes (the spool decodes them); a delivered one gives its buffers back for the next lines', async () => {
    let fail = true;
    const seen = new Set<ArrayBufferLike>();
    const reused: boolean[] = [];
    const { q } = queue(3, async (pieces) => {
      for (const p of pieces) {
        reused.push(seen.has(p.buffer.buffer));
        seen.add(p.buffer.buffer);
      }
      if (fail) throw new Error('down');
    });
    for (let i = 0; i < 3; i++) q.push(event(i));
    const failed = q.take();
    await expect(failed.send()).rejects.toThrow('down');
    for (let i = 3; i < 6; i++) q.push(event(i));
    // Not reused: the failed batch's buffer may still be in a socket's write queue.
    expect(failed.lines()).toEqual([event(0), event(1), event(2)]);
    fail = false;
    await q.take().send();
    for (let i = 6; i < 9; i++) q.push(event(i));
    await q.take().send();
    expect(reused).toEqual([false, false, true]);
  });

  it('request events written straight into the pieces: the same lines as their strings, mixed with string lines, in order', async () => {
    const { q, sent } = queue(500);
    // The third shape's subject makes a line longer than a piece (~80 KB of UTF-8): a buffer of its own.
    const shapes = [new LineShape('acme', 'web', 'ak_1', null, 'api', 'GET', 'pro'), new LineShape('tén"ant', null, null, 'sub\u2028', null, 'POST', null), new LineShape('acme', null, null, 'ü'.repeat(40_000), 'api', 'GET', null)];
    const expected: string[] = [];
    for (let i = 0; i < 400; i++) {
      if (i % 50 === 7) {
        // A string line (a quota warning) between request events.
        expected.push(event(i, 'é'));
        q.push(event(i, 'é'));
        continue;
      }
      const shape = shapes[i % 100 === 99 ? 2 : i % 2]!;
      shape.setStatus(i % 3 ? 200 : 429, i % 3 ? 'forwarded' : 'rate_limited', null);
      const e = new RequestEventParts();
      e.id = `id-${i}`;
      e.ts = new Date(1_764_000_000_000 + i).toISOString();
      e.shape = shape;
      e.durationMs = (i * 7919) % 100_000 / 997;
      e.bytesIn = i % 4 ? 0 : i * 1000;
      e.bytesOut = i * 31;
      e.cost = i % 3;
      // Long request ids: the bound has a digit more than the line (the line moves up), and lines cross pieces.
      e.requestId = i % 3 === 1 ? `r${i}-` + 'z'.repeat(150 + (i % 40)) : `r${i}`;
      expected.push(requestEventLine(e));
      q.pushRequest(e);
    }
    const batch = q.take();
    expect(batch.count).toBe(400);
    expect(batch.lines()).toEqual(expected);
    await batch.send();
    expect(sent.length).toBeGreaterThan(1);
    expect(sent.flatMap((args) => args.slice(5))).toEqual(expected);
    for (const line of expected) JSON.parse(line);
  });
});
