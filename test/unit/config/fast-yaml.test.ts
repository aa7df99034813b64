/**
 * The config's fast path (src/config/fast-yaml.ts, issue #6) against the full
 * one (`parseDocument` with positions), which stays the reference:
 *
 * - YAML values: js-yaml with the copied core schema reads every scalar,
 *   string style and collection as `yaml`'s `toJS()` does, or declines.
 * - Configs: a valid config compiles to the same thing either way — with
 *   placeholders in plain, quoted and block scalars, and with a big apiKeys
 *   list read in chunks — and the fast path did take it.
 * - What it declines (anchors, directives, complex or null keys, a
 *   placeholder in a key, a layout the chunking cannot vouch for) and every
 *   invalid config end in the full path: same result, same problems.
 * - Compacted key records hold exactly what zod produced.
 */
import { parseDocument } from 'yaml';
import { describe, expect, it } from 'vitest';
import type { CompiledCore } from '../../../src/config/compile.js';
import { readPlain } from '../../../src/config/fast-yaml.js';
import { maskPlaceholders } from '../../../src/config/interpolate.js';
import { ConfigError, parseConfig, parseFast, parseFull, type ConfigProblem } from '../../../src/config/load.js';
import { configSchema } from '../../../src/config/schema.js';

/** The plain value as the fast path reads it (apiKeys put back), or undefined when it declines. */
function fastValue(text: string, env: NodeJS.ProcessEnv = {}): unknown {
  const plain = readPlain(maskPlaceholders(text), env);
  if (plain === undefined) return undefined;
  const keys: unknown[] = [];
  if (!plain.forEachKey((k) => keys.push(k) > 0)) return undefined;
  return keys.length === 0 ? plain.root : { ...plain.root, apiKeys: keys };
}

/** What `yaml` makes of the text: its value, or 'error'. */
function referenceValue(text: string): unknown {
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  return doc.errors.length > 0 ? 'error' : doc.toJS();
}

const VALUES = `
nulls: [~, null, Null, NULL, "~", 'null', !!str null]
empty:
bools: [true, True, TRUE, false, False, FALSE, yes, no, on, off, y, n, tRUE]
ints: [0, 7, -7, +7, 007, 0o17, 0o8, 0x1F, 0xff, -0x1, 1_000, 0b101, 12345678901234567890, 08]
floats: [1.0, -1.5, .5, +.5, 1., 1e3, 1E-3, -1.5e+3, .inf, -.inf, +.Inf, .NaN, .nan, .NAN, 1.0e, 1e, 0.1.2, -.5e-1]
strings:
  plain: hello world
  colon: a:b
  url: http://x:8080/a#b?c=d&e=f
  comment: a #comment
  hash: a#b
  folded: this is
    folded plain

    with a break
  sq: 'it''s'
  dq: "tab\\there \\x41 \\u263A \\U0001F600 \\N \\_ \\L \\P \\/ \\\\ \\" \\e \\0 \\a \\b \\v \\f \\r \\ end"
  date: 2024-01-01
  time: 2024-01-01T00:00:00Z
  quotedcolon: "a: b"
  unicode: héllo ✓
  empty: ""
  spaces: "  padded  "
  dash: -x
  dots: ...x
  star: a*b
  amp: a&b
  bang: a!b
  pct: 50%
blocks:
  lit: |
    line1
     indented
    line3

  strip: |-
    x
  keep: |+
    x

  fold: >
    a
    b

    c
     d
    e
  foldstrip: >-
    a
    b
  indicator: |2
     two extra
  lastline: |
    no newline at end
flow: { a: 1, b: [x, "y", 'z'], c: { d: e }, "q k": 2, 'r': 3, 4: four, 2.5: f, true: t }
flowtrail: [a, b, ]
emptyflow: { }
emptyseq: []
nested:
  - a
  - - b
    - c
  - k: v
    k2: v2
  -
  - - - deep
compact:
- x
- y
tagged: [!!str 123, !!str true, !!seq [a], !!map { a: b }]
"quoted key": 1
'single key': 2
? explicit
: value
`;

