/** `tenantgate validate -c <file>`: exit 0 when valid, else every problem (file:line path: message) and exit 1. */
import { ConfigError, formatProblem, loadConfig } from '../config/load.js';
import { parseCommand, processIo } from './args.js';
import { VALIDATE } from './commands.js';
import { configFileOf } from './options.js';

export async function runValidate(args: string[]): Promise<number> {
  const parsed = parseCommand(VALIDATE, args, processIo());
  if (typeof parsed === 'number') return parsed;
  const configFile = configFileOf(parsed.values.config);
  try {
    // Every problem with its line, however big the file: this runs apart from any proxy serving traffic.
    const config = await loadConfig(configFile, process.env, undefined, { positions: 'always' });
    process.stdout.write(`${configFile}: valid (${config.routeList.length} routes, ${config.source.tenants.length} tenants, ${config.source.apiKeys.length} API keys)\n`);
    return 0;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const p of err.problems) process.stderr.write(`${formatProblem(p)}\n`);
    process.stderr.write(`${err.problems.length} problem${err.problems.length === 1 ? '' : 's'} found\n`);
    return 1;
  }
}
