import { describe, expect, it } from 'vitest';
import { normalizePath, normalizeTarget } from '../../src/stages/normalize-path.js';

describe('path normalisation rule', () => {
  it.each([
    ['/', '/'],
    ['/a/b', '/a/b'],
    ['/a//b', '/a/b'],
    ['//a', '/a'],
    ['/a/./b', '/a/b'],
    ['/a/b/..', '/a/'],
    ['/a/b/../', '/a/'],
    ['/a/%2e%2e/b', '/b'],
    ['/a/%2E/b', '/a/b'],
    ['/%41%7a%30%2d%5f%7e', '/Az0-_~'],
    ['/a%20b', '/a%20b'],
    ['/%c3%a9', '/%C3%A9'],
    ['/a/', '/a/'],
  ])('%s → %s', (raw, expected) => {
    expect(normalizePath(raw)).toBe(expected);
  });

  it.each(['/..', '/a/../..', '/%2e%2e', '/a%2fb', '/a%2Fb', '/a%5cb', '/a\\b', '/a%00', '/a%0a', '/a%', '/a%2', '/a%zz', 'a', ''])('%j is refused', (raw) => {
    expect(normalizePath(raw)).toBeNull();
  });

  it('keeps the query as sent and refuses fragments', () => {
    expect(normalizeTarget('/a/../b?x=%2F&y=..')).toEqual({ path: '/b', search: '?x=%2F&y=..', authority: null });
    expect(normalizeTarget('/a#frag')).toBeNull();
    expect(normalizeTarget('/a?b#frag')).toBeNull();
  });

  it('accepts absolute-form and takes its authority', () => {
    expect(normalizeTarget('http://Example.com:8080/a//b?q')).toEqual({ path: '/a/b', search: '?q', authority: 'Example.com:8080' });
    expect(normalizeTarget('https://example.com')).toEqual({ path: '/', search: '', authority: 'example.com' });
    expect(normalizeTarget('ftp://example.com/a')).toBeNull();
    expect(normalizeTarget('*')).toBeNull();
  });
});
