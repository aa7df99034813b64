/**
 * The one argument parser of every `tenantgate` command: each command declares
 * its flags and positionals (./commands.ts), and the same declaration gives
 * the parsed values (node:util parseArgs underneath), the `--help` text and
 * the usage errors. Exit codes: `--help` 0; a usage error 2, with ONE line
 * naming the problem and then the command's usage, on stderr.
 */
import { parseArgs } from 'node:util';

export interface Flag {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  /** The value's placeholder in the usage line, e.g. `<id>` or `live|test`. */
  readonly value?: string;
  readonly description: string;
  readonly required?: boolean;
  readonly default?: string | boolean;
}

export interface Positional {
  readonly name: string;
  readonly description: string;
  readonly optional?: boolean;
}

export interface Command<F extends Readonly<Record<string, Flag>> = Readonly<Record<string, Flag>>> {
  /** The words after `tenantgate`, e.g. `keys create`. */
  readonly name: string;
  readonly summary: string;
  readonly positionals?: readonly Positional[];
  readonly flags: F;
  /** More help text, shown after the flags. */
  readonly details?: string;
}

/** A command made of subcommands (`keys`, `tenants`, …). */
export interface Group {
  readonly name: string;
  readonly summary: string;
  readonly subcommands: readonly Command[];
}

export type Values<F extends Readonly<Record<string, Flag>>> = {
  -readonly [K in keyof F]: F[K]['type'] extends 'boolean' ? boolean : F[K] extends { required: true } | { default: string } ? string : string | undefined;
};

export interface Parsed<F extends Readonly<Record<string, Flag>>> {
  readonly values: Values<F>;
  readonly positionals: string[];
}

/** A mistake on the command line: exit 2, the message, then the usage. */
export class UsageError extends Error {}

export interface Io {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

const HELP: Flag = { type: 'boolean', short: 'h', description: 'show this help' };

/** Keeps the literal flag names of a declaration, for typed values. */
export function command<const F extends Readonly<Record<string, Flag>>>(c: Command<F>): Command<F> {
  return c;
}

function placeholder(name: string, f: Flag): string {
  return f.type === 'boolean' ? `--${name}` : `--${name} ${f.value ?? '<value>'}`;
}

/** `usage: tenantgate keys rotate <keyId> [--overlap <seconds>] …` */
export function synopsis(c: Command): string {
  const words = [`tenantgate ${c.name}`];
  for (const p of c.positionals ?? []) words.push(p.optional ? `[<${p.name}>]` : `<${p.name}>`);
  for (const [name, f] of Object.entries(c.flags)) {
    const text = f.short === undefined ? placeholder(name, f) : `-${f.short}${f.type === 'boolean' ? '' : ` ${f.value ?? '<value>'}`}`;
    words.push(f.required ? text : `[${text}]`);
  }
  return words.join(' ');
}

/** What a usage error prints after its one line. */
export function usage(c: Command): string {
  return `usage: ${synopsis(c)}\n       (tenantgate ${c.name} --help for every flag)\n`;
}

function columns(rows: [string, string][]): string {
  const width = Math.max(...rows.map(([l]) => l.length));
  return rows.map(([l, r]) => `  ${l.padEnd(width)}  ${r}`).join('\n');
}

/** The `--help` text: the usage line, the summary, every positional and flag with its description. */
export function help(c: Command): string {
  const rows: [string, string][] = [];
  for (const p of c.positionals ?? []) rows.push([`<${p.name}>`, p.description]);
  for (const [name, f] of Object.entries({ ...c.flags, help: HELP })) {
    const left = `${f.short === undefined ? '    ' : `-${f.short}, `}${placeholder(name, f)}`;
    const notes = [f.required ? 'required' : '', f.default === undefined || f.default === false ? '' : `default ${String(f.default)}`].filter((n) => n !== '');
    rows.push([left, `${f.description}${notes.length === 0 ? '' : ` (${notes.join('; ')})`}`]);
  }
  return `usage: ${synopsis(c)}\n\n${c.summary}\n\n${columns(rows)}\n${c.details === undefined ? '' : `\n${c.details.trimEnd()}\n`}`;
}

export function groupUsage(g: Group): string {
  return `${g.subcommands.map((c, i) => `${i === 0 ? 'usage: ' : '       '}${synopsis(c)}`).join('\n')}\n`;
}

export function groupHelp(g: Group): string {
  return `${groupUsage(g)}\n${g.summary}\n\n${columns(g.subcommands.map((c) => [c.name.split(' ').slice(1).join(' '), c.summary]))}\n\ntenantgate ${g.name} <subcommand> --help shows that subcommand's flags.\n`;
}

/** Node's own messages, minus the advice about `--` that fits no tenantgate command. */
function nodeMessage(e: Error): string {
  return e.message.split('. To specify a positional argument')[0]!;
}

/** True when `-h`/`--help` comes before a `--`: help wins over every other mistake on the line. */
export function wantsHelp(args: readonly string[]): boolean {
  for (const a of args) {
    if (a === '--') return false;
    if (a === '-h' || a === '--help') return true;
  }
  return false;
}

/** Parses `args` for `c`, or throws UsageError. Does not look for --help (see {@link parseCommand}). */
export function parse<F extends Readonly<Record<string, Flag>>>(c: Command<F>, args: string[]): Parsed<F> {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; default?: string | boolean }> = {};
  for (const [name, f] of Object.entries(c.flags)) options[name] = { type: f.type, ...(f.short === undefined ? {} : { short: f.short }), ...(f.default === undefined ? {} : { default: f.default }) };
  let parsed;
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: true });
  } catch (e) {
    throw new UsageError(nodeMessage(e as Error));
  }
  const declared = c.positionals ?? [];
  const needed = declared.filter((p) => !p.optional).length;
  if (parsed.positionals.length > declared.length) {
    const extra = parsed.positionals[declared.length]!;
    throw new UsageError(
      declared.length === 0 ? `unexpected argument "${extra}": ${c.name} takes no positional argument` : `unexpected argument "${extra}": ${c.name} takes ${declared.map((p) => `<${p.name}>`).join(' ')}`,
    );
  }
  if (parsed.positionals.length < needed) throw new UsageError(`missing <${declared[parsed.positionals.length]!.name}>`);
  for (const [name, f] of Object.entries(c.flags)) {
    if (f.required && parsed.values[name] === undefined) throw new UsageError(`${placeholder(name, f)} is required`);
  }
  return { values: parsed.values as Values<F>, positionals: parsed.positionals };
}

