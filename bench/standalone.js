// What the bench scripts share: pinning, medians (with a confidence interval), a throwaway Redis, the limited proxy's config.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus } from 'node:os';
import { spawnRedisServer } from './redis-server.js';

export const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

/** Measured process on CPU 0, Redis on CPU 1, when there are two cores and `taskset`. */
export const TASKSET = has('taskset') && cpus().length >= 2;

/** utime + stime of a process so far, in clock ticks (TICKS_PER_S per second). */
export function cpuTicks(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(fields[11]) + Number(fields[12]);
}
export const TICKS_PER_S = Number(execFileSync('getconf', ['CLK_TCK']).toString()) || 100;

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

/**
 * The median of per-round values (a ratio of two scenarios measured in the
 * same round, or a difference) with a distribution-free 95 % confidence
 * interval for it: the order statistics [x(j), x(n−j+1)] with the largest j
 * whose coverage, 1 − 2·P(Binomial(n, ½) ≤ j − 1), is still ≥ 95 %. It needs
 * at least 6 rounds (j = 1: 1 − 2/64); with fewer, no interval.
 */
export function medianWithCi(values) {
  const x = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  const n = x.length;
  let j = 0;
  let coverage = NaN;
  let tail = 0; // P(Binomial(n, ½) ≤ k), k = j − 1
  let choose = 1; // C(n, k)
  for (let k = 0; k < n / 2; k++) {
    if (k > 0) choose = (choose * (n - k + 1)) / k;
    tail += choose / 2 ** n;
    if (1 - 2 * tail < 0.95) break;
    j = k + 1;
    coverage = 1 - 2 * tail;
  }
  const mid = n === 0 ? NaN : n % 2 ? x[(n - 1) / 2] : (x[n / 2 - 1] + x[n / 2]) / 2;
  return { median: mid, lo: j > 0 ? x[j - 1] : NaN, hi: j > 0 ? x[n - j] : NaN, coverage, rounds: n };
}

/**
 * bench/run.js's "API key + Redis limits" proxy config, for the lab scripts
 * (bench/lab/): limits that never refuse, one tenant, one key, one route to
 * `upstreamPort`. `full`: with the access log (info) and a usage event per
 * request to the Redis stream `bench:usage` (spooled under `spoolDir`);
 * `metricsOff`: metrics disabled too (the baseline observability is measured
 * against).
 */
export function limitedProxyConfig({ port, adminPort, redisPort, upstreamPort, keyHash, prefix, full = false, metricsOff = false, spoolDir = null, commandTimeoutMs = 200 }) {
  return `listen: { host: 127.0.0.1, port: ${port} }
admin: { host: 127.0.0.1, port: ${adminPort} }
logging: { level: ${full ? 'info' : 'warn'} }
${full ? `usage: { spoolDir: "${spoolDir}", sinks: [{ type: redis-stream, stream: "bench:usage", maxLen: 100000 }] }\n` : ''}${metricsOff ? 'metrics: { enabled: false }\n' : ''}store: { redis: "redis://127.0.0.1:${redisPort}", keyPrefix: "${prefix}:", autoPipelining: false, commandTimeoutMs: ${commandTimeoutMs} }
plans: { basic: { rate: { perSecond: 1000000, burst: 1000000 }, quota: { daily: 1000000000, monthly: 1000000000 }, concurrency: 100000 } }
tenants: [{ id: bench, plan: basic }]
apiKeys: [{ id: ak_bench, tenant: bench, hash: "${keyHash}", scopes: [bench:read] }]
routes:
  - { name: bench, match: { pathPrefix: / }, upstream: "http://127.0.0.1:${upstreamPort}", auth: [apiKey], permission: bench:read }
`;
}
