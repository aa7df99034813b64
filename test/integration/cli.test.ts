/**
 * The `tenantgate` command as users run it (SPEC §2): `node dist/main.js …`
 * in a child process, asserted by exit code, stdout and stderr.
 * Exit codes: 0 ok, 1 invalid config / cannot start, 2 usage error.
 */
import { spawn } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MAIN, ROOT, writeConfig } from '../helpers/servers.js';

const FIXTURES = join(ROOT, 'test/fixtures/config');
const fixture = (name: string) => join(FIXTURES, name);

interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The environment of this process without any variable a fixture reads. */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(TENANTGATE_|TG_TEST_|REDIS_URL$|PORT$)/.test(k)) env[k] = v;
  return { ...env, ...extra };
}

/** Runs the CLI to completion (killed after `timeoutMs`, which then fails the test on its exit code). */
function tenantgate(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { env: opts.env ?? cleanEnv(), cwd: opts.cwd ?? ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 15_000);
    child.once('error', reject);
    child.once('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr });
    });
  });
}

const lines = (text: string) => text.split('\n').filter((l) => l !== '');

describe('help and usage errors', () => {
  it.each([['--help'], ['-h'], ['help']])('%s prints the usage on stdout and exits 0', async (flag) => {
    const r = await tenantgate([flag]);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^usage:/);
    for (const command of ['tenantgate serve', 'tenantgate validate', 'tenantgate keys generate']) expect(r.stdout).toContain(command);
  });

  it('an unknown command exits 2 naming the command, with the usage on stderr', async () => {
    const r = await tenantgate(['frobnicate', '-c', 'x.yaml']);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('unknown command "frobnicate"');
    expect(r.stderr).toContain('usage:');
  });

  it('no command at all exits 2 with the usage', async () => {
    const r = await tenantgate([]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('usage:');
  });

  it('validate with an unknown option or a missing value exits 2', async () => {
    const unknown = await tenantgate(['validate', '--bogus']);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain("Unknown option '--bogus'");
    const missing = await tenantgate(['validate', '-c']);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain('argument missing');
  });

  it('serve with an unknown option exits 2 with a one-line message, as validate does (no stack trace)', async () => {
    const r = await tenantgate(['serve', '--bogus']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("Unknown option '--bogus'");
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.stdout).toBe('');
  });
});

describe('validate', () => {
  it('exits 0 on a valid config and says what it holds', async () => {
    const env = cleanEnv({
      TENANTGATE_ADMIN_TOKEN: 'admin-token-0123456789',
      REDIS_URL: 'redis://127.0.0.1:6379',
      TENANTGATE_ASSERTION_SECRET: 'assertion-secret-0123456789abcdef',
    });
    const r = await tenantgate(['validate', '-c', fixture('spec-example.yaml')], { env });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`${fixture('spec-example.yaml')}: valid (1 routes, 1 tenants, 1 API keys)\n`);
  });

  it('--config is the long form of -c', async () => {
    const r = await tenantgate(['validate', '--config', fixture('spec-example.yaml')]);
    expect(r.status).toBe(0);
  });

  it('without -c it checks ./config/tenantgate.yaml', async () => {
    const r = await tenantgate(['validate'], { cwd: ROOT });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^\.\/config\/tenantgate\.yaml: valid/);
  });

  it('exits 1 and prints every problem as file:line path: message, then the count', async () => {
    const file = fixture('several-errors.yaml');
    const r = await tenantgate(['validate', '-c', file]);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    const out = lines(r.stderr);
    expect(out.map((l) => l.split(': ')[0])).toEqual([
      `${file}:1 listen.port`,
      `${file}:2 admin.token`,
      `${file}:3 stor`,
      `${file}:6 routes[0].match.pathPrefx`,
      `${file}:9 routes[1].match.pathPrefix`,
      `${file}:10 routes[1].upstream`,
      `${file}:11 routes[1].cost`,
      '7 problems found',
    ]);
    expect(out[1]).toBe(`${file}:2 admin.token: environment variable TG_TEST_UNSET_ADMIN_TOKEN is not set (use \${NAME:-default} for an optional value)`);
    expect(out[3]).toBe(`${file}:6 routes[0].match.pathPrefx: unknown key "pathPrefx"`);
  });

  it.each([
    ['yaml-tab-indent.yaml', ':5 (document): YAML syntax: Tabs are not allowed as indentation'],
    ['duplicate-key.yaml', ':3 (document): YAML syntax: Map keys must be unique'],
    ['unknown-plan.yaml', ':5 tenants[0].plan: unknown plan "gold" (plans: free)'],
    ['ambiguous-routes.yaml', ':3 routes[1].match: same host and pathPrefix as routes[0] with overlapping methods'],
  ])('exits 1 on %s with the problem and its line', async (name, expected) => {
    const r = await tenantgate(['validate', '-c', fixture(name)]);
    expect(r.status).toBe(1);
    expect(lines(r.stderr)).toEqual([expect.stringContaining(`${fixture(name)}${expected}`), '1 problem found']);
  });

  it('reads ${VAR} from its own environment', async () => {
    const file = fixture('missing-env.yaml');
    const unset = await tenantgate(['validate', '-c', file]);
    expect(unset.status).toBe(1);
    expect(unset.stderr).toContain(`${file}:2 store.redis: environment variable TG_TEST_UNSET_REDIS_URL is not set`);
    const set = await tenantgate(['validate', '-c', file], { env: cleanEnv({ TG_TEST_UNSET_REDIS_URL: 'redis://127.0.0.1:6390' }) });
    expect(set.stderr).toBe('');
    expect(set.status).toBe(0);
  });

  it('a missing file exits 1 with a message naming the file and the cause', async () => {
    const file = join(FIXTURES, 'no-such-file.yaml');
    const r = await tenantgate(['validate', '-c', file]);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(lines(r.stderr)).toEqual([`${file} (document): cannot read file: ENOENT`, '1 problem found']);
  });

  it('a directory instead of a file exits 1', async () => {
    const r = await tenantgate(['validate', '-c', FIXTURES]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`${FIXTURES} (document): cannot read file: EISDIR`);
  });
});

describe('serve refusing to start', () => {
  it('exits 1 on an invalid config and prints every problem with file:line, without listening', async () => {
    const file = fixture('several-errors.yaml');
    const r = await tenantgate(['serve', '-c', file]);
    expect(r.status).toBe(1);
    expect(r.stdout).not.toContain('tenantgate listening');
    const out = lines(r.stderr);
    expect(out.map((l) => l.split(': ')[0])).toEqual([
      `${file}:1 listen.port`,
      `${file}:2 admin.token`,
      `${file}:3 stor`,
      `${file}:6 routes[0].match.pathPrefx`,
      `${file}:9 routes[1].match.pathPrefix`,
      `${file}:10 routes[1].upstream`,
      `${file}:11 routes[1].cost`,
    ]);
  });

  it('exits 1 on a missing config file', async () => {
    const file = join(FIXTURES, 'no-such-file.yaml');
    const r = await tenantgate(['serve', '-c', file]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`${file} (document): cannot read file: ENOENT\n`);
  });

  it('exits 1 with a clear message when its data port is taken', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    try {
      const port = (blocker.address() as AddressInfo).port;
      const file = writeConfig(`listen: { host: 127.0.0.1, port: ${port} }\nadmin: { port: 0 }\nroutes:\n  - { name: a, match: {}, upstream: "http://127.0.0.1:1", auth: [none] }\n`);
      const r = await tenantgate(['serve', '-c', file]);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/^tenantgate: cannot start: .*EADDRINUSE/);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });
});
