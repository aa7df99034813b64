/**
 * Version 4 UUIDs for request ids and usage event ids: one per request (a
 * generated request id is also its usage event's id), two when the client
 * sent its own request id.
 *
 * Why not `crypto.randomUUID()`: in Node 20 it joins 20 short strings, so
 * each id is a rope of ~15 pieces (~480 bytes of young-generation heap,
 * allocation-sampled under load), flattened again by its first use in a
 * header or a JSON line. This one writes the 36 characters into a scratch
 * buffer and makes ONE flat string of them: ~2–4× faster, flattening
 * included (measured here: 150–285 ns against 530–650 ns). The randomness is
 * the same: a pool of bytes from the CSPRNG (`randomFillSync`), refilled every
 * 256 ids, as `randomUUID` keeps its own.
 */
import { randomFillSync } from 'node:crypto';

const IDS_PER_FILL = 256;
const pool = Buffer.allocUnsafeSlow(16 * IDS_PER_FILL);
let next = pool.length;
const scratch = Buffer.allocUnsafeSlow(36);
/** The two lowercase hex digits of every byte value, as char codes. */
const HEX = new Uint8Array(512);
for (let i = 0; i < 256; i++) {
  const h = i.toString(16).padStart(2, '0');
  HEX[i * 2] = h.charCodeAt(0);
  HEX[i * 2 + 1] = h.charCodeAt(1);
}
const DASH = 0x2d;

/** A random (version 4, RFC 9562) UUID in its canonical lowercase form. */
export function uuidV4(): string {
  if (next === pool.length) {
    randomFillSync(pool);
    next = 0;
  }
  const p = pool;
  const s = next;
  next += 16;
  p[s + 6] = (p[s + 6]! & 0x0f) | 0x40; // version 4
  p[s + 8] = (p[s + 8]! & 0x3f) | 0x80; // variant 10
  let o = 0;
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) scratch[o++] = DASH;
    const b = p[s + i]! * 2;
    scratch[o++] = HEX[b]!;
    scratch[o++] = HEX[b + 1]!;
  }
  return scratch.toString('latin1', 0, 36);
}
