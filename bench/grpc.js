#!/usr/bin/env node
// `npm run build && node bench/grpc.js [--quick] [--duration 6 --rounds 6 --streams 50]`
//
// gRPC unary through tenantgate (`protocol: grpc`, h2c in and out, API key,
// in-memory limits) against its floor measured in the same run: a bare
// node:http2 passthrough (bench/servers/bare-h2-passthrough.js), and the
// upstream direct. Same method as bench/run.js: the server under test on
// CPU 0, the load generator and the upstream on CPU 1 (taskset), scenarios
// interleaved, rounds repeated, medians with their CI, ratios from one run.
// The load generator is h2load (nghttp2-client) when installed, else a raw
// node:http2 client: one connection, `--streams` calls in flight. h2load
// counts HTTP statuses only, so each server first answers one call checked
// for grpc-status 0.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { generateApiKey } from '../dist/auth/api-key-format.js';
import { medianWithCi } from './standalone.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    duration: { type: 'string' },
    rounds: { type: 'string' },
    streams: { type: 'string', default: '50' },
  },
});
const DURATION_S = Number(args.duration ?? (args.quick ? 2 : 6));
const ROUNDS = Number(args.rounds ?? (args.quick ? 2 : 6));
const STREAMS = Number(args.streams);
const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const TASKSET = has('taskset') && cpus().length >= 2;
const H2LOAD = has('h2load');
/** One unary request message: uncompressed, length 2, "hi". */
const MESSAGE = Buffer.from([0, 0, 0, 0, 2, 0x68, 0x69]);
const PATH = '/bench.v1.Bench/Unary';

const children = new Set();
const files = [];

if (TASKSET && !process.env.TG_BENCH_PINNED) {
  const inner = spawn('taskset', ['-c', '1', process.execPath, ...process.argv.slice(1)], { stdio: 'inherit', env: { ...process.env, TG_BENCH_PINNED: '1' } });
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => inner.kill(sig));
  inner.on('exit', (code) => process.exit(code ?? 1));
} else {
  process.on('exit', () => {
    for (const c of children) c.kill('SIGKILL');
    for (const f of files) rmSync(f, { force: true });
  });
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));
  main().then(
    () => process.exit(0),
    (err) => {
      process.stderr.write(`bench failed: ${err.stack ?? err}\n`);
      process.exit(1);
    },
  );
}

/** Starts `argv` under node on `cpu`; resolves with the port it prints as {"port": N}, or once `fixedPort` accepts connections. */
function startServer(name, argv, cpu, fixedPort = null) {
  const cmd = TASKSET ? 'taskset' : process.execPath;
  const full = TASKSET ? ['-c', String(cpu), process.execPath, ...argv] : argv;
  const child = spawn(cmd, full, { stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code}`)));
    setTimeout(() => reject(new Error(`${name} did not start`)), 30_000).unref();
    if (fixedPort !== null) {
      child.stdout.resume();
      const poll = () => {
        const probe = http2.connect(`http://127.0.0.1:${fixedPort}`);
        probe.on('error', () => setTimeout(poll, 50));
        probe.on('connect', () => {
          probe.close();
          resolve({ name, port: fixedPort });
        });
      };
      poll();
      return;
    }
    let buf = '';
    child.stdout.on('data', function onData(d) {
      buf += d;
      const m = /\{"port":(\d+)\}/.exec(buf);
      if (m === null) return;
      child.stdout.off('data', onData);
      child.stdout.resume();
      resolve({ name, port: Number(m[1]) });
    });
  });
}

