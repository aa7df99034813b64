/**
 * One sink's spool: the events it could not take yet, on disk, in order.
 *
 * `<spoolDir>/<sink>/<seq>.ndjson` segments, append-only; `seq` grows, so the
 * file names sort oldest first. Lines wait in memory for at most `fsyncMs`,
 * then go out in one write + fsync (the first write of a segment also fsyncs
 * the directory, so the file itself survives a power cut). A segment is
 * closed past `segmentBytes`, before it is replayed, and after a failed write;
 * a closed segment is never appended to again, so a line cut short by a crash
 * or a full disk can only be its last one, and readers drop it.
 *
 * Replay reads a whole closed segment and the caller deletes it only after
 * every line in it was delivered. On close, how far a segment got is saved in
 * `<seq>.cursor`, so a restart resumes there; after a crash the cursor is
 * older (or absent) and lines are sent again: duplicates, never losses
 * (consumers de-duplicate by `id`). A cursor only ever undercounts, and is
 * deleted before its segment so a later segment can never inherit it.
 */
import { mkdir, open, readdir, readFile, rename, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../observability/logger.js';

const SEGMENT = /^([0-9]{16})\.ndjson$/;
const CURSOR = /^([0-9]{16})\.cursor$/;
const RETRY_MS = 1000;

export interface SpoolOptions {
  segmentBytes: number;
  fsyncMs: number;
}

export class Spool {
  /** Segment numbers on disk, oldest first; the last may be the open one. */
  private readonly segments: number[];
  private openSegment: { seq: number; handle: FileHandle; bytes: number } | null = null;
  private pending: string[] = [];
  private writing: Promise<boolean> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private nextSeq: number;
  /** Set while a batch sent before the spool took over is in flight: if it fails it goes in front, so nothing is written meanwhile. */
  hold = false;

  private constructor(
    readonly dir: string,
    segments: number[],
    private readonly opts: SpoolOptions,
    private readonly onWritten: (count: number) => void,
    private readonly logger: Logger,
  ) {
    this.segments = segments;
    this.nextSeq = (segments.at(-1) ?? 0) + 1;
  }

  /** Opens (creating) the directory and finds segments an earlier run left behind. */
  static async open(dir: string, opts: SpoolOptions, onWritten: (count: number) => void, logger: Logger): Promise<Spool> {
    await mkdir(dir, { recursive: true });
    const names = await readdir(dir);
    const numbers = (re: RegExp) => names.map((name) => re.exec(name)?.[1]).filter((s): s is string => s !== undefined).map(Number);
    const seqs = numbers(SEGMENT).sort((a, b) => a - b);
    const spool = new Spool(dir, seqs, opts, onWritten, logger);
    // A cursor whose segment is gone (a crash between the two deletes) must not survive to meet a new segment of that number.
    for (const seq of numbers(CURSOR)) if (!seqs.includes(seq)) await unlink(spool.path(seq, 'cursor')).catch(() => undefined);
    for (const name of names) if (name.endsWith('.cursor.tmp')) await unlink(join(dir, name)).catch(() => undefined);
    return spool;
  }

  /** Nothing on disk, nothing waiting to be written. */
  get empty(): boolean {
    return this.segments.length === 0 && this.pending.length === 0 && this.writing === null;
  }

  append(lines: readonly string[]): void {
    for (const line of lines) this.pending.push(line);
    this.schedule(this.opts.fsyncMs);
  }

  /** Puts lines in front of everything not yet written (only while `hold` is set). */
  prepend(lines: readonly string[]): void {
    this.pending = lines.concat(this.pending);
  }

  /** Writes and fsyncs everything pending now; false if a write failed (the lines stay pending). */
  async sync(): Promise<boolean> {
    while (this.writing !== null) await this.writing;
    if (this.hold || this.pending.length === 0) return true;
    const lines = this.pending;
    this.pending = [];
    this.writing = this.write(lines).then(
      () => {
        this.writing = null;
        return true;
      },
      (err: Error & { done?: number }) => {
        this.writing = null;
        this.pending = lines.slice(err.done ?? 0).concat(this.pending);
        this.logger.error({ spool: this.dir, err: (err as Error).message, events: this.pending.length }, 'usage spool write failed; events kept in memory, retrying');
        this.schedule(RETRY_MS);
        return false;
      },
    );
    return this.writing;
  }

  /**
   * The oldest segment's complete lines (closing it first if it is the open
   * one) and how many of them a saved cursor says were delivered; null when
   * no segment is on disk.
   */
  async oldest(): Promise<{ seq: number; lines: string[]; delivered: number } | null> {
    while (this.writing !== null) await this.writing;
    const seq = this.segments[0];
    if (seq === undefined) return null;
    if (this.openSegment?.seq === seq) await this.seal();
    const text = await readFile(this.path(seq), 'utf8').catch((err: NodeJS.ErrnoException) => {
      // Deleted by hand: nothing left to send from it.
      if (err.code === 'ENOENT') return '';
      throw err;
    });
    const lines = text.split('\n');
    const tail = lines.pop();
    if (tail !== '') this.logger.warn({ spool: this.dir, segment: seq, bytes: tail?.length }, 'usage spool segment ends in a partial line (cut short by a crash); dropped');
    const complete = lines.filter((l) => l !== '');
    const cursor = Number.parseInt(await readFile(this.path(seq, 'cursor'), 'utf8').catch(() => '0'), 10);
    return { seq, lines: complete, delivered: Number.isSafeInteger(cursor) ? Math.min(Math.max(cursor, 0), complete.length) : 0 };
  }

  async remove(seq: number): Promise<void> {
    const ignoreMissing = (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    };
    await unlink(this.path(seq, 'cursor')).catch(ignoreMissing);
    await unlink(this.path(seq)).catch(ignoreMissing);
    const i = this.segments.indexOf(seq);
    if (i >= 0) this.segments.splice(i, 1);
  }

  /** Records that the first `delivered` lines of segment `seq` were delivered (written aside, then renamed over). */
  async saveCursor(seq: number, delivered: number): Promise<void> {
    const tmp = `${this.path(seq, 'cursor')}.tmp`;
    await writeFile(tmp, String(delivered));
    await rename(tmp, this.path(seq, 'cursor'));
  }

  /** Writes what is still pending (events recorded during the owner's last flush), then closes the open segment. */
  async close(): Promise<void> {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.hold = false;
    await this.sync();
    await this.seal();
  }

  private schedule(ms: number): void {
    if (this.timer !== null || this.hold) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.sync();
    }, ms);
    this.timer.unref();
  }

  private path(seq: number, kind: 'ndjson' | 'cursor' = 'ndjson'): string {
    return join(this.dir, `${String(seq).padStart(16, '0')}.${kind}`);
  }

  /**
   * Appends `lines`, fsync'd, in chunks that keep each segment near
   * `segmentBytes` (so replay never reads a huge file into memory). If a
   * write fails, the error carries `done`: how many lines are on disk.
   */
  private async write(lines: string[]): Promise<number> {
    let done = 0;
    try {
      while (done < lines.length) {
        if (this.openSegment === null) {
          const seq = this.nextSeq++;
          const handle = await open(this.path(seq), 'a');
          this.segments.push(seq);
          this.openSegment = { seq, handle, bytes: 0 };
          const dir = await open(this.dir, 'r');
          await dir.sync().finally(() => dir.close());
        }
        const segment = this.openSegment;
        let end = done;
        let bytes = 0;
        // At least one line per chunk, however long.
        while (end < lines.length && (end === done || segment.bytes + bytes + Buffer.byteLength(lines[end]!) + 1 <= this.opts.segmentBytes)) {
          bytes += Buffer.byteLength(lines[end]!) + 1;
          end++;
        }
        await segment.handle.write(`${lines.slice(done, end).join('\n')}\n`);
        await segment.handle.sync();
        segment.bytes += bytes;
        this.onWritten(end - done);
        done = end;
        if (segment.bytes >= this.opts.segmentBytes || done < lines.length) await this.seal();
      }
    } catch (err) {
      // Never append after a failed write: a cut-off line may only ever be a segment's last.
      await this.seal();
      throw Object.assign(err as Error, { done });
    }
    return done;
  }

  private async seal(): Promise<void> {
    const segment = this.openSegment;
    this.openSegment = null;
    await segment?.handle.close().catch(() => undefined);
  }
}
