/**
 * `${VAR}` / `${VAR:-default}` interpolation (SPEC §3), through parseConfig so
 * each case is checked where it matters: the validated config. A value from
 * the environment may become a number, boolean or null only when it is the
 * whole of a plain scalar; anything else it contains stays inert text.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig, type ConfigProblem } from '../../../src/config/load.js';

const ROUTE = 'routes:\n  - { name: a, match: {}, upstream: "http://127.0.0.1:3000" }\n';

/** Parses `yaml` (plus one valid route unless it has its own) with exactly `env` as the environment. */
function load(yaml: string, env: NodeJS.ProcessEnv = {}) {
  const text = /^routes:/m.test(yaml) ? yaml : `${yaml}\n${ROUTE}`;
  return parseConfig(text, 'test.yaml', env);
}

function problems(yaml: string, env: NodeJS.ProcessEnv = {}): Omit<ConfigProblem, 'file'>[] {
  try {
    load(yaml, env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map(({ file: _file, ...rest }) => rest);
    throw err;
  }
  throw new Error('unexpectedly valid');
}

const notSet = (name: string) => `environment variable ${name} is not set (use \${NAME:-default} for an optional value)`;

describe('${VAR} and ${VAR:-default}', () => {
  it('replaces ${VAR} with the variable', () => {
    expect(load('store: { keyPrefix: ${PREFIX} }', { PREFIX: 'acme:' }).source.store.keyPrefix).toBe('acme:');
  });

  it('uses the default when the variable is unset or empty, and the variable when it is set', () => {
    const yaml = 'store: { redis: ${REDIS_URL:-redis://127.0.0.1:6379/0} }';
    expect(load(yaml).source.store.redis).toBe('redis://127.0.0.1:6379/0');
    expect(load(yaml, { REDIS_URL: '' }).source.store.redis).toBe('redis://127.0.0.1:6379/0');
    expect(load(yaml, { REDIS_URL: 'rediss://cache:6380' }).source.store.redis).toBe('rediss://cache:6380');
  });

  it('a default may hold spaces and colons', () => {
    expect(load('store: { keyPrefix: ${P:-a b:c} }').source.store.keyPrefix).toBe('a b:c');
  });

  it('an empty whole-scalar value is null, so an optional setting is "unset"', () => {
    expect(load('store: { redis: ${REDIS_URL:-} }').source.store.redis).toBeNull();
    expect(load('store: { redis: ${REDIS_URL:-} }', { REDIS_URL: '' }).source.store.redis).toBeNull();
    expect(load('admin: { token: ${TOKEN:-} }').source.admin.token).toBeNull();
    expect(load('identity: { assertion: { secret: ${SECRET:-} } }').identity.assertion).toBeNull();
    // Block style as well as flow style.
    expect(load('store:\n  redis: ${REDIS_URL:-}\n').source.store.redis).toBeNull();
  });

  it('re-reads a plain whole-scalar value as a number or boolean', () => {
    expect(load('listen: { port: ${PORT:-8080} }').source.listen.port).toBe(8080);
    expect(load('listen: { port: ${PORT:-8080} }', { PORT: '9090' }).source.listen.port).toBe(9090);
    expect(load('listen:\n  trustProxy: ${TRUST}\n', { TRUST: 'true' }).source.listen.trustProxy).toBe(true);
    expect(load('logging: { sample2xx: ${SAMPLE:-0.25} }').source.logging.sample2xx).toBe(0.25);
    expect(load('shutdownGraceMs: ${GRACE}', { GRACE: '500' }).source.shutdownGraceMs).toBe(500);
  });

  it('quoted scalars stay strings', () => {
    expect(load('store: { keyPrefix: "${P:-7}" }').source.store.keyPrefix).toBe('7');
    expect(load("store: { keyPrefix: '${P}' }", { P: 'true' }).source.store.keyPrefix).toBe('true');
    expect(load("store: { keyPrefix: '${P:-}' }").source.store.keyPrefix).toBe('');
    expect(problems('listen: { port: "${PORT:-8080}" }')).toEqual([
      { path: 'listen.port', line: 1, message: 'Invalid input: expected number, received string' },
    ]);
  });

  it('a placeholder inside a longer scalar makes a string', () => {
    expect(load('store: { keyPrefix: tg-${N:-1} }').source.store.keyPrefix).toBe('tg-1');
    expect(load('store: { redis: redis://${HOST:-127.0.0.1}:${PORT:-6379} }', { PORT: '6390' }).source.store.redis).toBe('redis://127.0.0.1:6390');
  });

  it('works inside flow maps and flow sequences', () => {
    const c = load('listen: { host: ${HOST:-127.0.0.1}, port: ${P:-1} }\nroutes: [ { name: a, match: { pathPrefix: ${PFX:-/a}, methods: [${M:-GET}] }, upstream: "${UP}" } ]', {
      UP: 'http://127.0.0.1:3001',
      M: 'post',
    });
    expect(c.source.listen).toMatchObject({ host: '127.0.0.1', port: 1 });
    expect(c.source.routes[0]).toMatchObject({ match: { pathPrefix: '/a', methods: ['POST'] }, upstream: 'http://127.0.0.1:3001' });
  });

  it('$${X} is a literal ${X}, quoted or not, and never looks the variable up', () => {
    expect(load('store: { keyPrefix: "$${HOME}" }', { HOME: '/root' }).source.store.keyPrefix).toBe('${HOME}');
    expect(load('store: { keyPrefix: $${X:-d} }', { X: 'x' }).source.store.keyPrefix).toBe('${X:-d}');
    expect(load('store: { keyPrefix: a$${UNSET}b }').source.store.keyPrefix).toBe('a${UNSET}b');
  });

  it('a placeholder in a comment is ignored', () => {
    expect(load('# set ${NOT_SET_ANYWHERE} to override\nstore: { keyPrefix: x }  # or ${ALSO_NOT_SET}').source.store.keyPrefix).toBe('x');
  });
});

describe('an environment value is inert text', () => {
  it.each([
    ['a: b'],
    ['[1,2]'],
    ['{x: 1}'],
    ['- a'],
    ['x\nlisten: { port: 1 }'],
    ['a, redis: redis://evil:6379'],
    ['${OTHER}'],
    ['__tg_env_0__'],
  ])('%j stays the exact string', (value) => {
    const c = load('store: { keyPrefix: ${P}, commandTimeoutMs: ${T:-50} }', { P: value, OTHER: 'expanded' });
    expect(c.source.store.keyPrefix).toBe(value);
    expect(c.source.store.redis).toBeNull();
    expect(c.source.listen.port).toBe(8080);
    expect(c.source.store.commandTimeoutMs).toBe(50);
  });

  it('a value with a newline in a block scalar cannot add keys', () => {
    const c = load('store:\n  keyPrefix: ${P}\n', { P: 'x\n  failureMode: closed' });
    expect(c.source.store.keyPrefix).toBe('x\n  failureMode: closed');
    expect(c.source.store.failureMode).toBe('open');
  });

  it.each([['#not-a-comment'], ['pass #word'], ["'quoted'"], ['"dq\\n"'], ['&anchor value']])(
    '%j (YAML comment, quote or anchor syntax) stays the exact string',
    (value) => {
      expect(load('store: { keyPrefix: ${P} }', { P: value }).source.store.keyPrefix).toBe(value);
    },
  );
});

describe('errors', () => {
  it('a missing variable without default is an error with its path and line', () => {
    expect(problems('store:\n  keyPrefix: ${NOPE}')).toEqual([{ path: 'store.keyPrefix', line: 2, message: notSet('NOPE') }]);
  });

  it('reports every missing variable, each once, without a cascade of schema errors', () => {
    const yaml = `listen: { port: \${PORT} }
routes:
  - name: a
    match: { pathPrefix: /a }
    upstream: \${UPSTREAM_A}
  - name: b
    match: {}
    upstream: http://\${HOST_B}:\${PORT_B}
`;
    expect(problems(yaml)).toEqual([
      { path: 'listen.port', line: 1, message: notSet('PORT') },
      { path: 'routes[0].upstream', line: 5, message: notSet('UPSTREAM_A') },
      { path: 'routes[1].upstream', line: 8, message: notSet('HOST_B, PORT_B') },
    ]);
  });

  it('a missing variable inside a flow sequence has the index in its path', () => {
    expect(problems('routes:\n  - { name: a, match: { methods: [GET, ${M2}] }, upstream: "http://127.0.0.1:3000" }')).toEqual([
      { path: 'routes[0].match.methods[1]', line: 2, message: notSet('M2') },
    ]);
  });

  it('text that merely looks like the internal placeholder token is left as written', () => {
    // One real placeholder elsewhere, so the loader does substitute in this file.
    expect(() => load('store: { keyPrefix: "__tg_env_7__", redis: ${R:-} }')).not.toThrow();
    expect(load('store: { keyPrefix: "__tg_env_0__", redis: ${R:-} }').source.store.keyPrefix).toBe('__tg_env_0__');
  });

  it('values cannot inject YAML structure, in plain scalars or inside longer ones', () => {
    expect(load('store: { keyPrefix: ${P} }', { P: '{ a: 1 }' }).source.store.keyPrefix).toBe('{ a: 1 }');
    expect(load('store: { keyPrefix: ${P} }', { P: 'x\nlisten: { port: 1 }' }).source.store.keyPrefix).toBe('x\nlisten: { port: 1 }');
    expect(load('store: { keyPrefix: pre-${P}-post }', { P: 'a: b' }).source.store.keyPrefix).toBe('pre-a: b-post');
  });
});