async function freePort() {
  const probe = createServer();
  await new Promise((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address();
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

async function startTenantgate(upstreamPort, keyHash) {
  const [port, adminPort] = [await freePort(), await freePort()];
  const file = join(tmpdir(), `tenantgate-bench-grpc-${process.pid}.yaml`);
  files.push(file);
  writeFileSync(
    file,
    `listen: { host: 127.0.0.1, port: ${port}, http2: true }
admin: { host: 127.0.0.1, port: ${adminPort} }
logging: { level: warn }
plans: { basic: { rate: { perSecond: 1000000, burst: 1000000 }, quota: { daily: 1000000000, monthly: 1000000000 }, concurrency: 100000 } }
tenants: [{ id: bench, plan: basic }]
apiKeys: [{ id: ak_bench, tenant: bench, hash: "${keyHash}", scopes: [bench:call] }]
routes:
  - { name: bench, match: { pathPrefix: /bench.v1.Bench/ }, upstream: "http://127.0.0.1:${upstreamPort}", protocol: grpc, auth: [apiKey], permission: bench:call }
`,
  );
  return startServer('tenantgate', [join(HERE, '..', 'dist/main.js'), 'serve', '-c', file], 0, port);
}

const pct = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;

/** h2load: `STREAMS` calls in flight on one h2c connection for `seconds`; a call that is not HTTP 200 counts as failed. */
function loadH2load(port, headers, seconds) {
  const body = join(tmpdir(), `tenantgate-bench-grpc-${process.pid}.msg`);
  const log = join(tmpdir(), `tenantgate-bench-grpc-${process.pid}.log`);
  files.push(body, log);
  writeFileSync(body, MESSAGE);
  writeFileSync(log, '');
  const headerArgs = Object.entries({ 'content-type': 'application/grpc', te: 'trailers', ...headers }).flatMap(([k, v]) => ['-H', `${k}: ${v}`]);
  const out = execFileSync('h2load', ['-c', '1', '-m', String(STREAMS), '-D', String(seconds), '-d', body, '--log-file', log, ...headerArgs, `http://127.0.0.1:${port}${PATH}`], { encoding: 'utf8' });
  const rps = Number(/finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(out)[1]);
  const [, , , , , failed, errored, timedOut] = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out).map(Number);
  const [, , s3xx, s4xx, s5xx] = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out).map(Number);
  const ms = readFileSync(log, 'utf8').split('\n').filter((l) => l !== '').map((l) => Number(l.split('\t')[2]) / 1000).sort((a, b) => a - b);
  return { rps, p50: pct(ms, 0.5), p99: pct(ms, 0.99), failed: failed + errored + timedOut + s3xx + s4xx + s5xx };
}

/** One call, checked: HTTP 200 and grpc-status 0 in the trailers, else the run stops. */
async function check(name, port, headers) {
  const r = await load(port, headers, 0, 1);
  if (r.failed > 0 || r.rps === 0) throw new Error(`${name}: a unary call did not end with grpc-status 0`);
}

/** `callers` unary calls in flight on one connection for `seconds` (at least one call each): calls/s, latency percentiles, failures. */
async function load(port, headers, seconds, callers = STREAMS) {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  await new Promise((resolve, reject) => {
    session.once('connect', resolve);
    session.once('error', reject);
  });
  const request = { ':method': 'POST', ':path': PATH, 'content-type': 'application/grpc', te: 'trailers', ...headers };
  const latencies = [];
  let ok = 0;
  let failed = 0;
  const until = performance.now() + seconds * 1000;
  const call = () =>
    new Promise((resolve) => {
      const started = performance.now();
      let status = null;
      const stream = session.request(request);
      stream.on('response', (h) => (status = h['grpc-status'] ?? status));
      stream.on('trailers', (t) => (status = t['grpc-status'] ?? status));
      stream.on('data', () => {});
      stream.on('error', () => {});
      stream.on('close', () => {
        if (status === '0') {
          ok++;
          latencies.push(performance.now() - started);
        } else failed++;
        resolve();
      });
      stream.end(MESSAGE);
    });
  const caller = async () => {
    do await call();
    while (performance.now() < until);
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: callers }, caller));
  const elapsed = (performance.now() - t0) / 1000;
  session.close();
  latencies.sort((a, b) => a - b);
  return { rps: ok / elapsed, p50: pct(latencies, 0.5), p99: pct(latencies, 0.99), failed };
}

async function main() {
  const key = generateApiKey({ env: 'live', id: 'ak_bench' });
  const upstream = await startServer('grpc-upstream', [join(HERE, 'servers/grpc-upstream.js')], 1);
  const scenarios = [
    { name: 'upstream direct (h2c)', server: upstream, headers: {} },
    { name: 'bare node:http2 passthrough', server: await startServer('h2-passthrough', [join(HERE, 'servers/bare-h2-passthrough.js'), String(upstream.port)], 0), headers: {} },
    { name: 'tenantgate gRPC unary (API key, in-memory limits)', server: await startTenantgate(upstream.port, key.hash), headers: { 'x-api-key': key.key } },
  ];
  process.stderr.write(`bench/grpc: ${H2LOAD ? 'h2load' : 'node:http2 client'}, ${STREAMS} calls in flight on one h2c connection, ${ROUNDS} rounds × ${DURATION_S}s, ${TASKSET ? 'server on CPU 0, load + upstream on CPU 1' : 'no pinning'}\n`);
  for (const s of scenarios) await check(s.name, s.server.port, s.headers);
  const run = (s, seconds) => (H2LOAD ? loadH2load(s.server.port, s.headers, seconds) : load(s.server.port, s.headers, seconds));
  for (const s of scenarios) await run(s, 1); // warm-up
  const results = new Map(scenarios.map((s) => [s.name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const s of scenarios) {
      const r = await run(s, DURATION_S);
      if (r.failed > 0) throw new Error(`${s.name}: ${r.failed} calls failed`);
      results.get(s.name).push(r);
      process.stderr.write(`  round ${round + 1}: ${s.name}: ${Math.round(r.rps)} calls/s\n`);
    }
  }
  const floor = medianWithCi(results.get('bare node:http2 passthrough').map((r) => r.rps)).median;
  const lines = ['| scenario | calls/s (median [95% CI]) | p50 ms | p99 ms | vs bare passthrough |', '|---|---|---|---|---|'];
  for (const [name, rs] of results) {
    const m = medianWithCi(rs.map((r) => r.rps));
    const p50 = medianWithCi(rs.map((r) => r.p50)).median;
    const p99 = medianWithCi(rs.map((r) => r.p99)).median;
    lines.push(`| ${name} | ${Math.round(m.median)} [${Math.round(m.lo)}–${Math.round(m.hi)}] | ${p50.toFixed(2)} | ${p99.toFixed(2)} | ${(m.median / floor).toFixed(2)}× |`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}
