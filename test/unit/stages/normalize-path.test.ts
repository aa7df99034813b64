/**
 * The path normalisation rule of src/stages/normalize-path.ts, point by point:
 * 1. origin-form and absolute-form only; 2. unreserved escapes decoded, others
 * kept (upper-case hex), malformed refused; 3. %2F %5C backslash NUL controls
 * refused; 4. `//` merged, `.` and `..` resolved, `..` above the root refused;
 * 5. query kept as sent, fragment refused. Null means "answer 400".
 */
import { describe, expect, it } from 'vitest';
import { normalizePath, normalizeTarget } from '../../../src/stages/normalize-path.js';

describe('decoding escapes (rule 2)', () => {
  it.each([
    ['/%41%7a%30%2d%5f%7e', '/Az0-_~'],
    ['/%6frders', '/orders'],
    ['/%7E%2D%5F%2E', '/~-_.'],
    ['/a%20b', '/a%20b'],
    ['/%3f', '/%3F'],
    ['/%c3%a9', '/%C3%A9'],
    ['/a%E9', '/a%E9'],
    // Decoded once only: %25 is kept, so %252F never becomes a slash.
    ['/%252F', '/%252F'],
  ])('%s → %s', (raw, expected) => {
    expect(normalizePath(raw)).toBe(expected);
  });

  it.each(['/a%', '/a%2', '/a%zz', '/a%g0'])('malformed escape %j is refused', (raw) => {
    expect(normalizePath(raw)).toBeNull();
  });
});

describe('refused characters (rule 3)', () => {
  it.each([
    ['encoded slash', '/a%2fb'],
    ['encoded slash, upper case', '/a%2Fb'],
    ['encoded slash after a dot-dot', '/..%2f'],
    ['encoded backslash', '/a%5cb'],
    ['encoded backslash, upper case', '/a%5Cb'],
    ['raw backslash', '/a\\b'],
    ['encoded NUL', '/a%00'],
    ['raw NUL', '/a\u0000'],
    ['encoded newline', '/a%0a'],
    ['encoded tab', '/a%09'],
    ['raw tab', '/a\tb'],
    ['encoded unit separator', '/a%1F'],
    ['encoded DEL', '/a%7f'],
    ['raw DEL', '/a\u007f'],
  ])('%s (%j) is refused', (_what, raw) => {
    expect(normalizePath(raw)).toBeNull();
    expect(normalizeTarget(raw)).toBeNull();
  });
});

describe('segments (rule 4)', () => {
  it.each([
    ['/', '/'],
    ['/a/b', '/a/b'],
    ['/a//b', '/a/b'],
    ['//a', '/a'],
    ['///', '/'],
    ['/a///b//', '/a/b/'],
    ['/a/./b', '/a/b'],
    ['/.', '/'],
    ['/./', '/'],
    ['/a/.', '/a/'],
    ['/a/b/..', '/a/'],
    ['/a/b/../', '/a/'],
    ['/a/..', '/'],
    ['/a/../', '/'],
    ['/a/./../b/./c/.', '/b/c/'],
    ['/a/%2e%2e/b', '/b'],
    ['/a/.%2e/b', '/b'],
    ['/a/%2E/b', '/a/b'],
    ['/a/%2e', '/a/'],
    // Dots that are not a whole segment are ordinary characters.
    ['/a..b', '/a..b'],
    ['/...', '/...'],
    ['/.a/', '/.a/'],
  ])('%s → %s', (raw, expected) => {
    expect(normalizePath(raw)).toBe(expected);
    expect(normalizeTarget(raw)?.path).toBe(expected);
  });

  it('keeps a trailing slash', () => {
    expect(normalizePath('/a/')).toBe('/a/');
    expect(normalizePath('/a/b//')).toBe('/a/b/');
  });

  it.each(['/..', '/../a', '/a/../..', '/a/b/../../..', '/%2e%2e', '/%2e%2e/a', '/./..'])('%j climbs above the root and is refused', (raw) => {
    expect(normalizePath(raw)).toBeNull();
    expect(normalizeTarget(raw)).toBeNull();
  });

  it('the fast path returns clean paths unchanged', () => {
    for (const p of ['/', '/orders', '/orders/7', '/a.b/c-d_e~f', '/x/']) expect(normalizeTarget(p)).toEqual({ path: p, search: '', authority: null });
  });
});

describe('query and fragment (rule 5)', () => {
  it('keeps the query exactly as sent, whatever it contains', () => {
    expect(normalizeTarget('/a/../b?x=%2F&y=..')).toEqual({ path: '/b', search: '?x=%2F&y=..', authority: null });
    expect(normalizeTarget('/a?x=//y/../z&%5c')).toEqual({ path: '/a', search: '?x=//y/../z&%5c', authority: null });
    expect(normalizeTarget('/a?')).toEqual({ path: '/a', search: '?', authority: null });
    expect(normalizeTarget('/a/..?x')).toEqual({ path: '/', search: '?x', authority: null });
  });

  it.each(['/a#frag', '/a#', '/a?b#frag', '/a/b?c#', 'http://h/a#f', 'http://h#f'])('refuses the fragment in %j', (raw) => {
    expect(normalizeTarget(raw)).toBeNull();
  });
});

describe('target forms (rule 1)', () => {
  it('accepts absolute-form, normalises its path and takes its authority', () => {
    expect(normalizeTarget('http://Example.com:8080/a//b?q')).toEqual({ path: '/a/b', search: '?q', authority: 'Example.com:8080' });
    expect(normalizeTarget('https://example.com')).toEqual({ path: '/', search: '', authority: 'example.com' });
    expect(normalizeTarget('HTTP://H/x/../y')).toEqual({ path: '/y', search: '', authority: 'H' });
    expect(normalizeTarget('http://h?q')).toEqual({ path: '/', search: '?q', authority: 'h' });
    expect(normalizeTarget('http://[::1]:8080/a')).toEqual({ path: '/a', search: '', authority: '[::1]:8080' });
  });

  it('applies the same rule to the path of an absolute-form target', () => {
    expect(normalizeTarget('http://h/%2f')).toBeNull();
    expect(normalizeTarget('http://h/..')).toBeNull();
    expect(normalizeTarget('http://h/%6frders')?.path).toBe('/orders');
  });

  it.each(['*', 'a', '', 'example.com:443', 'ftp://example.com/a', 'ws://h/', 'http:/x', 'http://'])('refuses %j', (raw) => {
    expect(normalizeTarget(raw)).toBeNull();
  });

  it('normalizePath refuses anything that does not start with /', () => {
    expect(normalizePath('a/b')).toBeNull();
    expect(normalizePath('')).toBeNull();
  });
});

describe('dot segments with path parameters (Tomcat/Spring read /a/..;/b as /b)', () => {
  it.each(['/public/..;/admin', '/a/.;x/b', '/a/%2e%2e;/b', '/a/..%3b/b', '/a/..%3Bjsessionid=1/b'])('%j is refused', (raw) => {
    expect(normalizeTarget(raw)).toBeNull();
  });

  it.each(['/a/b;c/d', '/a/.x;y', '/a/..x;y'])('%j, an ordinary segment with parameters, passes unchanged', (raw) => {
    expect(normalizeTarget(raw)?.path).toBe(raw);
  });
});
