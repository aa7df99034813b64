/**
 * The file sink on real files: NDJSON appended in order, numbered size
 * rotation (path is newest, path.1 next, …), maxFiles, and a half-written
 * last line that does not swallow the next event.
 */
import { appendFile, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createFileSink, rotatedNumbers } from '../../../../src/usage/sinks/file.js';
import { fileIds } from '../../../helpers/usage-sinks.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tg-file-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const line = (i: number) => JSON.stringify({ id: `e${String(i).padStart(4, '0')}`, pad: 'x'.repeat(40) });
const ids = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `e${String(from + i).padStart(4, '0')}`);

describe('file sink', () => {
  it('appends batches in order, creating the directory', async () => {
    const path = join(dir, 'sub', 'usage.ndjson');
    const sink = createFileSink({ name: 'file-0', path, maxBytes: null, maxFiles: null, fsync: true });
    await sink.send([line(0), line(1)]);
    await sink.send([line(2)]);
    await sink.close();
    expect(await fileIds(path)).toEqual(ids(0, 3));
  });

  it('rotates by size: path.N+1 ← path.N, path.1 ← path; nothing is lost', async () => {
    const path = join(dir, 'usage.ndjson');
    const sink = createFileSink({ name: 'file-0', path, maxBytes: 200, maxFiles: null, fsync: false });
    for (let i = 0; i < 20; i += 2) await sink.send([line(i), line(i + 1)]);
    await sink.close();
    const numbers = await rotatedNumbers(path);
    expect(numbers.length).toBeGreaterThan(2);
    // Oldest first: the highest number down to 1, then path itself.
    const all: string[] = [];
    for (const n of numbers) all.push(...(await fileIds(`${path}.${n}`)));
    all.push(...(await fileIds(path)));
    expect(all).toEqual(ids(0, 20));
    for (const n of numbers) expect((await stat(`${path}.${n}`)).size).toBeLessThanOrEqual(200);
  });

  it('keeps at most maxFiles rotated files', async () => {
    const path = join(dir, 'usage.ndjson');
    const sink = createFileSink({ name: 'file-0', path, maxBytes: 100, maxFiles: 2, fsync: false });
    for (let i = 0; i < 10; i++) await sink.send([line(i)]);
    await sink.close();
    expect((await readdir(dir)).sort()).toEqual(['usage.ndjson', 'usage.ndjson.1', 'usage.ndjson.2']);
    expect(await fileIds(path)).toEqual(ids(9, 10));
    expect(await fileIds(`${path}.2`)).toEqual(ids(7, 8));
  });

  it('rotates a file an earlier run left past maxBytes, and ends a half-written line first', async () => {
    const path = join(dir, 'usage.ndjson');
    await appendFile(path, `${line(0)}\n{"id":"cut-off`);
    const sink = createFileSink({ name: 'file-0', path, maxBytes: 1000, maxFiles: null, fsync: false });
    await sink.send([line(1)]);
    await sink.close();
    // The cut-off line stays (a reader skips it); the new event is on a line of its own.
    expect((await readFile(path, 'utf8')).split('\n')).toEqual([line(0), '{"id":"cut-off', line(1), '']);

    const big = createFileSink({ name: 'file-1', path, maxBytes: 60, maxFiles: null, fsync: false });
    await big.send([line(2)]);
    await big.close();
    expect(await fileIds(path)).toEqual(ids(2, 3));
    expect(await rotatedNumbers(path)).toEqual([1]);
  });
});
