/**
 * API key records in as little memory as they can take: a config may hold
 * 100,000 of them (issue #6), kept for as long as it is in force, and a
 * reload holds two configs for a moment.
 *
 * - One object literal per record of the usual shape (no project, expiresAt
 *   or rate), so all six properties sit in the object itself, in zod's order
 *   (a record built key by key spills past four into a separate array).
 * - Equal scope lists are one frozen array; tenant ids are the tenant's own
 *   string.
 * - Strings are flat copies: one sliced out of the config text would keep all
 *   of the text alive.
 *
 * A compacted record is frozen, and compacting it again returns it as is.
 */
import type { Config } from './schema.js';

type ApiKey = Config['apiKeys'][number];

/** Longer strings may be slices of the text (V8 slices from 13 characters). */
const SLICE_MIN = 13;
const LATIN1 = /^[\x00-\xff]*$/;

/** A flat copy of `s` (exact for any string; Latin-1, like every validated id and hash, through a Buffer). */
export function own(s: string): string {
  if (s.length < SLICE_MIN) return s;
  return LATIN1.test(s) ? Buffer.from(s, 'latin1').toString('latin1') : (JSON.parse(JSON.stringify(s)) as string);
}

export class ApiKeyCompactor {
  private readonly tenants = new Map<string, string>();
  private readonly scopeLists = new Map<string, readonly string[]>();
  private previousById: Map<string, ApiKey> | null = null;
  private index = 0;

  /**
   * `previous`: the records of the config in force. A record equal to the
   * previous one with its id is that one, so a reload of an unchanged (or
   * slightly changed) file shares the records instead of holding two copies.
   */
  constructor(
    tenants: readonly { id: string }[],
    private readonly previous: readonly ApiKey[] = [],
  ) {
    for (const t of tenants) this.tenants.set(t.id, own(t.id));
  }

  compact(k: ApiKey): ApiKey {
    const i = this.index++;
    if (Object.isFrozen(k) || k.project !== undefined || k.expiresAt !== undefined || k.rate !== undefined) return k;
    const before = this.previousOf(k.id, i);
    if (before !== undefined && sameKey(before, k)) return before;
    return Object.freeze({
      id: own(k.id),
      tenant: this.tenants.get(k.tenant) ?? own(k.tenant),
      hash: own(k.hash),
      scopes: this.scopes(k.scopes),
      env: k.env === 'live' ? 'live' : 'test',
      revoked: k.revoked,
    }) as ApiKey;
  }

  /** The previous record with this id: at the same position as a rule, else from an index built on the first miss. */
  private previousOf(id: string, i: number): ApiKey | undefined {
    if (this.previous.length === 0) return undefined;
    const same = this.previous[i];
    if (same !== undefined && same.id === id) return same;
    if (this.previousById === null) {
      this.previousById = new Map();
      for (const p of this.previous) this.previousById.set(p.id, p);
    }
    return this.previousById.get(id);
  }

  private scopes(list: string[]): string[] {
    if (list.length === 0) return EMPTY;
    const key = JSON.stringify(list);
    let shared = this.scopeLists.get(key);
    // Parsed from the JSON: flat strings, and an array of exactly its length.
    if (shared === undefined) this.scopeLists.set(key, (shared = Object.freeze(JSON.parse(key) as string[])));
    return shared as string[];
  }
}

const EMPTY = Object.freeze([]) as unknown as string[];

/** `before` (frozen, as every record of a compiled config) holds the same values as `k`, of the usual shape. */
function sameKey(before: ApiKey, k: ApiKey): boolean {
  return (
    before.project === undefined &&
    before.expiresAt === undefined &&
    before.rate === undefined &&
    before.id === k.id &&
    before.tenant === k.tenant &&
    before.hash === k.hash &&
    before.env === k.env &&
    before.revoked === k.revoked &&
    before.scopes.length === k.scopes.length &&
    before.scopes.every((s, i) => s === k.scopes[i])
  );
}