describe('YAML values: the fast reader agrees with yaml or declines', () => {
  it('reads scalars, string styles and collections as yaml does', () => {
    const text = VALUES.replace('? explicit\n: value\n', '');
    expect(referenceValue(text)).not.toBe('error');
    expect(fastValue(text)).toStrictEqual(referenceValue(text));
  });

  it('with CRLF line ends, a byte-order mark, document markers and comments everywhere', () => {
    const text = `\uFEFF# head\r\n---\r\na: 1 # c\r\nb:\r\n  - x\r\n  # between\r\n  - "y"\r\nc: |\r\n  l1\r\n  l2\r\n...\r\n`;
    expect(fastValue(text)).toStrictEqual(referenceValue(text));
  });

  it.each([
    ['anchors and aliases', 'a: &x { b: 1 }\nc: *x\n'],
    ['a %YAML directive (1.1 reads yes/no as booleans)', '%YAML 1.1\n---\na: yes\n'],
    ['an explicit key', VALUES],
    ['a flow collection as a key', '[a, b]: c\n'],
    ['a null key', 'a: { ~: 1 }\n'],
    ['an empty key', 'a: { : 1 }\n'],
    ['the key null', 'null: 1\n'],
    ['an unknown tag', 'a: !foo 1\n'],
    ['a core tag js-yaml would resolve its own way', 'a: !!int 0x10\n'],
    ['a duplicate key', 'a: 1\na: 2\n'],
    ['keys equal once stringified', 'a: { 1: x, "1": y }\n'],
    ['two documents', 'a: 1\n---\nb: 2\n'],
    ['a root that is not a map', '- a\n'],
    ['a syntax error', 'a: [1, 2\n'],
    ['tabs as indentation', 'a:\n\tb: 1\n'],
    // Valid, but js-yaml takes continuation lines at any indentation where yaml wants them deeper.
    ['a double-quoted scalar over lines', 'a:\n  b: "line one\n    line two\n\n    para \\\n    joined"\n'],
    ['a single-quoted scalar over lines', "a: 'x\n  y'\n"],
    ['a flow collection over lines', 'a: [a,\n  b, { c: d,\n  e: f }]\n'],
    ['an escaped line break', 'a: "x\\\n  y"\n'],
  ])('declines %s', (_name, text) => {
    expect(fastValue(text)).toBeUndefined();
  });

  it('never accepts what yaml rejects, in a set of broken files', () => {
    const broken = [
      'a:\n  b: "x\n  y"\n',
      'a: "x\ny"\n',
      'a:\n  b: { c: 1,\n  d: 2 }\n',
      'a: [1,\n2]\n',
      'a:\n  - { c: 1,\n  d: 2 }\n',
      'a: b: c\n',
      'a: "unterminated\n',
      "a: 'unterminated\n",
      'a:\n  - b\n c: d\n',
      'a: { b: 1\n',
      'a: [1, 2]]\n',
      'a: |\n b\n  c\nd\n  e: 1\n',
      'key with\n  newline: 1\n',
      'a: 1\n b: 2\n',
      '- a\nb: c\n',
      'a: @b\n',
      'a: `b\n',
      'a: "b" c\n',
    ];
    for (const text of broken) {
      if (referenceValue(text) === 'error') expect(fastValue(text), JSON.stringify(text)).toBeUndefined();
      else expect([undefined, referenceValue(text)], JSON.stringify(text)).toContainEqual(fastValue(text));
    }
  });
});

const ROUTES = 'routes:\n  - { name: a, match: { pathPrefix: / }, upstream: "http://127.0.0.1:3000" }\n';
const HASH = `sha256:${'A'.repeat(43)}`;

