#!/usr/bin/env node
// `node bench/lab/paired.js [--rounds 12] [--duration 4] [--connections 50] [--compare <root>] [--control]` (after `npm run build`)
//
// The full pipeline (metrics, access log, usage events to a Redis stream)
// against the same proxy with all three off, the two proxies measured AT THE
// SAME TIME: both on CPU 0, each loaded by its own wrk on CPU 1. The kernel
// gives two always-runnable processes on one core equal CPU time, so their
// req/s ratio is the ratio of what a request costs each, under the very same
// machine speed — steadier than run.js's back-to-back rows on a host whose
// speed swings within seconds.
//
// What it cannot see: anything that slows CPU 1 (Redis, the load) slows both
// proxies alike. Each round reports how busy each CPU was; the ratio holds
// only while CPU 0 is saturated and CPU 1 is not (a warning says when not).
// A shared core also inflates the cost both proxies share, so the full
// pipeline's extra reads smaller than in run.js: use it to A/B a change under
// equal conditions, not to judge an absolute target.
//
// `--compare <root>`: a third proxy, the full pipeline from another build
// (its dist/, node_modules linked). `--control`: a second metrics-off proxy,
// the same as the first: control / metrics off is 1.00× if the sharing is fair.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { generateApiKey } from '../../dist/auth/api-key-format.js';
import { cpuTicks, freePort, has, limitedProxyConfig, medianWithCi, startThrowawayRedis, TASKSET, TICKS_PER_S } from '../standalone.js';

const BENCH = join(dirname(fileURLToPath(import.meta.url)), '..');
const ROOT = join(BENCH, '..');
const USAGE = `usage: node bench/lab/paired.js [options]   (after npm run build; needs wrk, redis-server and taskset on a 2-core machine)
  --rounds <n>        rounds (default 12; a 95 % interval needs 6 or more)
  --duration <s>      seconds per round (default 4)
  --connections <n>   wrk connections per proxy (default 50)
  --compare <root>    add the full pipeline served from another build's root
  --control           add a second, identical metrics-off proxy (1.00x if the sharing is fair)
`;
let args;
try {
  args = parseArgs({ options: { rounds: { type: 'string', default: '12' }, duration: { type: 'string', default: '4' }, connections: { type: 'string', default: '50' }, compare: { type: 'string' }, control: { type: 'boolean', default: false }, help: { type: 'boolean', default: false } } }).values;
} catch (err) {
  process.stderr.write(`bench/lab/paired.js: ${err.message}\n${USAGE}`);
  process.exit(2);
}
if (args.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
if (!TASKSET || !has('wrk')) {
  process.stderr.write(`bench/lab/paired.js needs taskset, 2 cores or more and wrk (apt-get install wrk)\n${USAGE}`);
  process.exit(1);
}
const ROUNDS = Number(args.rounds);
const DURATION_S = Number(args.duration);

const children = new Set();
process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

/** Spawns argv on `cpu`; resolves once it answers on `port` (a proxy) or prints `{"port":…}` (the upstream). */
function startOn(cpu, argv, port = null) {
  const child = spawn('taskset', ['-c', String(cpu), ...argv], { stdio: ['ignore', port === null ? 'pipe' : 'ignore', 'inherit'] });
  children.add(child);
  return new Promise((res, rej) => {
    child.once('exit', (code) => rej(new Error(`${argv.join(' ')} exited with ${code}`)));
    if (port === null) {
      child.stdout.once('data', (d) => {
        child.stdout.resume();
        res({ child, port: JSON.parse(String(d)).port });
      });
      return;
    }
    const poll = () => fetch(`http://127.0.0.1:${port}/`).then(() => res({ child, port }), () => setTimeout(poll, 100));
    poll();
  });
}

/** Per CPU: [busy, total] jiffies (idle and iowait are not busy). */
const cpuTimes = () =>
  readFileSync('/proc/stat', 'utf8')
    .split('\n')
    .filter((l) => /^cpu\d /.test(l))
    .map((l) => {
      const f = l.trim().split(/\s+/).slice(1).map(Number);
      const total = f.reduce((a, b) => a + b, 0);
      return [total - f[3] - f[4], total];
    });

function wrk(port, key, seconds) {
  const argv = ['-c', '1', 'wrk', '-t1', `-c${args.connections}`, `-d${seconds}s`, '-H', `x-api-key: ${key}`, `http://127.0.0.1:${port}/bench`];
  return new Promise((res, rej) =>
    execFile('taskset', argv, { encoding: 'utf8' }, (err, out) => {
      if (err) return rej(err);
      const errors = /Non-2xx or 3xx responses: (\d+)/.exec(out);
      res({ rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)[1]), errors: errors ? Number(errors[1]) : 0 });
    }),
  );
}

