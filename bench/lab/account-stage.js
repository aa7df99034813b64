#!/usr/bin/env node
// `node bench/lab/account-stage.js [--requests 200000] [--rounds 3] [--compare <root>] [--instructions]` (after `npm run build`)
//
// The account stage (pipeline stage 8) alone, without HTTP: Node CPU per
// request in three steps, each its own process:
//   metrics  — the request counters and histograms (logging at warn, no sinks);
//   +log     — plus the access line, to stdout (this process's stdout is /dev/null);
//   +usage   — plus a usage event per request to a redis-stream sink (a
//              throwaway `redis-server` on a free port, on CPU 1).
// Requests end in batches of 11 per event-loop turn, so the sink batches and
// waits for Redis as in the proxy. Contexts die young here, so GC costs less
// than in the proxy: use this to A/B a change of the account stage
// (`--compare` alternates this build and another root's dist in the same
// rounds), and `npm run bench` for what it is worth end to end.
//
// `--instructions` counts instead of timing: each build and step runs under
// valgrind's cachegrind (apt-get install valgrind), V8 single-threaded, once
// with `--requests` and once with one request; the difference over the
// requests is instructions per request, start-up cancelled. Slow, and blind to
// cache misses and system calls, but steady where timings on a shared machine
// are not. It ranks like code against like code only: V8's string copies
// count far fewer instructions per character than a JavaScript byte loop at
// about the same time, and valgrind's slow clock defeats per-millisecond
// caches. It imports the stage's modules from dist/ directly, so it follows
// their signatures.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { has, median, startThrowawayRedis, TASKSET } from '../standalone.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const STEPS = ['metrics', '+log', '+usage'];
const BATCH = 11;
const { values: args } = parseArgs({
  options: {
    requests: { type: 'string', default: '200000' },
    rounds: { type: 'string', default: '3' },
    compare: { type: 'string' },
    instructions: { type: 'boolean', default: false },
    // Internal: one measurement in this process.
    worker: { type: 'string' },
    step: { type: 'string' },
    port: { type: 'string' },
    out: { type: 'string' },
  },
});

if (args.worker !== undefined) {
  const result = await measure(args.worker, args.step, Number(args.port), Number(args.requests));
  // stdout is the logger's (and /dev/null): the result goes to a file.
  writeFileSync(args.out, JSON.stringify(result));
  process.exit(0);
}