/** A config with `n` API keys over 3 tenants, items in `style`. */
function keysConfig(n: number, style: 'flow' | 'block' | 'compact' = 'flow', extra = ''): string {
  const lines = ['plans: { free: {} }', 'tenants:', '  - { id: t0, plan: free }', '  - { id: t1, plan: free }', '  - id: t2', '    plan: free', 'apiKeys:'];
  for (let i = 0; i < n; i++) {
    const id = `ak_${String(i).padStart(6, '0')}`;
    if (style === 'flow') lines.push(`  - { id: ${id}, tenant: t${i % 3}, hash: "${HASH}", scopes: [read, "write"] }`);
    else if (style === 'compact') lines.push(`- { id: ${id}, tenant: t${i % 3}, hash: '${HASH}' }`);
    else lines.push(`  - id: ${id}`, `    tenant: t${i % 3}`, `    hash: ${HASH}`, '    scopes:', '      - read', i % 7 === 0 ? '    # a comment\n' : '    env: live');
  }
  return `${lines.join('\n')}\n${extra}${ROUTES}`;
}

type Outcome = { config: CompiledCore } | { problems: Omit<ConfigProblem, 'file'>[] };

function outcome(run: () => CompiledCore): Outcome {
  try {
    return { config: run() };
  } catch (err) {
    if (err instanceof ConfigError) return { problems: err.problems.map(({ file: _file, ...rest }) => rest) };
    throw err;
  }
}

/** parseConfig (fast path first) and the full path alone give the same compiled config or the same problems. */
function expectSameAsFull(text: string, env: NodeJS.ProcessEnv = {}): Outcome {
  const full = outcome(() => parseFull(text, 'c.yaml', env));
  expect(outcome(() => parseConfig(text, 'c.yaml', env))).toStrictEqual(full);
  return full;
}

