/**
 * The spool on real files in a temp dir: order across segments, segment size,
 * the hold that lets a batch in flight go in front, a cut-off last line, and
 * segments left by an earlier run.
 */
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Spool } from '../../../src/usage/spool.js';
import { captureLogger } from '../../helpers/usage-sinks.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tg-spool-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function open(segmentBytes = 1024 * 1024) {
  const written: number[] = [];
  const log = captureLogger();
  const spool = await Spool.open(join(dir, 'sink'), { segmentBytes, fsyncMs: 10_000 }, (n) => written.push(n), log.logger);
  return { spool, written, log };
}

async function drain(spool: Spool): Promise<string[]> {
  const out: string[] = [];
  for (let seg = await spool.oldest(); seg !== null; seg = await spool.oldest()) {
    out.push(...seg.lines);
    await spool.remove(seg.seq);
  }
  return out;
}

describe('spool', () => {
  it('returns lines in order across segments and is empty once they are removed', async () => {
    const { spool, written } = await open(50);
    const lines = Array.from({ length: 20 }, (_, i) => `{"id":"l${i}"}`);
    for (let i = 0; i < lines.length; i += 3) {
      spool.append(lines.slice(i, i + 3));
      expect(await spool.sync()).toBe(true);
    }
    expect((await readdir(join(dir, 'sink'))).length).toBeGreaterThan(1);
    expect(written.reduce((a, b) => a + b, 0)).toBe(20);
    expect(spool.empty).toBe(false);
    expect(await drain(spool)).toEqual(lines);
    expect(spool.empty).toBe(true);
    expect(await readdir(join(dir, 'sink'))).toEqual([]);
    await spool.close();
  });

  it('splits one large write into segments of about segmentBytes', async () => {
    const { spool } = await open(200);
    const lines = Array.from({ length: 100 }, (_, i) => `{"id":"line-${String(i).padStart(4, '0')}"}`);
    spool.append(lines);
    await spool.sync();
    const names = await readdir(join(dir, 'sink'));
    expect(names.length).toBeGreaterThanOrEqual(10);
    for (const n of names) expect((await stat(join(dir, 'sink', n))).size).toBeLessThanOrEqual(200);
    expect(await drain(spool)).toEqual(lines);
    await spool.close();
  });

  it('writes nothing while held, and a prepended batch goes in front', async () => {
    const { spool } = await open();
    spool.hold = true;
    spool.append(['c', 'd']);
    await spool.sync();
    expect(await readdir(join(dir, 'sink'))).toEqual([]);
    spool.prepend(['a', 'b']);
    spool.hold = false;
    await spool.sync();
    expect(await drain(spool)).toEqual(['a', 'b', 'c', 'd']);
    await spool.close();
  });

  it('finds segments an earlier run left, in order, and drops a cut-off last line', async () => {
    const sub = join(dir, 'sink');
    const first = await open();
    first.spool.append(['x']);
    await first.spool.sync();
    // No close(): as after a SIGKILL. Then a hand-made older segment ending mid-line.
    await writeFile(join(sub, '0000000000000000.ndjson'), 'a\nb\n{"id":"cut');
    const { spool, log } = await open();
    expect(spool.empty).toBe(false);
    spool.append(['y']);
    await spool.sync();
    expect(await drain(spool)).toEqual(['a', 'b', 'x', 'y']);
    expect(log.lines.some((l) => String(l.msg).includes('partial line'))).toBe(true);
    await spool.close();
    await first.spool.close();
  });

  it('a saved cursor says how far a segment was delivered; one without its segment is deleted at open', async () => {
    const sub = join(dir, 'sink');
    const first = await open();
    first.spool.append(['a', 'b', 'c']);
    await first.spool.sync();
    const seg = (await first.spool.oldest())!;
    expect(seg.delivered).toBe(0);
    await first.spool.saveCursor(seg.seq, 2);
    await first.spool.close();
    await writeFile(join(sub, '0000000000000099.cursor'), '5');
    const { spool } = await open();
    expect(await readdir(sub)).not.toContain('0000000000000099.cursor');
    expect(await spool.oldest()).toEqual({ seq: seg.seq, lines: ['a', 'b', 'c'], delivered: 2 });
    await spool.remove(seg.seq);
    expect(await readdir(sub)).toEqual([]);
    await spool.close();
  });

  it('an empty spool directory is empty', async () => {
    const { spool } = await open();
    expect(spool.empty).toBe(true);
    expect(await spool.oldest()).toBeNull();
    await spool.close();
  });
});
