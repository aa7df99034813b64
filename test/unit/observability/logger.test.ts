/**
 * The process logger's stdout (src/observability/logger.ts): lines gathered
 * into batches and written by sonic-boom. In a child process whose stdout is
 * a pipe: every line arrives, whole and in order — multibyte text, a line
 * bigger than a batch, lines written by the 50 ms timer and by the exit flush.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../../helpers/servers.js';

const SCRIPT = `
const { createLogger } = await import(${JSON.stringify(`${ROOT}/dist/observability/logger.js`)});
const log = createLogger('info');
for (let i = 0; i < 3000; i++) log.info({ i, text: 'é💡\\u2028'.repeat(i % 4) }, 'line');
log.info({ i: 3000, big: 'x'.repeat(100000) }, 'big');
await new Promise((r) => setTimeout(r, 120)); // the timer's flush
log.info({ i: 3001 }, 'after the timer');
log.info({ i: 3002 }, 'flushed at exit');
process.exit(0);
`;

describe('logger stdout', () => {
  it('every line arrives whole and in order', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', SCRIPT], { maxBuffer: 64 * 1024 * 1024 });
    const lines = stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { i: number; text?: string; big?: string; msg: string });
    expect(lines.map((l) => l.i)).toEqual(Array.from({ length: 3003 }, (_, i) => i));
    expect(lines[7]!.text).toBe('é💡\u2028'.repeat(3));
    expect(lines[3000]!.big).toHaveLength(100000);
    expect(lines.at(-1)!.msg).toBe('flushed at exit');
  });
});