describe('configs: the fast path compiles what the full path compiles', () => {
  const valid: [name: string, text: string, env?: NodeJS.ProcessEnv][] = [
    ['a minimal config', ROUTES],
    ['1,234 keys in flow maps (three chunks)', keysConfig(1234)],
    ['keys as block maps with comments between', keysConfig(600, 'block')],
    ['keys at the indentation of their key', keysConfig(700, 'compact')],
    ['keys followed by other sections', keysConfig(10, 'flow', 'logging: { level: warn }\n# trailing comment\n')],
    ['keys at the end of the file without a newline', `${ROUTES}${keysConfig(3).replace(ROUTES, '').trimEnd()}`],
    ['keys in a flow list', `plans: { p: {} }\ntenants: [{ id: t, plan: p }]\napiKeys: [{ id: a, tenant: t, hash: "${HASH}" }]\n${ROUTES}`],
    ['CRLF line ends', keysConfig(3).replaceAll('\n', '\r\n')],
    [
      'keys with a project, an expiry, a rate, revoked, test env, no scopes',
      `plans: { p: {} }\ntenants: [{ id: t, plan: p }]\napiKeys:\n  - { id: a, tenant: t, project: pr, hash: "${HASH}", expiresAt: "2030-01-01T00:00:00Z" }\n  - { id: b, tenant: t, hash: "${HASH}", rate: { perSecond: 1.5, burst: 3 } }\n  - { id: c, tenant: t, hash: "${HASH}", revoked: true, env: test, scopes: [] }\n${ROUTES}`,
    ],
    [
      'placeholders in plain, quoted and block scalars, whole and partial, literal, with defaults',
      `listen: { port: \${PORT:-8080}, host: "\${HOST:-0.0.0.0}", trustProxy: \${TRUST} }
store: { redis: \${REDIS_URL:-}, keyPrefix: "\${EMPTY:-}" }
admin: { token: \${TOKEN:-} }
logging: { sample2xx: \${SAMPLE:-0.5} }
roles: { r: ["\${SCOPE}", \${SCOPE}, x-\${SCOPE}-y, $\${LITERAL}, "$\${LITERAL}"], n: ['\${NUM}', "\${NUM}", \${NUM}x] }
jwt:
  issuers:
    - issuer: https://\${IDP}/
      audience: "\${AUD}"
      algorithms: [HS256]
      secret: |-
        \${SECRET}
plans: { free: {} }
tenants: [{ id: \${TENANT}, plan: free }, { id: t2, plan: free }]
apiKeys:
  - { id: k1, tenant: \${TENANT}, hash: "\${HASH}" }
  - { id: k2, tenant: t2, hash: \${HASH}, revoked: \${REVOKED:-false} }
${ROUTES}`,
      { TRUST: 'true', NUM: '123', SCOPE: 'read', IDP: 'idp.example', AUD: '42', SECRET: 's'.repeat(40), TENANT: 'acme', HASH, REVOKED: 'TRUE' },
    ],
    ['a placeholder whose value looks like YAML', 'store: { keyPrefix: ${P} }\n' + ROUTES, { P: '{ a: 1 } # not a comment' }],
    ['a placeholder whose value is a number, quoted', 'store: { keyPrefix: "${P}" }\n' + ROUTES, { P: '8080' }],
  ];

  it.each(valid)('%s', (_name, text, env = {}) => {
    const full = outcome(() => parseFull(text, 'c.yaml', env));
    expect('config' in full, JSON.stringify(full)).toBe(true);
    const fast = parseFast(text, 'c.yaml', env);
    expect(fast, 'the fast path declined').toBeDefined();
    expect(fast).toStrictEqual((full as { config: unknown }).config);
  });

  it('reads the values the placeholders stand for, by scalar style', () => {
    const [, text, env] = valid.find(([name]) => name.startsWith('placeholders'))!;
    const config = parseFast(text, 'c.yaml', env)!;
    expect(config.source.listen).toMatchObject({ port: 8080, host: '0.0.0.0', trustProxy: true });
    expect(config.source.store).toMatchObject({ redis: null, keyPrefix: '' });
    expect(config.source.admin.token).toBeNull();
    expect(config.source.roles.r).toStrictEqual(['read', 'read', 'x-read-y', '${LITERAL}', '${LITERAL}']);
    expect(config.source.roles.n).toStrictEqual(['123', '123', '123x']);
    expect(config.source.jwt.issuers[0]).toMatchObject({ issuer: 'https://idp.example/', audience: '42', secret: 's'.repeat(40) });
    expect(config.source.apiKeys.map((k) => [k.tenant, k.hash, k.revoked])).toStrictEqual([
      ['acme', HASH, false],
      ['t2', HASH, true],
    ]);
  });

  it('the compacted key records hold what zod produced, frozen, equal scope lists shared', () => {
    for (const text of [keysConfig(1234), keysConfig(600, 'block'), valid.find(([name]) => name.startsWith('keys with a project'))![1]]) {
      const expected = configSchema.parse(parseDocument(text).toJS()).apiKeys;
      for (const config of [parseFast(text, 'c.yaml', {})!, parseFull(text, 'c.yaml', {})]) {
        expect(config.source.apiKeys).toStrictEqual(expected);
        expect(config.source.apiKeys.every((k) => Object.isFrozen(k) && Object.isFrozen(k.scopes))).toBe(true);
      }
    }
    const keys = parseFast(keysConfig(5), 'c.yaml', {})!.source.apiKeys;
    expect(keys[0]!.scopes).toBe(keys[4]!.scopes);
  });

  it('a reload shares the unchanged key records of the config in force, on either path', () => {
    const text = keysConfig(1100);
    const before = parseConfig(text, 'c.yaml', {});
    // One key changed, one removed at the front (every later position shifts), one added.
    const edited = text
      .replace(`ak_000500, tenant: t2, hash: "${HASH}"`, `ak_000500, tenant: t1, hash: "${HASH}"`)
      .replace(/^ {2}- \{ id: ak_000000,.*\n/m, '')
      .replace('apiKeys:\n', `apiKeys:\n  - { id: new, tenant: t0, hash: "${HASH}" }\n`);
    for (const after of [parseFast(edited, 'c.yaml', {}, before)!, parseFull(edited, 'c.yaml', {}, before)]) {
      expect(after.source.apiKeys).toStrictEqual(parseFull(edited, 'c.yaml', {}).source.apiKeys);
      const old = new Map(before.source.apiKeys.map((k) => [k.id, k]));
      const shared = after.source.apiKeys.filter((k) => old.get(k.id) === k).map((k) => k.id);
      expect(shared).toHaveLength(1100 - 2);
      expect(shared).not.toContain('ak_000500');
      expect(after.source.apiKeys.find((k) => k.id === 'ak_000500')!.tenant).toBe('t1');
    }
  });
});

describe('declined or invalid: the full path decides, with the same result', () => {
  const cases: [name: string, text: string, env?: NodeJS.ProcessEnv][] = [
    ['an anchor (valid: the full path compiles it)', `roles: { a: &s [x, y], b: *s }\n${ROUTES}`],
    ['an anchor for limits', `plans: { p: &lim { concurrency: 2 } }\ntenants: [{ id: t, plan: p, overrides: *lim }]\n${ROUTES}`],
    ['a placeholder in a key', `roles: { \${ROLE}: [a] }\n${ROUTES}`, { ROLE: 'admin' }],
    ['a flow map over two lines (valid: deeper than its key)', `listen: { host: a,\n  port: 1 }\n${ROUTES}`],
    ['a %YAML 1.1 directive', `%YAML 1.1\n---\nlisten: { trustProxy: yes }\n${ROUTES}`],
    ['a null key', `roles: { ~: [a] }\n${ROUTES}`],
    ['a merge key', `listen: { <<: { port: 1 } }\n${ROUTES}`],
    ['an unset variable', `store: { redis: \${NOPE} }\n${ROUTES}`],
    ['an unset variable in a key record', keysConfig(3).replace('hash: "', 'hash: "${NOPE}')],
    ['a bad hash deep in a chunked list (its line)', keysConfig(1200).replace(`ak_001100, tenant: t2, hash: "${HASH}"`, 'ak_001100, tenant: t2, hash: "md5:x"')],
    ['an unknown tenant in a key', keysConfig(600).replace('ak_000555, tenant: t0', 'ak_000555, tenant: nobody')],
    ['a duplicate key id', keysConfig(600).replace('ak_000599', 'ak_000001')],
    ['an unknown key in a key record', keysConfig(3, 'block').replace('    env: live', '    envv: live')],
    ['apiKeys twice', `${keysConfig(3)}apiKeys: []\n`],
    ['apiKeys with nothing under it', `apiKeys:\n# none\n${ROUTES}`],
    ['apiKeys: a map', `apiKeys:\n  a: 1\n${ROUTES}`],
    ['a syntax error in the keys', keysConfig(600).replace('ak_000300, tenant: t0,', 'ak_000300, tenant: [t0,')],
    ['a quoted scalar swallowing the apiKeys line', `x-note: "a\napiKeys:\n  - { id: k, tenant: t, hash: '${HASH}' }\n  b"\nplans: { p: {} }\ntenants: [{ id: t, plan: p }]\n${ROUTES}`],
    ['an item less indented than the first', `plans: { p: {} }\ntenants: [{ id: t, plan: p }]\napiKeys:\n    - { id: a, tenant: t, hash: "${HASH}" }\n  - { id: b, tenant: t, hash: "${HASH}" }\n${ROUTES}`],
    ['a tab-indented line in the keys', keysConfig(3, 'block').replace('    tenant: t1', '\ttenant: t1')],
    ['a duplicate key inside a record', keysConfig(3).replace('scopes: [read, "write"] }', 'scopes: [read], scopes: [x] }')],
    ['no routes', 'listen: { port: 1 }\n'],
    ['a wrong type', `listen: { port: "80" }\n${ROUTES}`],
    ['an empty file', ''],
    ['a file that is a list', '- a\n'],
  ];

  it.each(cases)('%s', (_name, text, env = {}) => {
    expectSameAsFull(text, env);
  });

  it('reports a bad key deep in the list at its own line', () => {
    const result = expectSameAsFull(cases.find(([name]) => name.startsWith('a bad hash'))![1]);
    expect(result).toStrictEqual({
      problems: [{ path: 'apiKeys[1100].hash', line: 1108, message: 'must be "sha256:<digest>" or "hmac-sha256:<digest>"' }],
    });
  });

  it('the fast path declines each of them', () => {
    for (const [name, text, env = {}] of cases) {
      // The anchors are valid configs: only the full path may compile them.
      expect(parseFast(text, 'c.yaml', env), name).toBeUndefined();
    }
  });
});
