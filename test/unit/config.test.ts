/**
 * Config loading: one bad-config fixture per validation error (asserted by
 * line, YAML path and message), every problem reported at once, and the
 * `${VAR}` interpolation rules.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseConfig } from '../../src/config/load.js';
import { ROOT } from '../helpers/servers.js';

const fixture = (name: string) => join(ROOT, 'test/fixtures/config', name);

async function problemsOf(name: string, env: NodeJS.ProcessEnv = {}): Promise<string[]> {
  try {
    await loadConfig(fixture(name), env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map((p) => `${p.line} ${p.path}: ${p.message}`);
    throw err;
  }
  throw new Error(`${name} unexpectedly valid`);
}

describe('one fixture per validation error', () => {
  const cases: [string, string][] = [
    ['unknown-key.yaml', '3 routes[0].match.pathPrefx: unknown key "pathPrefx"'],
    ['unknown-top-level.yaml', '1 rutes: unknown key "rutes"'],
    ['wrong-type.yaml', '2 listen.port: Invalid input: expected number, received string'],
    ['metrics-enabled-string.yaml', '2 metrics.enabled: Invalid input: expected boolean, received string'],
    ['port-range.yaml', '2 listen.port: Too big: expected number to be <=65535'],
    ['credit-too-long.yaml', '2 store.localCreditMs: Too big: expected number to be <=1000'],
    ['no-routes.yaml', '1 routes: is required (array)'],
    ['bad-upstream.yaml', '4 routes[0].upstream: must be an http:// or https:// URL'],
    ['prefix-no-slash.yaml', '3 routes[0].match.pathPrefix: must start with "/"'],
    ['prefix-not-normalised.yaml', '3 routes[0].match.pathPrefix: must be a normalised path'],
    ['duplicate-route.yaml', '3 routes[1].name: duplicate route name "a"'],
    ['ambiguous-routes.yaml', '3 routes[1].match: same host and pathPrefix as routes[0] with overlapping methods'],
    ['unknown-plan.yaml', '5 tenants[0].plan: unknown plan "gold" (plans: free)'],
    ['unknown-tenant.yaml', '3 apiKeys[0].tenant: unknown tenant "nobody"'],
    ['duplicate-tenant.yaml', '4 tenants[1].id: duplicate tenant id "acme"'],
    ['issuer-two-sources.yaml', '3 jwt.issuers[0]: set exactly one of jwksUri, keys or secret'],
    ['hs-without-secret.yaml', '6 jwt.issuers[0].algorithms: HS* algorithms need `secret`'],
    ['assertion-two-keys.yaml', '2 identity.assertion: set either secret (HS256) or privateKeyFile (EdDSA), not both'],
    ['missing-env.yaml', '2 store.redis: environment variable TG_TEST_UNSET_REDIS_URL is not set'],
    ['yaml-syntax.yaml', '4 : YAML syntax: Flow map in block collection'],
    ['duplicate-key.yaml', '3 : YAML syntax: Map keys must be unique'],
  ];
  it.each(cases)('%s', async (name, expected) => {
    const problems = await problemsOf(name);
    expect(problems.some((p) => p.startsWith(expected)), problems.join('\n')).toBe(true);
  });

  it('reports every problem of a file at once, in file order', async () => {
    const problems = await problemsOf('many-errors.yaml');
    expect(problems).toEqual([
      '1 listen.port: Too small: expected number to be >=0',
      '1 listen.hots: unknown key "hots"',
      '2 admin.token: must be at least 16 characters',
      '5 routes[0].match.pathPrefix: must start with "/"',
      expect.stringMatching(/^5 routes\[0\]\.match\.methods\[0\]: Invalid option/),
      '6 routes[0].upstream: must be an http:// or https:// URL',
      expect.stringMatching(/^7 routes\[0\]\.auth\[0\]: Invalid option/),
      '8 routes[0].timeoutMs: Too small: expected number to be >0',
    ]);
  });

  it('the demo config is valid', async () => {
    const config = await loadConfig(join(ROOT, 'config/demo.yaml'), {});
    expect(config.routeList.map((r) => r.name)).toEqual(['public', 'orders']);
  });

  it('the SPEC-like reference config is valid', async () => {
    const config = await loadConfig(join(ROOT, 'config/tenantgate.yaml'), {});
    expect(config.routeList.map((r) => r.name)).toEqual(['orders', 'health']);
    expect(Object.isFrozen(config.source.routes[0])).toBe(true);
    expect(config.source.metrics).toEqual({ enabled: true, maxTenantLabels: 1000 });
  });
});

describe('${VAR} interpolation', () => {
  const base = 'routes:\n  - { name: a, match: {}, upstream: "http://127.0.0.1:3000" }\n';
  const load = (yaml: string, env: NodeJS.ProcessEnv = {}) => parseConfig(`${yaml}\n${base}`, 'test.yaml', env).source;

  it('reads plain whole-value placeholders as YAML scalars, inside flow maps too', () => {
    const c = load('listen: { port: ${PORT:-8080}, trustProxy: ${TRUST:-false} }', { TRUST: 'true' });
    expect(c.listen.port).toBe(8080);
    expect(c.listen.trustProxy).toBe(true);
  });

  it('an empty value means "not set"', () => {
    expect(load('store: { redis: ${REDIS_URL:-} }').store.redis).toBeNull();
    expect(load('store: { redis: ${REDIS_URL:-} }', { REDIS_URL: 'redis://127.0.0.1:6380' }).store.redis).toBe('redis://127.0.0.1:6380');
  });

  it('quoted scalars stay strings; values cannot inject YAML structure', () => {
    expect(load('store: { keyPrefix: "${P:-7}" }').store.keyPrefix).toBe('7');
    expect(load('store: { keyPrefix: ${P} }', { P: '{ a: 1 }' }).store.keyPrefix).toBe('{ a: 1 }');
    expect(load('store: { keyPrefix: ${P} }', { P: 'x\nlisten: { port: 1 }' }).store.keyPrefix).toBe('x\nlisten: { port: 1 }');
    expect(load('store: { keyPrefix: pre-${P}-post }', { P: 'a: b' }).store.keyPrefix).toBe('pre-a: b-post');
  });

  it('$${ is a literal ${', () => {
    expect(load('store: { keyPrefix: "$${HOME}" }', { HOME: '/root' }).store.keyPrefix).toBe('${HOME}');
  });

  it('a missing variable without default is an error with path and line', () => {
    expect(() => load('store:\n  keyPrefix: ${NOPE}')).toThrow(/test\.yaml:2 store\.keyPrefix: environment variable NOPE is not set/);
  });
});
