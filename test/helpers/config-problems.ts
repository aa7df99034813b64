import { ConfigError, parseConfig } from '../../src/config/load.js';

/** What the config loader says of `yaml`, as `path: message` lines; [] when it is valid. */
export function configProblems(yaml: string): string[] {
  try {
    parseConfig(yaml, 'test.yaml', {});
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map((p) => `${p.path}: ${p.message}`);
    throw err;
  }
  return [];
}