const dir = mkdtempSync(join(tmpdir(), 'tg-paired-'));
try {
  const redis = await startThrowawayRedis('bench/lab/paired.js');
  children.add(redis.child);
  const upstream = await startOn(1, [process.execPath, join(BENCH, 'servers/upstream.js')]);
  const key = generateApiKey({ env: 'live', id: 'ak_bench' });
  const variants = [
    { name: 'limits, metrics off', root: ROOT, full: false, metricsOff: true },
    { name: 'full pipeline', root: ROOT, full: true, metricsOff: false },
    ...(args.compare ? [{ name: 'full pipeline [compare]', root: resolve(args.compare), full: true, metricsOff: false }] : []),
    ...(args.control ? [{ name: 'limits, metrics off [control]', root: ROOT, full: false, metricsOff: true }] : []),
  ];
  const indexOf = (name) => variants.findIndex((v) => v.name === name);
  for (const [i, v] of variants.entries()) {
    const [port, adminPort] = [await freePort(), await freePort()];
    const prefix = `paired${i}`;
    const file = join(dir, `${prefix}.yaml`);
    writeFileSync(file, limitedProxyConfig({ port, adminPort, redisPort: redis.port, upstreamPort: upstream.port, keyHash: key.hash, prefix, full: v.full, metricsOff: v.metricsOff, spoolDir: join(dir, `${prefix}-spool`) }));
    Object.assign(v, await startOn(0, [process.execPath, join(v.root, 'dist/main.js'), 'serve', '-c', file], port));
  }
  process.stderr.write(`bench/lab/paired.js: ${variants.map((v) => v.name).join(', ')} side by side on CPU 0, ${ROUNDS} rounds × ${DURATION_S} s, wrk ${args.connections} connections each on CPU 1\n`);
  await Promise.all(variants.map((v) => wrk(v.port, key.key, 3))); // warm-up

  const rounds = [];
  for (let r = 1; r <= ROUNDS; r++) {
    const t0 = variants.map((v) => cpuTicks(v.child.pid));
    const c0 = cpuTimes();
    // wrk starts in list order, reversed every other round: the first to start was seen to get a little more.
    const order = r % 2 === 1 ? variants : [...variants].reverse();
    const started = new Map(order.map((v) => [v, wrk(v.port, key.key, DURATION_S)]));
    const runs = await Promise.all(variants.map((v) => started.get(v)));
    const c1 = cpuTimes();
    const busy = c1.map(([b, t], i) => (b - c0[i][0]) / (t - c0[i][1]));
    const cpuUs = variants.map((v, i) => ((cpuTicks(v.child.pid) - t0[i]) * 1e6) / TICKS_PER_S / (runs[i].rps * DURATION_S));
    rounds.push({ runs, busy, cpuUs });
    process.stderr.write(`  round ${r}: ${runs.map((x, i) => `${variants[i].name} ${Math.round(x.rps)} req/s (${cpuUs[i].toFixed(1)} µs CPU/req)`).join(', ')}; CPU busy ${busy.map((b) => `${Math.round(b * 100)} %`).join(' / ')}\n`);
  }

  const f = (x, d = 3) => (Number.isFinite(x) ? x.toFixed(d) : '–');
  const ratio = (a, b) => medianWithCi(rounds.map((x) => x.runs[a].rps / x.runs[b].rps));
  const lines = [['full pipeline / limits with metrics off (side by side)', ratio(1, 0)]];
  if (args.compare) lines.push(['full pipeline [compare] / limits with metrics off', ratio(indexOf('full pipeline [compare]'), 0)], ['full pipeline / full pipeline [compare]', ratio(1, indexOf('full pipeline [compare]'))]);
  if (args.control) lines.push(['[control] metrics off / metrics off (the same proxy twice: 1.00× if fair)', ratio(indexOf('limits, metrics off [control]'), 0)]);
  const cpuRatio = medianWithCi(rounds.map((x) => x.cpuUs[0] / x.cpuUs[1]));
  let out = `\n| side by side, per round (${ROUNDS} × ${DURATION_S} s) | median | 95 % CI of the median |\n|---|---:|---:|\n`;
  for (const [name, p] of lines) out += `| ${name} | ${f(p.median)}× | ${Number.isFinite(p.lo) ? `${f(p.lo)} – ${f(p.hi)} (${f(p.coverage * 100, 1)} %)` : '– (6 rounds or more)'} |\n`;
  out += `| proxy CPU per request, metrics off / full | ${f(cpuRatio.median)}× | ${Number.isFinite(cpuRatio.lo) ? `${f(cpuRatio.lo)} – ${f(cpuRatio.hi)}` : '–'} |\n`;
  const busy0 = medianWithCi(rounds.map((x) => x.busy[0])).median;
  const busy1 = medianWithCi(rounds.map((x) => x.busy[1])).median;
  out += `\nCPU busy (median of rounds): CPU 0 ${f(busy0 * 100, 0)} %, CPU 1 ${f(busy1 * 100, 0)} %\n`;
  const errors = rounds.reduce((a, x) => a + x.runs.reduce((b, y) => b + y.errors, 0), 0);
  if (errors > 0) out += `WARNING: ${errors} non-2xx responses\n`;
  if (busy0 < 0.95 || busy1 > 0.9) out += 'WARNING: CPU 0 was not saturated or CPU 1 nearly was: the proxies were not the only bottleneck, and the ratio is not a cost ratio\n';
  process.stdout.write(out);
} finally {
  children.forEach((c) => c.kill('SIGKILL'));
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
