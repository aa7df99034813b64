/**
 * Every command's `--help` and usage errors (SPEC §14), walked from the
 * parser's own command table, so a command added there is checked here too;
 * `--version`; TENANTGATE_CONFIG. The built binary, as users run it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { subName, synopsis, type Command } from '../../src/cli/args.js';
import { COMMANDS, isGroup } from '../../src/cli/commands.js';
import { cliEnv, runCli } from '../helpers/run-cli.js';
import { ROOT, writeConfig } from '../helpers/servers.js';

const LEAVES: Command[] = COMMANDS.flatMap((c) => (isGroup(c) ? c.subcommands : [c]));
const words = (c: Command) => c.name.split(' ');
const lines = (text: string) => text.split('\n').filter((l) => l !== '');

/** Fills the command's positionals, so only the flag under test is wrong. */
const withPositionals = (c: Command) => [...words(c), ...(c.positionals ?? []).map((p) => `some-${p.name}`)];

describe('--help on every command and subcommand', () => {
  it('the table has every command of the SPEC', () => {
    expect(LEAVES.map((c) => c.name)).toEqual(
      expect.arrayContaining(['serve', 'validate', 'keys generate', 'keys create', 'keys list', 'keys rotate', 'keys revoke', 'tenants create', 'tenants list', 'usage report', 'registry export', 'registry import']),
    );
  });

  it.each(LEAVES.map((c) => [c.name, c] as const))('%s --help: exit 0, its usage, every flag and positional with its description', async (_name, c) => {
    const r = await runCli([...words(c), '--help']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout.startsWith(`usage: tenantgate ${c.name}`)).toBe(true);
    expect(r.stdout).toContain(c.summary);
    for (const [name, flag] of Object.entries(c.flags)) {
      expect(r.stdout).toContain(`--${name}`);
      expect(r.stdout).toContain(flag.description);
      if (flag.short !== undefined) expect(r.stdout).toContain(`-${flag.short}, --${name}`);
    }
    for (const p of c.positionals ?? []) expect(r.stdout).toContain(`<${p.name}>`);
    expect(r.stdout).toContain('-h, --help');
    // `tenantgate help <command>` says the same.
    const viaHelp = await runCli(['help', ...words(c)]);
    expect(viaHelp).toEqual(r);
  });

  it('-h is --help, and help wins over any other mistake on the line', async () => {
    const help = await runCli(['keys', 'rotate', '--help']);
    expect(await runCli(['keys', 'rotate', '-h'])).toEqual(help);
    expect(await runCli(['keys', 'rotate', '--no-such-flag', 'a', 'b', '-h'])).toEqual(help);
  });

  it.each(COMMANDS.filter(isGroup).map((g) => [g.name, g] as const))('%s --help lists its subcommands; a missing or unknown subcommand exits 2', async (_name, g) => {
    for (const args of [[g.name, '--help'], [g.name, 'help'], ['help', g.name]]) {
      const r = await runCli(args);
      expect(r.status, args.join(' ')).toBe(0);
      for (const sub of g.subcommands) {
        expect(r.stdout).toContain(`tenantgate ${sub.name}`);
        expect(r.stdout).toContain(sub.summary);
      }
    }
    const unknown = await runCli([g.name, 'nope']);
    expect(unknown.status).toBe(2);
    expect(unknown.stdout).toBe('');
    expect(lines(unknown.stderr)[0]).toBe(`tenantgate ${g.name}: unknown subcommand "nope"`);
    expect(lines(unknown.stderr)[1]).toMatch(new RegExp(`^usage: tenantgate ${g.name} `));
    const missing = await runCli([g.name]);
    expect(missing.status).toBe(2);
    expect(lines(missing.stderr)[0]).toMatch(new RegExp(`^tenantgate ${g.name}: missing subcommand \\(${g.subcommands.map(subName).join(', ')}\\)$`));
  });

  it('tenantgate --help lists every command; help for a command that does not exist exits 2', async () => {
    const r = await runCli(['--help']);
    expect(r.status).toBe(0);
    for (const c of COMMANDS) expect(r.stdout).toContain(`tenantgate ${c.name}`);
    const nope = await runCli(['help', 'frobnicate']);
    expect(nope.status).toBe(2);
    expect(lines(nope.stderr)[0]).toBe('tenantgate help: no command "frobnicate"');
  });
});

