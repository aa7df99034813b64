/**
 * The API key format: `tg_<env>_<id>_<secret><checksum>`.
 *
 * - `env` is `live` or `test`; `id` is the record id (O(1) lookup; it may
 *   contain `_`, so the id is everything between `tg_<env>_` and the LAST `_`).
 * - `secret`: 24 base62 characters from the CSPRNG (≈143 bits).
 * - `checksum`: CRC32 of everything before it, as 6 base62 characters, so a
 *   typo, a truncation or a random guess fails offline with no store lookup.
 * - The fixed shape lets secret scanners find leaked keys: {@link API_KEY_PATTERN}.
 *
 * Records store a hash of the whole key only — SHA-256, or HMAC-SHA256 with a
 * server pepper (TENANTGATE_KEY_PEPPER) — never the plaintext nor a part of it.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const SECRET_CHARS = 24;
const CHECKSUM_CHARS = 6;
const TAIL = /^[0-9A-Za-z]{30}$/;
const ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const MAX_KEY_LENGTH = 8 + 128 + 1 + SECRET_CHARS + CHECKSUM_CHARS;

/** Finds tenantgate keys in text (for secret scanners). Global: use with `match`/`matchAll`, not `test`. */
export const API_KEY_PATTERN = /\btg_(?:live|test)_[A-Za-z0-9][A-Za-z0-9._:-]{0,127}_[0-9A-Za-z]{30}\b/g;

export type KeyEnv = 'live' | 'test';

function randomBase62(n: number): string {
  let out = '';
  while (out.length < n) {
    for (const byte of randomBytes(n * 2)) {
      // 248 = 4 × 62: rejecting the rest keeps every character equally likely.
      if (byte < 248 && out.length < n) out += BASE62[byte % 62];
    }
  }
  return out;
}

function checksumOf(body: string): string {
  let value = crc32(body);
  let out = '';
  for (let i = 0; i < CHECKSUM_CHARS; i++) {
    out = BASE62[value % 62] + out;
    value = Math.floor(value / 62);
  }
  return out;
}

export function hashApiKey(key: string, pepper: string | null = null): string {
  return pepper
    ? `hmac-sha256:${createHmac('sha256', pepper).update(key).digest('base64url')}`
    : `sha256:${createHash('sha256').update(key).digest('base64url')}`;
}

export function generateApiKey(opts: { env: KeyEnv; id?: string; pepper?: string | null }): { key: string; id: string; hash: string } {
  const id = opts.id ?? `ak_${randomBase62(12)}`;
  if (!ID.test(id)) throw new Error(`invalid key id "${id}"`);
  const body = `tg_${opts.env}_${id}_${randomBase62(SECRET_CHARS)}`;
  const key = body + checksumOf(body);
  return { key, id, hash: hashApiKey(key, opts.pepper ?? null) };
}

export type ParseFailure = 'malformed' | 'bad_checksum';

/** Parses and checks a presented key offline. Never throws. */
export function parseApiKey(presented: string): { env: KeyEnv; id: string } | ParseFailure {
  if (presented.length > MAX_KEY_LENGTH || !presented.startsWith('tg_')) return 'malformed';
  const env = presented.slice(3, 8);
  if (env !== 'live_' && env !== 'test_') return 'malformed';
  const last = presented.lastIndexOf('_');
  if (last <= 8) return 'malformed';
  const id = presented.slice(8, last);
  const tail = presented.slice(last + 1);
  if (!TAIL.test(tail) || !ID.test(id)) return 'malformed';
  const body = presented.slice(0, presented.length - CHECKSUM_CHARS);
  if (checksumOf(body) !== tail.slice(SECRET_CHARS)) return 'bad_checksum';
  return { env: env === 'live_' ? 'live' : 'test', id };
}
