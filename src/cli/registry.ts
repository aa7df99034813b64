/**
 * `tenantgate registry export|import [-c <config>]`: back up and restore the
 * registry the proxy with that config uses (see ../registry/backup.ts for the
 * format and the import rules). Exit 0 done, 1 the config, the input or the
 * registry failed, 2 usage error.
 */
import { once } from 'node:events';
import { open } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { ConfigError, formatProblem, loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { exportRegistry, importRegistry, ImportError } from '../registry/backup.js';
import { FileRegistry } from '../registry/file-registry.js';
import { openRegistry } from '../registry/index.js';
import type { Registry } from '../registry/types.js';
import { processIo, runCommand, runGroup, UsageError, type Io } from './args.js';
import { REGISTRY, REGISTRY_EXPORT, REGISTRY_IMPORT } from './commands.js';
import { configFileOf } from './options.js';

/** How long a registry (Redis) gets to answer before the command gives up. */
const CONNECT_WAIT_MS = 3000;

export interface RegistryIo {
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
  stdin?: Readable;
  env?: NodeJS.ProcessEnv;
}

export async function runRegistry(args: string[], io: RegistryIo = {}): Promise<number> {
  const o = processIo(io);
  const env = io.env ?? process.env;
  return runGroup(REGISTRY, args, o, (sub, rest) =>
    sub === REGISTRY_EXPORT
      ? runCommand(REGISTRY_EXPORT, rest, o, ({ values }) => withRegistry(configFileOf(values.config, env), env, o, (registry, config) => runExport(registry, config, io, o)))
      : runCommand(REGISTRY_IMPORT, rest, o, async ({ values }) => {
          const input = values.file ?? io.stdin ?? process.stdin;
          if (typeof input !== 'string' && io.stdin === undefined && process.stdin.isTTY) throw new UsageError('reads an export on stdin (… < registry.ndjson) or from --file <path>');
          return withRegistry(configFileOf(values.config, env), env, o, (registry, config) => runImport(registry, config, input, values.json, o));
        }),
  );
}

/** Loads the config, opens its registry, runs `body`, closes the registry. */
async function withRegistry(file: string, env: NodeJS.ProcessEnv, o: Io, body: (r: Registry, c: Config) => Promise<number>): Promise<number> {
  let config;
  try {
    config = await loadConfig(file, env);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    o.err(`tenantgate registry: ${file} is not a valid config:\n${e.problems.map(formatProblem).join('\n')}\n`);
    return 1;
  }
  let registry: Registry;
  try {
    registry = await openRegistry(config.source, config.redisTls, process.cwd(), CONNECT_WAIT_MS);
  } catch (e) {
    o.err(`tenantgate registry: cannot open the registry: ${(e as Error).message}\n`);
    return 1;
  }
  try {
    return await body(registry, config.source);
  } catch (e) {
    // A URL in the message may carry a password: show it without.
    o.err(`tenantgate registry: the ${registry.kind} registry failed: ${(e as Error).message.replace(/\/\/[^@/\s]*@/g, '//')}\n`);
    return 1;
  } finally {
    await registry.close();
  }
}

async function runExport(registry: Registry, config: Config, io: RegistryIo, o: Io): Promise<number> {
  // Lines go out in chunks, waiting for stdout to drain: a big registry never sits whole in memory.
  let chunk = '';
  let outputError: Error | null = null;
  const flush = async () => {
    if (chunk === '') return;
    const text = chunk;
    chunk = '';
    try {
      if (io.stdout !== undefined) io.stdout(text);
      else if (!process.stdout.write(text)) await once(process.stdout, 'drain');
    } catch (e) {
      // A closed pipe (… | head) is the output's problem, not the registry's.
      outputError = e as Error;
      throw e;
    }
  };
  let counts;
  try {
    counts = await exportRegistry(
      registry,
      config.tenants.map((t) => t.id),
      async (line) => {
        chunk += line;
        if (chunk.length >= 64 * 1024) await flush();
      },
    );
    await flush();
  } catch (e) {
    // Assigned in flush(), which TypeScript does not follow here.
    const failed = outputError as Error | null;
    if (failed === null) throw e;
    o.err(`tenantgate registry: cannot write the export: ${failed.message}\n`);
    return 1;
  }
  o.err(`tenantgate registry: exported ${counts.tenants} tenant(s) and ${counts.keys} key(s) from the ${describe(registry)}\n`);
  return 0;
}

/** A failure to read the input (a directory given as --file, …), told apart from the registry's. */
class InputError extends Error {}

async function* readErrorsTagged(lines: AsyncIterable<string>): AsyncGenerator<string> {
  try {
    for await (const line of lines) yield line;
  } catch (e) {
    throw new InputError((e as NodeJS.ErrnoException).code ?? (e as Error).message);
  }
}

/** The file registry's path matters: a missing state file reads as an empty registry. */
function describe(registry: Registry): string {
  return registry instanceof FileRegistry ? `file registry ${registry.path}` : `${registry.kind} registry`;
}

async function runImport(registry: Registry, config: Config, input: string | Readable, json: boolean, o: Io): Promise<number> {
  let lines: AsyncIterable<string>;
  let close = async () => {};
  if (typeof input === 'string') {
    let fh;
    try {
      fh = await open(input, 'r');
    } catch (e) {
      o.err(`tenantgate registry: cannot read ${input}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}\n`);
      return 1;
    }
    lines = fh.readLines();
    close = () => fh.close();
  } else lines = createInterface({ input, crlfDelay: Infinity });
  const source = typeof input === 'string' ? input : 'stdin';
  let counts;
  try {
    counts = await importRegistry(registry, readErrorsTagged(lines), config.tenants.map((t) => t.id));
  } catch (e) {
    if (e instanceof InputError) {
      o.err(`tenantgate registry: cannot read ${source}: ${e.message}\n`);
      return 1;
    }
    if (!(e instanceof ImportError)) throw e;
    const shown = e.problems.slice(0, 20);
    const more = e.problems.length - shown.length;
    o.err(`tenantgate registry: nothing imported:\n${shown.join('\n')}\n${more > 0 ? `… and ${more} more\n` : ''}`);
    return 1;
  } finally {
    await close();
  }
  if (json) o.out(`${JSON.stringify(counts)}\n`);
  else o.out(`created ${counts.created}, updated ${counts.updated}, unchanged ${counts.unchanged}, kept ${counts.kept} (the registry's was newer)\n`);
  // The file registry is read once, at start: a proxy running on it neither sees this import nor keeps it.
  if (registry.kind === 'file' && counts.created + counts.updated > 0) o.err('tenantgate registry: a proxy reads the file registry only at start: start it (or restart it) to serve these records\n');
  return 0;
}
