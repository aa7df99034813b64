/**
 * `tenantgate serve -c <file>`: runs the proxy. SIGTERM/SIGINT drain and exit
 * 0 (SPEC §8); SIGHUP reloads the config. An invalid config at start-up
 * prints every problem and exits 1.
 */
import { startTenantgate, type Tenantgate } from '../app.js';
import { ConfigError, formatProblem } from '../config/load.js';
import { parseCommand, processIo } from './args.js';
import { SERVE } from './commands.js';
import { configFileOf } from './options.js';

/** A SIGHUP guard installed before this module loaded (main.ts): what it saw, and how to remove it. */
export interface EarlyHup {
  hupReceived(): boolean;
  release(): void;
}

export async function runServe(args: string[], earlyHup?: EarlyHup): Promise<void> {
  const parsed = parseCommand(SERVE, args, processIo());
  // --help or a usage error, already printed: nothing to run.
  if (typeof parsed === 'number') process.exit(parsed);
  const configFile = configFileOf(parsed.values.config);
  // Installed before start-up (SIGHUP's default action is to exit): a reload asked for
  // while starting runs once the proxy is up, and then picks up the newest file.
  let reloadRequested = false;
  let reload: (() => void) | null = null;
  process.on('SIGHUP', () => (reload === null ? (reloadRequested = true) : reload()));
  // Removed only after ours is on: with no listener at all, a SIGHUP would end the process.
  if (earlyHup !== undefined) {
    if (earlyHup.hupReceived()) reloadRequested = true;
    earlyHup.release();
  }
  let gate: Tenantgate;
  try {
    gate = await startTenantgate({ configFile });
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const p of err.problems) process.stderr.write(`${formatProblem(p)}\n`);
    } else {
      process.stderr.write(`tenantgate: cannot start: ${(err as Error).message}\n`);
    }
    process.exit(1);
  }
  const { state } = gate;
  let stopping = false;
  reload = () => void gate.reload();
  if (reloadRequested) reload();
  const stop = (signal: string) => {
    state.logger.info({ signal }, 'shutdown requested');
    if (stopping) return;
    stopping = true;
    gate.shutdown().then(
      () => state.logger.flush(() => process.exit(0)),
      (err: unknown) => {
        state.logger.error({ err }, 'shutdown failed');
        state.logger.flush(() => process.exit(1));
      },
    );
  };
  // `on`, not `once`: a second signal during the drain must not fall back to Node's default (exit at once);
  // shutdown() runs once whatever the number of signals.
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
