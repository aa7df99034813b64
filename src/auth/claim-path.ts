/**
 * Claim paths (SPEC §10): where in a verified token's payload a value lives.
 *
 * - A whole top-level claim name is tried first, so namespaced claims work as
 *   written: `https://example.com/tenant`, `cognito:groups`, `custom:tenant_id`.
 * - Else a dotted path: `org.id`, `realm_access.roles`. A segment that holds a
 *   `.` is written in brackets and quotes: `resource_access["api.example.com"].roles`,
 *   `["https://example.com/app_metadata"].tenant`. Inside quotes `\"`, `\'` and
 *   `\\` stand for the character itself.
 *
 * Paths are parsed once, at config load ({@link compileClaimPath}); the walk
 * reads own properties of plain objects only, so `__proto__`, `constructor`
 * or an array's `length` never resolve to something the token did not say.
 */

export interface ClaimPath {
  /** The path as configured: also the whole claim name tried first. */
  readonly source: string;
  readonly segments: readonly string[];
}

export type ClaimPathParse = { ok: true; path: ClaimPath } | { ok: false; error: string };

/** A bare segment: anything but the characters that delimit segments or start a quoted one. */
const BARE = /^[^.[\]"'\\]+/;

export function parseClaimPath(source: string): ClaimPathParse {
  const fail = (error: string): ClaimPathParse => ({ ok: false, error });
  if (typeof source !== 'string' || source === '') return fail('must be a non-empty claim path');
  const segments: string[] = [];
  let i = 0;
  // A segment may start here (at the beginning, after "." or right after "]").
  for (;;) {
    if (source[i] === '[') {
      const quote = source[i + 1];
      if (quote !== '"' && quote !== "'") return fail(`position ${i + 1}: expected a quote after "[" (write ["name.with.dots"])`);
      let j = i + 2;
      let name = '';
      for (; j < source.length && source[j] !== quote; j++) {
        if (source[j] === '\\') {
          const next = source[j + 1];
          if (next !== '"' && next !== "'" && next !== '\\') return fail(`position ${j + 1}: only \\", \\' and \\\\ may be escaped`);
          j++;
        }
        name += source[j];
      }
      if (j >= source.length) return fail(`position ${i + 1}: unterminated quote`);
      if (source[j + 1] !== ']') return fail(`position ${j + 2}: expected "]" after the closing quote`);
      if (name === '') return fail(`position ${i + 1}: empty segment`);
      segments.push(name);
      i = j + 2;
    } else {
      const m = BARE.exec(source.slice(i));
      if (m === null) return fail(`position ${i + 1}: expected a claim name${source[i] === '.' || i === source.length ? ' (empty segment)' : ` before "${source[i]}"`}`);
      segments.push(m[0]);
      i += m[0].length;
    }
    if (i === source.length) break;
    if (source[i] === '.') {
      i++;
      if (i === source.length) return fail(`position ${i}: ends with "."`);
    } else if (source[i] !== '[') {
      return fail(`position ${i + 1}: expected "." or "[" after a segment, got "${source[i]}"`);
    }
  }
  return { ok: true, path: Object.freeze({ source, segments: Object.freeze(segments) }) };
}

/** Parses a path that config validation already accepted; throws on invalid syntax. */
export function compileClaimPath(source: string): ClaimPath {
  const parsed = parseClaimPath(source);
  if (!parsed.ok) throw new Error(`claim path "${source}": ${parsed.error}`);
  return parsed.path;
}

const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * The value at `path` in `payload`, or undefined: first `path.source` as one
 * claim name, then the segment walk. Accepts a path string too (parsed on
 * each call: for tests and one-off use; the request path passes compiled ones).
 */
export function claimAt(payload: Readonly<Record<string, unknown>>, path: ClaimPath | string): unknown {
  const compiled = typeof path === 'string' ? compileClaimPath(path) : path;
  if (Object.hasOwn(payload, compiled.source)) return payload[compiled.source];
  let value: unknown = payload;
  for (const segment of compiled.segments) {
    if (!isRecord(value) || !Object.hasOwn(value, segment)) return undefined;
    value = value[segment];
  }
  return value;
}
