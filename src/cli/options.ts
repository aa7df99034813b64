/** Shared CLI option parsing (node:util parseArgs): `-c/--config` with the SPEC's default path. */
import { parseArgs } from 'node:util';

export const DEFAULT_CONFIG = './config/tenantgate.yaml';

export function parseConfigOption(args: string[]): { configFile: string } {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' } }, allowPositionals: false, strict: true });
  return { configFile: values.config ?? DEFAULT_CONFIG };
}
