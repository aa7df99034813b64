/**
 * uuidV4: canonical version 4 UUIDs, unique across its pool's refills, each
 * one flat string (what it is for: crypto.randomUUID's are ropes).
 */
import { randomUUID } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { uuidV4 } from '../../src/observability/uuid.js';

const CANONICAL_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('uuidV4', () => {
  it('gives canonical version 4 / variant 10 UUIDs, all different, across many refills of its random pool', () => {
    const seen = new Set<string>();
    // 40 fills of 256 ids: the ids either side of each refill must differ too.
    for (let i = 0; i < 10_240; i++) {
      const id = uuidV4();
      expect(id).toMatch(CANONICAL_V4);
      seen.add(id);
    }
    expect(seen.size).toBe(10_240);
  });

  it('uses every hex digit in every free position (the bytes are random, the table is complete)', () => {
    const digits = Array.from({ length: 36 }, () => new Set<string>());
    for (let i = 0; i < 4096; i++) {
      const id = uuidV4();
      for (let c = 0; c < 36; c++) digits[c]!.add(id[c]!);
    }
    for (let c = 0; c < 36; c++) {
      if (c === 8 || c === 13 || c === 18 || c === 23) expect([...digits[c]!]).toEqual(['-']);
      else if (c === 14) expect([...digits[c]!]).toEqual(['4']);
      else if (c === 19) expect([...digits[c]!].sort()).toEqual(['8', '9', 'a', 'b']);
      else expect(digits[c]!.size).toBe(16);
    }
  });

  it('returns a string of its own each time (the scratch buffer is not shared with an earlier id)', () => {
    const a = uuidV4();
    const copy = `${a}`;
    uuidV4();
    expect(a).toBe(copy);
  });

  it('is one flat string: 20,000 held ids take far less heap than randomUUID ropes (measured)', () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const heldBytes = (make: () => string): number => {
      gc();
      gc();
      const before = process.memoryUsage().heapUsed;
      const held = Array.from({ length: 20_000 }, make);
      gc();
      gc();
      const bytes = process.memoryUsage().heapUsed - before;
      expect(new Set(held).size).toBe(20_000);
      return bytes / held.length;
    };
    const ours = heldBytes(uuidV4);
    const node = heldBytes(randomUUID);
    // 36 one-byte characters plus a string header, plus the array's slot.
    expect(ours).toBeLessThan(36 + 40);
    expect(node).toBeGreaterThan(2 * ours);
  });
});
