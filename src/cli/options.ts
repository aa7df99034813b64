/** Options several commands share. */
import { DEFAULT_CONFIG } from './commands.js';

export { DEFAULT_CONFIG };

/** The config file: `-c` wins, then $TENANTGATE_CONFIG, then the SPEC's default path. */
export function configFileOf(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return flag ?? (env.TENANTGATE_CONFIG || DEFAULT_CONFIG);
}