/** µs of this process's CPU per request for one build and step, after a warm-up. */
async function measure(root, step, port, requests) {
  const load = (path) => import(join(root, 'dist', path));
  const { loadConfig } = await load('config/load.js');
  const { createLogger } = await load('observability/logger.js');
  const { Metrics } = await load('observability/metrics.js');
  const { createUsageRecorder } = await load('usage/index.js');
  const { account } = await load('stages/account.js');
  const { RequestContext } = await load('context.js');
  const dir = mkdtempSync(join(tmpdir(), 'tg-account-bench-'));
  try {
    const file = join(dir, 'config.yaml');
    writeFileSync(
      file,
      `listen: { host: 127.0.0.1, port: 1 }
logging: { level: ${step === 'metrics' ? 'warn' : 'info'} }
${step === '+usage' ? `usage: { spoolDir: "${join(dir, 'spool')}", sinks: [{ type: redis-stream, stream: "bench:account", maxLen: 100000 }] }` : ''}
store: { redis: "redis://127.0.0.1:${port}" }
plans: { basic: {} }
tenants: [{ id: bench, plan: basic }]
routes:
  - { name: bench, match: { pathPrefix: / }, upstream: "http://127.0.0.1:1", auth: [none] }
`,
    );
    const config = await loadConfig(file);
    const logger = createLogger(config.source.logging.level);
    const metrics = new Metrics();
    // Events the lane spooled: if Redis fell behind (the queue overflowed), this measured the spool, not the queue.
    let spooled = 0;
    const usage =
      step === '+usage'
        ? await createUsageRecorder(config.source.usage, { redis: `redis://127.0.0.1:${port}`, logger, onDelivery: (s, o, n) => (metrics.usageEvents.labels(s, o).inc(n), o === 'spooled' && (spooled += n)) })
        : null;
    // The fields the account stage reads, as the pipeline leaves them for a forwarded 200.
    // accessLog: the access line's writer of older builds (a --compare build); today's account stage logs through pino.
    const accessLog = (await load('observability/access-log.js').catch(() => ({}))).accessLogFor?.(logger);
    const state = { metrics, logger, usage, config, accessLog };
    const req = { method: 'GET', headers: {} };
    const principal = { kind: 'apiKey', tenantId: 'bench', subject: null, projectId: null, apiKeyId: 'ak_bench', scopes: [], roles: [], rate: null };
    const tenant = { id: 'bench', plan: 'basic' };
    const route = { name: 'bench', cost: 1 };
    let n = 0;
    const context = () => {
      const ctx = new RequestContext(req, null, null, config, performance.now() - 3.2);
      ctx.requestId = `0f8fad5b-d9cb-469f-a165-${String(700000000000 + (n++ % 1e11)).padStart(12, '0')}`;
      ctx.route = route;
      ctx.path = '/bench';
      ctx.principal = principal;
      ctx.tenant = tenant;
      ctx.admitted = true;
      ctx.status = 200;
      ctx.upstreamStartedAt = ctx.startedAt + 0.4;
      ctx.upstreamHeadersAt = ctx.startedAt + 2.1;
      ctx.bytesOut = 100;
      return ctx;
    };
    const run = async (count) => {
      for (let done = 0; done < count; done += BATCH) {
        const batch = [];
        for (let i = 0; i < BATCH; i++) batch.push(context());
        for (const ctx of batch) account(ctx, state);
        await new Promise((r) => setImmediate(r));
      }
    };
    await run(Math.min(30_000, requests));
    const cpu = process.cpuUsage();
    await run(requests);
    const used = process.cpuUsage(cpu);
    await usage?.close();
    return { cpuUsPerRequest: (used.user + used.system) / requests, spooled };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (args.instructions && !has('valgrind')) {
  process.stderr.write('bench/lab/account-stage.js --instructions needs valgrind on PATH (apt-get install valgrind)\n');
  process.exit(1);
}

/** A warning for a run whose lane spooled events (counted through the onDelivery the worker passes). */
const spoolWarning = (spooled) => (spooled > 0 ? ` — WARNING: ${spooled} events spooled (Redis fell behind): this run measured the spool` : '');

/** Instructions (cachegrind's I refs) of one worker run (its stdout, the access log, to /dev/null). */
function countInstructions(root, step, port, requests, out) {
  // --single-threaded: V8 compiles and collects garbage on this thread, so when code is optimised, and how
  // much GC work there is, do not depend on how threads were scheduled.
  const argv = ['--tool=cachegrind', '--cache-sim=no', '--smc-check=all-non-file', '--cachegrind-out-file=/dev/null', process.execPath, '--single-threaded', fileURLToPath(import.meta.url), '--worker', root, '--step', step, '--port', String(port), '--requests', String(requests), '--out', out];
  return new Promise((resolve, reject) => {
    const child = spawn('valgrind', argv, { stdio: ['ignore', openSync('/dev/null', 'w'), 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code) => {
      const m = /I\s+refs:\s+([\d,]+)/.exec(stderr);
      if (code !== 0 || m === null) reject(new Error(`valgrind ${step} ${root} exited with ${code}: ${stderr.slice(-500)}`));
      else resolve(Number(m[1].replaceAll(',', '')));
    });
  });
}

/**
 * Per build and step, instructions per request: a run of `requests` less one
 * of a single request (start-up alone), over the requests the first ran
 * (with its warm-up), two runs at a time. The baseline is one request, not a
 * shorter run: early in a run the heap still grows on timing-dependent
 * heuristics.
 */
async function instructionsPerRequest(builds, port, resultDir) {
  const big = Number(args.requests);
  const small = 1;
  const ran = big + Math.min(30_000, big); // measure() warms up on min(30,000, requests) first
  const jobs = builds.flatMap(([name, root]) => STEPS.flatMap((step) => [big, small].map((requests) => ({ name, root, step, requests }))));
  const counted = new Map();
  let next = 0;
  const worker = async (w) => {
    while (next < jobs.length) {
      const job = jobs[next++];
      const n = await countInstructions(job.root, job.step, port, job.requests, join(resultDir, `result-${w}.json`));
      counted.set(`${job.name}\0${job.step}\0${job.requests}`, n);
      const { spooled } = JSON.parse(readFileSync(join(resultDir, `result-${w}.json`), 'utf8'));
      process.stderr.write(`  ${job.name} ${job.step} × ${job.requests}: ${n.toLocaleString('en')} instructions${spoolWarning(spooled)}\n`);
    }
  };
  await Promise.all([worker(0), worker(1)]);
  const of = (name, step) => (counted.get(`${name}\0${step}\0${big}`) - counted.get(`${name}\0${step}\0${small}`)) / (ran - 2);
  process.stdout.write(`\n| account stage alone, instructions/request (cachegrind, ${ran} requests less start-up) | ${STEPS.join(' | ')} | +log and +usage above metrics |\n|---|${STEPS.map(() => '---:').join('|')}|---:|\n`);
  for (const [name, root] of builds) {
    const per = STEPS.map((step) => of(name, step));
    process.stdout.write(`| ${name} (${root}) | ${per.map((x) => Math.round(x).toLocaleString('en')).join(' | ')} | ${Math.round(per[1] - per[0]).toLocaleString('en')}, ${Math.round(per[2] - per[0]).toLocaleString('en')} |\n`);
  }
}

const { port, child: redisServer } = await startThrowawayRedis('bench/lab/account-stage.js');
const resultDir = mkdtempSync(join(tmpdir(), 'tg-account-bench-results-'));
try {
  const builds = [['this build', ROOT], ...(args.compare ? [['compare', resolve(args.compare)]] : [])];
  if (args.instructions) await instructionsPerRequest(builds, port, resultDir);
  else await timePerRequest(builds, port, resultDir);
} finally {
  redisServer.kill('SIGKILL');
  rmSync(resultDir, { recursive: true, force: true });
}

/** Per build and step, the median over rounds of Node CPU µs per request. */
async function timePerRequest(builds, port, resultDir) {
  const samples = new Map();
  for (let round = 1; round <= Number(args.rounds); round++) {
    for (const [name, root] of builds) {
      for (const step of STEPS) {
        const out = join(resultDir, 'result.json');
        const node = [process.execPath, fileURLToPath(import.meta.url), '--worker', root, '--step', step, '--port', String(port), '--requests', args.requests, '--out', out];
        execFileSync(TASKSET ? 'taskset' : node[0], TASKSET ? ['-c', '0', ...node] : node.slice(1), { stdio: ['ignore', openSync('/dev/null', 'w'), 'inherit'] });
        const { cpuUsPerRequest, spooled } = JSON.parse(readFileSync(out, 'utf8'));
        const key = `${name}\0${step}`;
        samples.set(key, [...(samples.get(key) ?? []), cpuUsPerRequest]);
        process.stderr.write(`  round ${round} ${name} ${step}: ${cpuUsPerRequest.toFixed(2)} µs/request${spoolWarning(spooled)}\n`);
      }
    }
  }
  process.stdout.write(`\n| account stage alone, Node CPU µs/request (${args.rounds} rounds, medians) | ${STEPS.join(' | ')} |\n|---|${STEPS.map(() => '---:').join('|')}|\n`);
  for (const [name, root] of builds) {
    process.stdout.write(`| ${name} (${root}) | ${STEPS.map((step) => median(samples.get(`${name}\0${step}`)).toFixed(2)).join(' | ')} |\n`);
  }
}
