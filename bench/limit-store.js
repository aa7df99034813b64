#!/usr/bin/env node
// `node bench/limit-store.js [--batch 11] [--checks 150000] [--rounds 3] [--credit 0] [--compare <root>]` (after `npm run build`)
//
// The Redis limit store alone, without HTTP: Node CPU per check, through the
// failover store as the proxy uses it, for the bench's plan (a bucket, two
// quotas, concurrency) in batches of `--batch` same-shape checks, each
// released after its answer; `--credit <ms>` turns local credit on. It
// repeats more closely than the end-to-end rows of `npm run bench`, so it is
// the one to compare two builds of the store path with (`--compare`
// alternates this build and another root's dist, one process each per
// round). Redis (a throwaway `redis-server` on a free port) runs on CPU 1,
// this process on CPU 0, when `taskset` and two cores are there. Also
// reports Redis's own µs per script call.
import { execFileSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { median, startThrowawayRedis, TASKSET } from './standalone.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: {
    batch: { type: 'string', default: '11' },
    checks: { type: 'string', default: '150000' },
    rounds: { type: 'string', default: '3' },
    credit: { type: 'string', default: '0' },
    compare: { type: 'string' },
    // Internal: one measurement in this process against a running Redis.
    worker: { type: 'string' },
    port: { type: 'string' },
  },
});

if (args.worker !== undefined) {
  process.stdout.write(`${JSON.stringify(await measure(args.worker, Number(args.port), Number(args.batch), Number(args.checks), Number(args.credit)))}\n`);
  process.exit(0);
}

/** One build's store path: µs of this process's CPU per check, after a warm-up. */
async function measure(root, port, batch, checks, localCreditMs) {
  const { RedisLimitStore } = await import(join(root, 'dist/limits/redis-store.js'));
  const { FailoverLimitStore } = await import(join(root, 'dist/limits/failover-store.js'));
  const redis = new RedisLimitStore({ redis: `redis://127.0.0.1:${port}`, commandTimeoutMs: 1000, localCreditMs });
  await redis.ready(5000);
  const quiet = { info() {}, warn() {}, error() {} };
  const store = new FailoverLimitStore(redis, 'open', quiet, () => {});
  const base = `bench:{${Math.random().toString(36).slice(2)}}:`;
  const reset = Date.now() + 3_600_000;
  // Shared spec arrays, as the limit stage caches them per tenant: batches are runs of one shape.
  const buckets = [{ key: `${base}b:t`, perSecond: 1e6, burst: 1e6 }];
  const quotas = [
    { key: `${base}q:d`, kind: 'quota_daily', limit: 1e9, cost: 1, resetAtMs: reset },
    { key: `${base}q:m`, kind: 'quota_monthly', limit: 1e9, cost: 1, resetAtMs: reset + 3_600_000 },
  ];
  let lease = 0;
  const run = async (n) => {
    for (let done = 0; done < n; done += batch) {
      const ids = [];
      const pending = [];
      for (let i = 0; i < batch; i++) {
        const leaseId = String(++lease);
        ids.push(leaseId);
        pending.push(store.check({ buckets, quotas, concurrency: { key: `${base}cr`, limit: 1e5, leaseId, leaseTtlMs: 30_000 } }));
      }
      for (const d of await Promise.all(pending)) if (!d.allowed) throw new Error(`refused: ${d.rejectedBy}`);
      for (const id of ids) store.release(`${base}cr`, id);
    }
  };
  await run(Math.min(20_000, checks));
  const evalsBefore = evalStats(port);
  const cpu = process.cpuUsage();
  await run(checks);
  const used = process.cpuUsage(cpu);
  const evals = evalStats(port);
  await store.close();
  const calls = evals.calls - evalsBefore.calls;
  const redisUs = evals.usec - evalsBefore.usec;
  return { cpuUsPerCheck: (used.user + used.system) / checks, redisUsPerEvalsha: calls > 0 ? redisUs / calls : NaN, redisUsPerCheck: redisUs / checks };
}

function evalStats(port) {
  const text = execFileSync('redis-cli', ['-p', String(port), 'info', 'commandstats'], { encoding: 'utf8' });
  const m = /cmdstat_evalsha:calls=(\d+),usec=(\d+)/.exec(text);
  return m ? { calls: Number(m[1]), usec: Number(m[2]) } : { calls: 0, usec: 0 };
}

const { port, child: redisServer } = await startThrowawayRedis('bench/limit-store.js');
try {
  const builds = [['this build', ROOT], ...(args.compare ? [['compare', resolve(args.compare)]] : [])];
  const samples = new Map(builds.map(([name]) => [name, []]));
  for (let round = 1; round <= Number(args.rounds); round++) {
    for (const [name, root] of builds) {
      const self = fileURLToPath(import.meta.url);
      const node = [process.execPath, self, '--worker', root, '--port', String(port), '--batch', args.batch, '--checks', args.checks, '--credit', args.credit];
      const out = execFileSync(TASKSET ? 'taskset' : node[0], TASKSET ? ['-c', '0', ...node] : node.slice(1), { encoding: 'utf8' });
      const m = JSON.parse(out);
      samples.get(name).push(m);
      process.stderr.write(`  round ${round} ${name}: ${m.cpuUsPerCheck.toFixed(2)} µs/check, Redis ${m.redisUsPerEvalsha.toFixed(1)} µs/EVALSHA, ${m.redisUsPerCheck.toFixed(2)} µs/check\n`);
    }
  }
  process.stdout.write(`\n| Redis limit store, batches of ${args.batch}, credit ${args.credit} ms (${args.rounds} rounds, medians) | Node CPU µs/check | Redis µs/EVALSHA | Redis µs/check |\n|---|---:|---:|---:|\n`);
  for (const [name, root] of builds) {
    const ms = samples.get(name);
    process.stdout.write(`| ${name} (${root}) | ${median(ms.map((m) => m.cpuUsPerCheck)).toFixed(2)} | ${median(ms.map((m) => m.redisUsPerEvalsha)).toFixed(1)} | ${median(ms.map((m) => m.redisUsPerCheck)).toFixed(2)} |\n`);
  }
} finally {
  redisServer.kill('SIGKILL');
}
