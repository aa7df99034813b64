/**
 * File sink: NDJSON appended to `path`, one batch per write. Size rotation is
 * numbered, logrotate-style: before a write would take `path` past
 * `maxBytes`, `path.N` becomes `path.N+1` (highest first), `path` becomes
 * `path.1` and a new `path` is started; so `path` is the newest and higher
 * numbers are older. With `maxFiles`, rotated files past that number are
 * deleted. `tenantgate usage report --file path` reads all of them.
 * With an encoder (`format: cloudevents`) each line is a CloudEvent instead.
 */
import { mkdir, open, readdir, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { encodeBatch, type Encoded } from '../cloudevents.js';
import type { UsageSink } from '../types.js';

export interface FileSinkOptions {
  name: string;
  path: string;
  maxBytes: number | null;
  maxFiles: number | null;
  fsync: boolean;
  /** `format: cloudevents`: one §7 line to its CloudEvent. */
  encode?: ((line: string) => Encoded | null) | null;
}

/** The numbers N of the existing `path.N` files, highest first. */
export async function rotatedNumbers(path: string): Promise<number[]> {
  const prefix = `${basename(path)}.`;
  const names = await readdir(dirname(path)).catch(() => [] as string[]);
  return names
    .filter((n) => n.startsWith(prefix) && /^[1-9][0-9]*$/.test(n.slice(prefix.length)))
    .map((n) => Number(n.slice(prefix.length)))
    .sort((a, b) => b - a);
}

const NEWLINE = Buffer.from('\n');

async function endsWithNewline(handle: FileHandle, size: number): Promise<boolean> {
  const { buffer } = await handle.read(Buffer.alloc(1), 0, 1, size - 1);
  return buffer[0] === 0x0a;
}

export function createFileSink(opts: FileSinkOptions): UsageSink {
  let handle: FileHandle | null = null;
  let size = 0;

  async function rotate(): Promise<void> {
    await handle?.close();
    handle = null;
    for (const n of await rotatedNumbers(opts.path)) {
      if (opts.maxFiles !== null && n >= opts.maxFiles) await unlink(`${opts.path}.${n}`);
      else await rename(`${opts.path}.${n}`, `${opts.path}.${n + 1}`);
    }
    await rename(opts.path, `${opts.path}.1`);
  }

  return {
    name: opts.name,
    async send(lines) {
      const out = opts.encode ? encodeBatch(lines, opts.encode) : lines;
      if (out.length === 0) return;
      let data = Buffer.from(`${out.join('\n')}\n`);
      try {
        if (handle !== null && opts.maxBytes !== null && size > 0 && size + data.length > opts.maxBytes) await rotate();
        if (handle === null) {
          await mkdir(dirname(opts.path) || '.', { recursive: true });
          handle = await open(opts.path, 'a+');
          size = (await handle.stat()).size;
          // A file left over from an earlier run may already be past the bound.
          if (opts.maxBytes !== null && size > 0 && size + data.length > opts.maxBytes) {
            await rotate();
            handle = await open(opts.path, 'a+');
            size = 0;
          }
          // A write cut short (disk full, crash) leaves half a line; end it so the next event is not glued to it.
          if (size > 0 && !(await endsWithNewline(handle, size))) data = Buffer.concat([NEWLINE, data]);
        }
        await handle.write(data);
        size += data.length;
        if (opts.fsync) await handle.datasync();
      } catch (err) {
        // Re-open on the next batch: the directory may have been recreated or the disk freed.
        await handle?.close().catch(() => undefined);
        handle = null;
        throw err;
      }
    },
    async close() {
      await handle?.close();
      handle = null;
    },
  };
}

