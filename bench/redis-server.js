// A throwaway redis-server for the bench scripts (never the machine's own on 6379).
import { spawn } from 'node:child_process';

/**
 * Starts `redis-server` on `port` (127.0.0.1, nothing saved), on CPU 1 when
 * `taskset` is true. Returns the child at once (so a caller can track it for
 * clean-up) and `ready`, which settles when it accepts connections.
 */
export function spawnRedisServer(port, taskset) {
  const argv = ['redis-server', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  const child = spawn(taskset ? 'taskset' : argv[0], taskset ? ['-c', '1', ...argv] : argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  const ready = new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => String(d).includes('Ready to accept connections') && resolve());
    child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}`)));
    setTimeout(() => reject(new Error('redis-server did not start')), 10_000).unref();
  }).then(() => void child.stdout.resume());
  return { child, ready };
}