describe('usage errors: exit 2, one line naming the problem, then that command\'s usage, on stderr', () => {
  /** The problem line, then the usage lines. */
  function expectUsageError(r: { status: number | null; stdout: string; stderr: string }, c: Command, problem: RegExp) {
    expect(r.status, r.stderr).toBe(2);
    expect(r.stdout).toBe('');
    const [first, second, third, ...rest] = lines(r.stderr);
    expect(first).toMatch(new RegExp(`^tenantgate ${words(c)[0]}: `));
    expect(first).toMatch(problem);
    expect(second).toBe(`usage: ${synopsis(c)}`);
    expect(third).toBe(`       (tenantgate ${c.name} --help for every flag)`);
    expect(rest).toEqual([]);
  }

  it.each(LEAVES.map((c) => [c.name, c] as const))('%s: an unknown flag, a flag without its value, a missing required flag', async (_name, c) => {
    expectUsageError(await runCli([...withPositionals(c), '--no-such-flag']), c, /Unknown option '--no-such-flag'$/);
    const stringFlag = Object.entries(c.flags).find(([, f]) => f.type === 'string')![0];
    expectUsageError(await runCli([...withPositionals(c), `--${stringFlag}`]), c, /argument missing$/);
    const required = Object.entries(c.flags).find(([, f]) => f.required);
    if (required !== undefined) expectUsageError(await runCli(withPositionals(c)), c, new RegExp(`--${required[0]} \\S+ is required$`));
  });

  it.each(LEAVES.filter((c) => (c.positionals ?? []).length > 0).map((c) => [c.name, c] as const))('%s: a missing or an extra positional', async (_name, c) => {
    expectUsageError(await runCli(words(c)), c, new RegExp(`missing <${c.positionals![0]!.name}>$`));
    expectUsageError(await runCli([...withPositionals(c), 'extra']), c, /unexpected argument "extra"/);
  });

  it('an unknown command exits 2 naming it', async () => {
    const r = await runCli(['frobnicate']);
    expect(r.status).toBe(2);
    expect(lines(r.stderr)[0]).toBe('tenantgate: unknown command "frobnicate"');
  });
});

describe('--version', () => {
  it.each([['--version'], ['-V']])('%s prints package.json\'s version and exits 0', async (flag) => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const r = await runCli([flag]);
    expect(r).toEqual({ status: 0, stdout: `${version}\n`, stderr: '' });
  });
});

describe('TENANTGATE_CONFIG', () => {
  const good = writeConfig('routes:\n  - { name: a, match: {}, upstream: "http://127.0.0.1:1", auth: [none] }\n');
  const bad = writeConfig('routes:\n  - { name: a, match: {}, upstream: "not a url", auth: [none] }\n');

  it('names the config when -c is not given: validate checks it', async () => {
    const ok = await runCli(['validate'], { env: cliEnv({ TENANTGATE_CONFIG: good }) });
    expect(ok.stderr).toBe('');
    expect(ok.status).toBe(0);
    expect(ok.stdout).toBe(`${good}: valid (1 routes, 0 tenants, 0 API keys)\n`);
    const invalid = await runCli(['validate'], { env: cliEnv({ TENANTGATE_CONFIG: bad }) });
    expect(invalid.status).toBe(1);
    expect(invalid.stderr).toContain(`${bad}:2 routes[0].upstream`);
  });

  it('-c wins over it', async () => {
    const r = await runCli(['validate', '-c', good], { env: cliEnv({ TENANTGATE_CONFIG: bad }) });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^${good}: valid`));
  });

  it('empty, it is not set: the default ./config/tenantgate.yaml', async () => {
    const r = await runCli(['validate'], { env: cliEnv({ TENANTGATE_CONFIG: '' }) });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^\.\/config\/tenantgate\.yaml: valid/);
  });
});
