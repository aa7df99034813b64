/** The declarative parser: values, usage line, help text and usage errors all from one declaration. */
import { describe, expect, it } from 'vitest';
import { command, groupHelp, help, parse, parseCommand, runCommand, runGroup, synopsis, UsageError, wantsHelp } from '../../../src/cli/args.js';

const demo = command({
  name: 'things make',
  summary: 'Make a thing.',
  positionals: [{ name: 'id', description: 'the thing' }],
  flags: {
    kind: { type: 'string', value: '<kind>', required: true, description: 'what kind' },
    size: { type: 'string', value: 'S|M|L', default: 'M', description: 'how big' },
    config: { type: 'string', short: 'c', value: '<file>', description: 'a file' },
    json: { type: 'boolean', description: 'as JSON' },
  },
});

function capture() {
  const io = { out: '', err: '' };
  return { io, sink: { out: (t: string) => void (io.out += t), err: (t: string) => void (io.err += t) } };
}

describe('parse', () => {
  it('returns typed values with defaults, and the positionals', () => {
    const { values, positionals } = parse(demo, ['x1', '--kind', 'box', '-c', 'f.yaml']);
    expect(values).toEqual({ kind: 'box', size: 'M', config: 'f.yaml' });
    expect(positionals).toEqual(['x1']);
  });

  it.each([
    [['x1'], '--kind <kind> is required'],
    [['--kind', 'box'], 'missing <id>'],
    [['x1', 'x2', '--kind', 'box'], 'unexpected argument "x2": things make takes <id>'],
    [['x1', '--kind', 'box', '--nope'], "Unknown option '--nope'"],
    [['x1', '--kind'], "Option '--kind <value>' argument missing"],
    [['x1', '--kind', 'box', '--json=yes'], "Option '--json' does not take an argument"],
  ])('%j is a usage error: %s', (args, message) => {
    expect(() => parse(demo, args)).toThrow(new UsageError(message));
  });
});

describe('usage and help text', () => {
  it('the usage line shows required flags bare, optional ones in brackets, short forms', () => {
    expect(synopsis(demo)).toBe('tenantgate things make <id> --kind <kind> [--size S|M|L] [-c <file>] [--json]');
  });

  it('--help lists every flag with its description, default and whether it is required', () => {
    const text = help(demo);
    expect(text.split('\n')[0]).toBe(`usage: ${synopsis(demo)}`);
    expect(text).toMatch(/--kind <kind> +what kind \(required\)/);
    expect(text).toMatch(/--size S\|M\|L +how big \(default M\)/);
    expect(text).toMatch(/-c, --config <file> +a file/);
    expect(text).toMatch(/-h, --help +show this help/);
    expect(text).toMatch(/<id> +the thing/);
  });

  it('help wins over any other mistake before a "--"', () => {
    expect(wantsHelp(['--nope', '-h'])).toBe(true);
    expect(wantsHelp(['--', '--help'])).toBe(false);
    const { io, sink } = capture();
    expect(parseCommand(demo, ['--nope', '--help'], sink)).toBe(0);
    expect(io.out).toBe(help(demo));
    expect(io.err).toBe('');
  });
});

describe('running a command', () => {
  it('a usage error prints one line and the usage on stderr, and returns 2', async () => {
    const { io, sink } = capture();
    expect(await runCommand(demo, ['x1'], sink, () => 0)).toBe(2);
    expect(io.err).toBe(`tenantgate things: --kind <kind> is required\nusage: ${synopsis(demo)}\n       (tenantgate things make --help for every flag)\n`);
    expect(io.out).toBe('');
  });

  it('a UsageError from the body is printed the same way', async () => {
    const { io, sink } = capture();
    const code = await runCommand(demo, ['x1', '--kind', 'box'], sink, () => {
      throw new UsageError('--kind "box": no such kind');
    });
    expect(code).toBe(2);
    expect(io.err.split('\n')[0]).toBe('tenantgate things: --kind "box": no such kind');
  });

  it('a group picks its subcommand, or answers help (0) and usage errors (2)', async () => {
    const group = { name: 'things', summary: 'Things.', subcommands: [demo] };
    const ran: string[][] = [];
    const { io, sink } = capture();
    expect(await runGroup(group, ['make', 'a'], sink, async (_c, rest) => (ran.push(rest), 0))).toBe(0);
    expect(ran).toEqual([['a']]);
    expect(await runGroup(group, ['--help'], sink, async () => 1)).toBe(0);
    expect(io.out).toBe(groupHelp(group));
    expect(await runGroup(group, ['break'], sink, async () => 0)).toBe(2);
    expect(io.err.split('\n')[0]).toBe('tenantgate things: unknown subcommand "break"');
  });
});
