/**
 * The sinks' batch encoder (src/usage/sinks/encode.ts) writes exactly the
 * bytes of `Buffer.from(open + lines.join(separator) + close)`: any text,
 * any number of lines, past the memory it starts with, batch after batch.
 */
import { describe, expect, it } from 'vitest';
import { LineEncoder } from '../../src/usage/sinks/encode.js';

const reference = (lines: string[], open: string, sep: string, close: string) => Buffer.from(`${open}${lines.join(sep)}${close}`);

const TEXTS = ['', '{"a":1}', 'café', 'emoji 💡', 'lone \ud800 surrogate', '\u2028\u2029', 'x'.repeat(1000)];

describe('LineEncoder', () => {
  const encoder = new LineEncoder();

  it.each([
    ['ndjson', '', '\n', '\n'],
    ['json array', '[', ',', ']'],
  ])('%s: the same bytes as joining and Buffer.from', (_name, open, sep, close) => {
    for (const lines of [[], [''], TEXTS, [...TEXTS].reverse()]) {
      expect(encoder.encode(lines, open, sep, close).equals(reference(lines, open, sep, close))).toBe(true);
    }
  });

  it('batches larger than its first buffer (256 KiB), worst-case UTF-8 included, then small ones again', () => {
    const wide = Array.from({ length: 3000 }, (_, i) => `${'€'.repeat(100)}${i}`); // 3 bytes per character
    expect(encoder.encode(wide, '', '\n', '\n').equals(reference(wide, '', '\n', '\n'))).toBe(true);
    const ascii = Array.from({ length: 2000 }, (_, i) => `{"id":"${i}","padding":"${'p'.repeat(350)}"}`);
    expect(encoder.encode(ascii, '[', ',', ']').equals(reference(ascii, '[', ',', ']'))).toBe(true);
    expect(encoder.encode(['one'], '', '\n', '\n').toString()).toBe('one\n');
  });
});
