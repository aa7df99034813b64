/**
 * loadConfig against the fixtures in test/fixtures/config/: one file per
 * validation error, each asserted as the complete list of problems (so a
 * second, cascading message fails the test too) with its YAML path, its line
 * and its message; a file with several independent errors reports all of
 * them in one run; SPEC §3's example config and the shipped configs validate.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, formatProblem, loadConfig, type ConfigProblem } from '../../../src/config/load.js';
import { ROOT } from '../../helpers/servers.js';

const DIR = join(ROOT, 'test/fixtures/config');
const fixture = (name: string) => join(DIR, name);

type Expected = [line: number | undefined, path: string, message: string | RegExp];

async function problemsOf(name: string, env: NodeJS.ProcessEnv = {}): Promise<ConfigProblem[]> {
  try {
    await loadConfig(fixture(name), env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error(`${name} unexpectedly valid`);
}

function expectProblems(name: string, problems: ConfigProblem[], expected: Expected[]): void {
  const shown = problems.map(formatProblem).join('\n');
  expect(problems.length, shown).toBe(expected.length);
  expected.forEach(([line, path, message], i) => {
    const p = problems[i]!;
    expect(p.file, shown).toBe(fixture(name));
    expect(p.path, shown).toBe(path);
    expect(p.line, shown).toBe(line);
    if (typeof message === 'string') expect(p.message, shown).toBe(message);
    else expect(p.message, shown).toMatch(message);
  });
}

const NOT_NORMALISED = 'must be a normalised path (no "//", ".", "..", "\\" or %-escapes of /, \\ or unreserved characters)';
const NOT_HTTP_URL = 'must be an http:// or https:// URL';

describe('one bad-config fixture per validation error', () => {
  const cases: [name: string, expected: Expected[]][] = [
    ['unknown-top-level.yaml', [[1, 'rutes', 'unknown key "rutes"']]],
    ['nats-sink-incomplete.yaml', [[5, 'usage.sinks[0].url', 'is required (string)'], [5, 'usage.sinks[0].stream', 'is required (string)']]],
    ['cloudevents-key-without-format.yaml', [[7, 'usage.sinks[0].eventType', 'eventType applies only with format: cloudevents']]],
    ['metrics-enabled-string.yaml', [[2, 'metrics.enabled', 'Invalid input: expected boolean, received string']]],
    ['credit-too-long.yaml', [[2, 'store.localCreditMs', 'Too big: expected number to be <=1000']]],
    ['assertion-two-keys.yaml', [[2, 'identity.assertion', 'set either secret (HS256) or privateKeyFile (EdDSA), not both']]],
    ['yaml-syntax.yaml', [[4, '', 'YAML syntax: Flow map in block collection must be sufficiently indented and end with a }']]],
    ['unknown-key.yaml', [[3, 'routes[0].match.pathPrefx', 'unknown key "pathPrefx"']]],
    ['wrong-type.yaml', [[2, 'listen.port', 'Invalid input: expected number, received string']]],
    ['port-range.yaml', [[2, 'listen.port', 'Too big: expected number to be <=65535']]],
    ['no-routes.yaml', [[1, 'routes', 'is required (array)']]],
    ['bad-upstream.yaml', [[4, 'routes[0].upstream', NOT_HTTP_URL]]],
    ['upstream-no-scheme.yaml', [[4, 'routes[0].upstream', NOT_HTTP_URL]]],
    ['prefix-no-slash.yaml', [[3, 'routes[0].match.pathPrefix', 'must start with "/"']]],
    ['prefix-not-normalised.yaml', [[3, 'routes[0].match.pathPrefix', `${NOT_NORMALISED}, e.g. "/b"`]]],
    ['prefix-double-slash.yaml', [[3, 'routes[0].match.pathPrefix', `${NOT_NORMALISED}, e.g. "/x"`]]],
    ['duplicate-route.yaml', [[3, 'routes[1].name', 'duplicate route name "a"']]],
    ['ambiguous-routes.yaml', [[3, 'routes[1].match', 'same host and pathPrefix as routes[0] with overlapping methods: the match would be ambiguous']]],
    // Hosts compare case-insensitively, and a route without `methods` overlaps every method.
    ['ambiguous-host-case.yaml', [[3, 'routes[1].match', 'same host and pathPrefix as routes[0] with overlapping methods: the match would be ambiguous']]],
    ['unknown-plan.yaml', [[5, 'tenants[0].plan', 'unknown plan "gold" (plans: free)']]],
    ['unknown-tenant.yaml', [[3, 'apiKeys[0].tenant', 'unknown tenant "nobody"']]],
    ['duplicate-tenant.yaml', [[4, 'tenants[1].id', 'duplicate tenant id "acme"']]],
    ['issuer-no-source.yaml', [[3, 'jwt.issuers[0]', 'set exactly one of jwksUri, keys, secret or discovery: true']]],
    [
      'issuer-two-sources.yaml',
      [
        [3, 'jwt.issuers[0]', 'set exactly one of jwksUri, keys, secret or discovery: true'],
        [7, 'jwt.issuers[0].algorithms', 'a secret issuer allows only HS256/HS384/HS512'],
      ],
    ],
    ['hs-without-secret.yaml', [[6, 'jwt.issuers[0].algorithms', 'HS* algorithms need `secret` (never a public key as an HMAC secret)']]],
    [
      'missing-env.yaml',
      [[2, 'store.redis', 'environment variable TG_TEST_UNSET_REDIS_URL is not set (use ${NAME:-default} for an optional value)']],
    ],
    ['tls-cert-without-key.yaml', [[4, 'store.tls.cert', 'cert and key go together (a client certificate needs its key)']]],
    ['tls-unused.yaml', [[3, 'store.tls', 'is set, but no rediss:// URL uses it (store.redis and the redis-stream sinks are not TLS)']]],
    ['redis-node-not-url.yaml', [[4, 'store.redis[1]', 'must be a redis:// or rediss:// URL']]],
    ['yaml-tab-indent.yaml', [[5, '', 'YAML syntax: Tabs are not allowed as indentation']]],
    ['duplicate-key.yaml', [[3, '', 'YAML syntax: Map keys must be unique']]],
  ];

  it.each(cases)('%s', async (name, expected) => {
    expectProblems(name, await problemsOf(name), expected);
  });

  it('an unknown key is reported on the line of the key, also when its value is a block map', async () => {
    // `ssl:` is on line 3; its value starts on line 4.
    expectProblems('unknown-key-block.yaml', await problemsOf('unknown-key-block.yaml'), [[3, 'listen.ssl', 'unknown key "ssl"']]);
  });

  it('the error message of a ConfigError lists every problem as file:line path: message', async () => {
    const err = await loadConfig(fixture('unknown-key.yaml'), {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toBe(`invalid config:\n${fixture('unknown-key.yaml')}:3 routes[0].match.pathPrefx: unknown key "pathPrefx"`);
  });

  it('a missing file is one problem naming the file', async () => {
    const file = join(DIR, 'does-not-exist.yaml');
    const err = await loadConfig(file, {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems).toEqual([{ file, path: '', message: 'cannot read file: ENOENT' }]);
  });

  it('a missing variable is not an error once the environment provides it', async () => {
    const config = await loadConfig(fixture('missing-env.yaml'), { TG_TEST_UNSET_REDIS_URL: 'redis://127.0.0.1:6390' });
    expect(config.source.store.redis).toBe('redis://127.0.0.1:6390');
  });
});

describe('several errors in one file', () => {
  it('reports every problem of a file at once, in file order', async () => {
    const problems = (await problemsOf('many-errors.yaml')).map((p) => `${p.line} ${p.path}: ${p.message}`);
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

  it('reports every schema and environment problem at once, in file order', async () => {
    expectProblems('several-errors.yaml', await problemsOf('several-errors.yaml'), [
      [1, 'listen.port', 'Too big: expected number to be <=65535'],
      [2, 'admin.token', 'environment variable TG_TEST_UNSET_ADMIN_TOKEN is not set (use ${NAME:-default} for an optional value)'],
      [3, 'stor', 'unknown key "stor"'],
      [6, 'routes[0].match.pathPrefx', 'unknown key "pathPrefx"'],
      [9, 'routes[1].match.pathPrefix', `${NOT_NORMALISED}, e.g. "/b/c"`],
      [10, 'routes[1].upstream', NOT_HTTP_URL],
      [11, 'routes[1].cost', 'Too small: expected number to be >=0'],
    ]);
  });

  it('reports cross-reference problems in the same run as schema and environment problems', async () => {
    // Each problem is in a different, independent part of the file: fixing the
    // first two must not reveal four more on the next run.
    expectProblems('every-kind-of-error.yaml', await problemsOf('every-kind-of-error.yaml'), [
      [1, 'listen.port', 'Invalid input: expected number, received string'],
      [2, 'store.redis', 'environment variable TG_TEST_UNSET_REDIS_URL is not set (use ${NAME:-default} for an optional value)'],
      [5, 'tenants[0].plan', 'unknown plan "gold" (plans: free)'],
      [6, 'tenants[1].id', 'duplicate tenant id "acme"'],
      [8, 'apiKeys[0].tenant', 'unknown tenant "nobody"'],
      [11, 'routes[1].name', 'duplicate route name "a"'],
    ]);
  });
});

describe('the shipped configs', () => {
  it('the demo config is valid', async () => {
    const config = await loadConfig(join(ROOT, 'config/demo.yaml'), {});
    expect(config.routeList.map((r) => r.name)).toEqual(['public', 'orders']);
  });

  it('the reference config is valid', async () => {
    const config = await loadConfig(join(ROOT, 'config/tenantgate.yaml'), {});
    expect(config.routeList.map((r) => r.name)).toEqual(['orders', 'health']);
    expect(Object.isFrozen(config.source.routes[0])).toBe(true);
    expect(config.source.metrics).toEqual({ enabled: true, maxTenantLabels: 1000, tenantHistograms: false });
  });
});

describe("SPEC §3's example config", () => {
  const env = {
    TENANTGATE_ADMIN_TOKEN: 'admin-token-0123456789',
    REDIS_URL: 'redis://127.0.0.1:6379',
    TENANTGATE_ASSERTION_SECRET: 'assertion-secret-0123456789abcdef',
  };

  it('validates with its environment variables set, and takes their values', async () => {
    const config = await loadConfig(fixture('spec-example.yaml'), env);
    expect(config.source.admin).toEqual({ host: '127.0.0.1', port: 9901, token: env.TENANTGATE_ADMIN_TOKEN, tokens: [] });
    expect(config.source.store.redis).toBe(env.REDIS_URL);
    expect(config.source.identity.assertion.secret).toBe(env.TENANTGATE_ASSERTION_SECRET);
    expect(config.identity.assertion).toBe('X-Tenant-Assertion');
    expect(config.source.plans.enterprise).toEqual({ rate: null, quota: null, concurrency: null, limits: [] });
    expect(config.limits.get('acme')).toEqual({
      rate: { perSecond: 50, burst: 100 },
      daily: 5000,
      monthly: 30000,
      concurrency: 20,
      named: [],
      billingDay: 1,
      entitlements: { apiKeys: null, projects: null },
    });
    expect(config.source.usage.sinks.map((s) => s.type)).toEqual(['redis-stream', 'file', 'http']);
    expect(config.routeList).toHaveLength(1);
    const orders = config.routeList[0]!;
    expect(orders).toMatchObject({ name: 'orders', host: 'api.example.com', prefix: '/orders', cost: 1, timeoutMs: 30000 });
    expect([...orders.methods!].sort()).toEqual(['GET', 'HEAD', 'POST']);
    expect(Object.fromEntries(orders.permission)).toEqual({ GET: 'orders:read', HEAD: 'orders:read', POST: 'orders:write' });
    expect(Object.isFrozen(config.source.routes[0]!.match)).toBe(true);
  });

  it('validates with none of them set: empty `${VAR:-}` means "not set"', async () => {
    const config = await loadConfig(fixture('spec-example.yaml'), {});
    expect(config.source.admin.token).toBeNull();
    expect(config.source.store.redis).toBeNull();
    expect(config.source.identity.assertion.secret).toBeNull();
    expect(config.identity.assertion).toBeNull();
  });
});
