// What the single-purpose bench scripts (limit-store.js, account-stage.js) share: pinning, medians, a throwaway Redis.
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { cpus } from 'node:os';
import { spawnRedisServer } from './redis-server.js';

export const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

/** Measured process on CPU 0, Redis on CPU 1, when there are two cores and `taskset`. */
export const TASKSET = has('taskset') && cpus().length >= 2;

export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export const freePort = () =>
  new Promise((res, rej) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
    s.on('error', rej);
  });

/** A redis-server on a free port (CPU 1 when pinning), ready; exits the process with a message if there is none on PATH. */
export async function startThrowawayRedis(script) {
  if (!has('redis-server')) {
    process.stderr.write(`${script} needs redis-server on PATH\n`);
    process.exit(1);
  }
  const port = await freePort();
  const { child, ready } = spawnRedisServer(port, TASKSET);
  await ready;
  return { port, child };
}