/**
 * Parses `args` for `c`: the parsed values, or the exit code once `--help`
 * (0, stdout) or a usage error (2, stderr) has been printed.
 */
export function parseCommand<F extends Readonly<Record<string, Flag>>>(c: Command<F>, args: string[], io: Io): Parsed<F> | number {
  if (wantsHelp(args)) {
    io.out(help(c));
    return 0;
  }
  try {
    return parse(c, args);
  } catch (e) {
    if (e instanceof UsageError) return usageError(c, e.message, io);
    throw e;
  }
}

/** Prints one line naming the problem (prefixed with the top-level command), then the usage; returns 2. */
export function usageError(c: Command | Group, message: string, io: Io): number {
  const top = c.name.split(' ')[0];
  io.err(`tenantgate ${top}: ${message}\n${'subcommands' in c ? groupUsage(c) : usage(c)}`);
  return 2;
}

/**
 * Runs a parsed command: `body`'s exit code, or 2 when it throws a
 * UsageError (a check only the body can make, e.g. a date in the past).
 */
export async function runCommand<F extends Readonly<Record<string, Flag>>>(c: Command<F>, args: string[], io: Io, body: (p: Parsed<F>) => Promise<number> | number): Promise<number> {
  const parsed = parseCommand(c, args, io);
  if (typeof parsed === 'number') return parsed;
  try {
    return await body(parsed);
  } catch (e) {
    if (e instanceof UsageError) return usageError(c, e.message, io);
    throw e;
  }
}

/**
 * Picks the subcommand named by `args[0]`: `help`, `-h`, `--help` or nothing
 * but help flags print the group's help (0); a missing or unknown subcommand
 * is a usage error (2). Else `run` gets that subcommand and the rest.
 */
export async function runGroup(g: Group, args: string[], io: Io, run: (sub: Command, rest: string[]) => Promise<number>): Promise<number> {
  const [name, ...rest] = args;
  if (name === 'help' || name === '-h' || name === '--help') {
    io.out(groupHelp(g));
    return 0;
  }
  if (name === undefined) return usageError(g, `missing subcommand (${g.subcommands.map(subName).join(', ')})`, io);
  const sub = g.subcommands.find((c) => subName(c) === name);
  if (sub === undefined) return usageError(g, `unknown subcommand "${name}"`, io);
  return run(sub, rest);
}

export function subName(c: Command): string {
  return c.name.split(' ').slice(1).join(' ');
}

export function processIo(io: { stdout?: (text: string) => void; stderr?: (text: string) => void } = {}): Io {
  return {
    out: io.stdout ?? ((s: string) => void process.stdout.write(s)),
    err: io.stderr ?? ((s: string) => void process.stderr.write(s)),
  };
}
