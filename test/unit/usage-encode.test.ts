/**
 * The sinks' batch encoder (src/usage/sinks/encode.ts) writes exactly the
 * bytes of `Buffer.from(open + lines.join(separator) + close)`: any text,
 * any number of lines, past the memory it starts with, batch after batch;
 * and so does encodeChunks, in new Buffers of bounded size.
 */
import { describe, expect, it } from 'vitest';
import { encodeChunks, LineEncoder } from '../../src/usage/sinks/encode.js';

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

  it('encodeChunks: the same bytes, in new Buffers of at most chunkBytes (a longer line in one of its own)', () => {
    const lines = [...Array.from({ length: 700 }, (_, i) => `{"i":${i},"t":"${'é'.repeat(i % 50)}"}`), 'L'.repeat(5000), ...TEXTS];
    for (const [open, sep, close] of [['', '\n', '\n'], ['[', ',', ']']] as const) {
      const chunks = encodeChunks(lines, open, sep, close, 4096);
      expect(Buffer.concat(chunks).equals(reference(lines, open, sep, close))).toBe(true);
      expect(chunks.length).toBeGreaterThan(5);
      for (const c of chunks) expect(c.length <= 4096 || c.toString().includes('L'.repeat(5000))).toBe(true);
      // Never the memory of another call (a body undici may still hold stays intact).
      const again = encodeChunks(['x'], open, sep, close, 4096);
      expect(chunks.some((c) => c.buffer === again[0]!.buffer)).toBe(false);
    }
    expect(Buffer.concat(encodeChunks([], '[', ',', ']')).toString()).toBe('[]');
  });
});
