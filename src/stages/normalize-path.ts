/**
 * The path normalisation rule. The path that is matched against routes is the
 * path that is forwarded, byte for byte, so no upstream can decode its way
 * into a prefix the route table did not allow:
 *
 * 1. Only origin-form (`/…`) and absolute-form (`http://host/…`) targets.
 * 2. Percent-escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) are
 *    decoded (`/%6frders` is `/orders`, `%2e%2e` is `..`); other escapes are
 *    kept, with upper-case hex. Malformed escapes → 400.
 * 3. An encoded slash, backslash or semicolon (`%2F`, `%5C`, `%3B`), a raw
 *    backslash, NUL or a control character → 400: upstreams disagree on what
 *    they mean (`%3B` is a path-parameter separator to some, a literal to others).
 * 4. Empty segments are merged (`//a` is `/a`), `.` segments removed and `..`
 *    segments resolved; a `..` above the root → 400. A dot segment with
 *    path parameters (`..;x`, `.;`) → 400: Tomcat/Spring upstreams read
 *    `/a/..;/b` as `/b`, which would step out of the matched prefix.
 * 5. The query string is kept as sent; a fragment (`#`) → 400.
 *
 * Route prefixes match whole segments: `/orders` matches `/orders`,
 * `/orders/` and `/orders/7`, never `/orders-admin`.
 */

/** Anything that needs the slow path: an escape, a backslash, an empty / dot segment, a fragment, a control char. */
const NEEDS_WORK = /[%\\#\x00-\x1f\x7f]|\/\/|\/\.\.?(?:[/;]|$)/;
const UNRESERVED = /[A-Za-z0-9\-._~]/;
const HEX2 = /^[0-9A-Fa-f]{2}$/;
/** `.;x`, `..;x` (their %3B spellings are refused with every %3B). */
const DOT_WITH_PARAMS = /^\.\.?;/;
const ABSOLUTE_FORM = /^https?:\/\/([^/?#]+)(.*)$/i;

export interface NormalizedTarget {
  /** Normalised path, always starting with `/`. */
  path: string;
  /** `?…` as sent, or ''. */
  search: string;
  /** Host from an absolute-form target, else null (the Host header decides). */
  authority: string | null;
}

/** Returns the normalised target, or null when the target must be refused with 400. */
export function normalizeTarget(target: string): NormalizedTarget | null {
  let authority: string | null = null;
  if (target.charCodeAt(0) !== 47 /* / */) {
    const match = ABSOLUTE_FORM.exec(target);
    if (match === null) return null;
    authority = match[1]!;
    target = match[2] === '' ? '/' : match[2]!;
    if (target.charCodeAt(0) !== 47) target = `/${target}`;
  }
  const q = target.indexOf('?');
  const rawPath = q === -1 ? target : target.slice(0, q);
  const search = q === -1 ? '' : target.slice(q);
  if (search.includes('#')) return null;
  if (!NEEDS_WORK.test(rawPath)) return { path: rawPath, search, authority };
  const path = normalizePath(rawPath);
  return path === null ? null : { path, search, authority };
}

/** The slow path of {@link normalizeTarget} for a path (no query). Exported for config checks and tests. */
export function normalizePath(raw: string): string | null {
  if (raw.charCodeAt(0) !== 47) return null;
  let decoded = '';
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    const code = raw.charCodeAt(i);
    if (code < 0x20 || code === 0x7f || c === '\\' || c === '#') return null;
    if (c !== '%') {
      decoded += c;
      continue;
    }
    const hex = raw.slice(i + 1, i + 3);
    if (!HEX2.test(hex)) return null;
    const byte = parseInt(hex, 16);
    if (byte === 0x2f || byte === 0x5c || byte === 0x3b || byte < 0x20 || byte === 0x7f) return null;
    const ch = String.fromCharCode(byte);
    decoded += UNRESERVED.test(ch) ? ch : `%${hex.toUpperCase()}`;
    i += 2;
  }
  const out: string[] = [];
  const segments = decoded.split('/');
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i]!;
    if (DOT_WITH_PARAMS.test(s)) return null;
    if (s === '' || s === '.') continue;
    if (s === '..') {
      if (out.length === 0) return null;
      out.pop();
      continue;
    }
    out.push(s);
  }
  const last = segments[segments.length - 1];
  const trailingSlash = out.length > 0 && (last === '' || last === '.' || last === '..');
  return `/${out.join('/')}${trailingSlash ? '/' : ''}`;
}
