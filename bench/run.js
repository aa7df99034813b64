#!/usr/bin/env node
// `npm run bench [-- --quick] [-- --duration 10 --rounds 5 --connections 50]`
//
// What tenantgate costs, measured against its floors in ONE run: the upstream
// direct, a bare http-proxy-3 passthrough, a bare undici passthrough, and
// tenantgate itself. The machines are 2-core and noisy, so: the server under
// test is pinned to CPU 0, the load generator and the upstream to CPU 1
// (taskset); scenarios are interleaved (A B C D A B C D …), repeated, and the
// medians reported; the headline figures are ratios from the same run.
// wrk is used when installed (it loads the machine less), else autocannon.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { generateApiKey } from '../dist/auth/api-key-format.js';
import { LARGE, LARGE_BODY_BYTES, largeBodyRatios, largeBodyScenarios, largeBodyTable } from './large-body.js';
import { H2, h2Ratios, h2Scenarios } from './h2.js';
import { nginxStarter } from './nginx.js';
import { spawnRedisServer } from './redis-server.js';
import { cpuTicks, medianWithCi, TICKS_PER_S } from './standalone.js';

const HERE = dirname(fileURLToPath(import.meta.url));
/** API key + Redis limits with metrics off too: the full pipeline with metrics, access log and usage events all off. */
const OBSERVABILITY_OFF = 'tenantgate (API key + Redis limits, metrics off)';
const TENANT_RATE_ONLY = 'tenantgate (API key + Redis tenant rate only)';
const THREE_NAMED = 'tenantgate (API key + Redis three named limits: minute rate, hourly route quota, project concurrency)';
/** The full pipeline plus tracing (issue #31), exporting to bench/servers/otlp-sink.js at these sample ratios. */
const TRACED = [1, 0.01].map((ratio) => ({ ratio, name: `tenantgate (full pipeline, tracing ${ratio === 1 ? '1.0' : ratio})` }));
const ROOT = join(HERE, '..');
const BENCH_OPTIONS = {
  help: { type: 'boolean', default: false },
  quick: { type: 'boolean', default: false },
  duration: { type: 'string' },
  rounds: { type: 'string' },
  connections: { type: 'string', default: '50' },
  'no-wrk': { type: 'boolean', default: false },
  /** Comma-separated substrings: run only the scenarios whose name contains one (for quick A/B work). */
  only: { type: 'string' },
  /** Comma-separated substrings: leave out the scenarios whose name contains one (after --only). */
  skip: { type: 'string' },
  /** Adds the scale scenarios (bench/scale.js): 100k keys in Redis vs YAML, cold keys, 10k tenants + 100k keys in YAML. */
  scale: { type: 'boolean', default: false },
};
const USAGE = `usage: npm run bench -- [options]   (or: node bench/run.js [options], after npm run build)
  --quick                 2 rounds x 2 s, without nginx, auto-pipelining, metrics-off and the 1 MiB POSTs (~1 minute)
  --duration <s>          seconds per scenario per round (default 6; 2 with --quick)
  --rounds <n>            interleaved rounds (default 6; 2 with --quick)
  --connections <n>       load generator connections (default 50)
  --no-wrk                use autocannon even when wrk is installed
  --only <substr,...>     run only the scenarios whose name contains one
  --skip <substr,...>     leave out the scenarios whose name contains one
  --scale                 add the scale scenarios (bench/scale.js)
  --help                  this text
See bench/README.md (and bench/lab/README.md for A/B tools).
`;
let parsed;
try {
  parsed = parseArgs({ options: BENCH_OPTIONS });
} catch (err) {
  process.stderr.write(`bench: ${err.message}\n${USAGE}`);
  process.exit(2);
}
if (parsed.values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const args = parsed.values;
const DURATION_S = Number(args.duration ?? (args.quick ? 2 : 6));
const ROUNDS = Number(args.rounds ?? (args.quick ? 2 : 6));
const CONNECTIONS = Number(args.connections);
const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const TASKSET = has('taskset') && cpus().length >= 2;
const WRK = !args['no-wrk'] && has('wrk');
const NGINX = has('nginx');

const children = new Set();
const configFiles = [];
const tempDirs = [];
function cleanup() {
  for (const c of children) c.kill('SIGKILL');
  for (const f of [...configFiles, ...tempDirs]) rmSync(f, { force: true, recursive: true });
}

// The load generator runs in this process: pin ourselves to CPU 1 by re-executing under taskset.
if (TASKSET && !process.env.TG_BENCH_PINNED) {
  const inner = spawn('taskset', ['-c', '1', process.execPath, ...process.argv.slice(1)], { stdio: 'inherit', env: { ...process.env, TG_BENCH_PINNED: '1' } });
  // Pass signals on, so stopping this process stops the run and its servers too.
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => inner.kill(sig));
  inner.on('exit', (code) => process.exit(code ?? 1));
} else {
  process.on('exit', cleanup);
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));
  main().then(
    () => process.exit(0),
    (err) => {
      process.stderr.write(`bench failed: ${err.stack ?? err}\n`);
      process.exit(1);
    },
  );
}


/**
 * Starts a server process (on `cpu`): `exec` (node by default) with `argv`.
 * Without `fixedPort` it resolves once the process prints `{"port": N}`; with
 * one, once that port answers. All scenarios start at once (16 processes on
 * two cores), so a busy machine gets 30 s.
 */
function startServer(name, argv, cpu, fixedPort = null, timeoutMs = 30_000, exec = process.execPath) {
  const cmd = TASKSET ? 'taskset' : exec;
  const full = TASKSET ? ['-c', String(cpu), exec, ...argv] : argv;
  const child = spawn(cmd, full, { stdio: ['ignore', fixedPort === null ? 'pipe' : 'ignore', 'inherit'] });
  children.add(child);
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code}`)));
    setTimeout(() => reject(new Error(`${name} did not start`)), timeoutMs).unref();
    if (fixedPort !== null) {
      const poll = () => fetch(`http://127.0.0.1:${fixedPort}/`, { signal: AbortSignal.timeout(1000) }).then(() => resolve({ name, child, port: fixedPort }), () => setTimeout(poll, 50));
      poll();
      return;
    }
    let buf = '';
    const onData = (d) => {
      buf += d;
      const m = /\{"port":(\d+)\}/.exec(buf);
      if (m === null) return;
      child.stdout.off('data', onData);
      child.stdout.resume(); // keep draining, stop parsing
      resolve({ name, child, port: Number(m[1]) });
    };
    child.stdout.on('data', onData);
  });
}

/** A port free now and not handed out before in this run (the servers start concurrently: one may not have bound its port yet). */
const givenPorts = new Set();
async function freePort() {
  const probe = createServer();
  await new Promise((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address();
  await new Promise((resolve) => probe.close(resolve));
  if (givenPorts.has(port)) return freePort();
  givenPorts.add(port);
  return port;
}

/** A file in the temp dir, removed at exit. */
function tempFile(name, text) {
  const file = join(tmpdir(), `tenantgate-bench-${process.pid}-${name}`);
  configFiles.push(file);
  writeFileSync(file, text);
  return file;
}

const peakRssMb = (pid) => Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;

/**
 * `rate` (req/s, all connections together): a fixed-rate run instead of as-fast-as-possible.
 * `pickKey`: a function giving each request's X-API-Key (the scale scenarios).
 * `body`: a Buffer POSTed with every request (the large-body scenarios; autocannon builds one request buffer per connection).
 */
function runAutocannon(url, seconds, headers, rate = null, pickKey = null, body = null) {
  const picked = pickKey === null ? {} : { requests: [{ setupRequest: (req) => ({ ...req, headers: { ...req.headers, 'x-api-key': pickKey() } }) }] };
  const post = body === null ? {} : { method: 'POST', body, headers: { ...headers, 'content-type': 'application/octet-stream' } };
  return new Promise((resolve, reject) => {
    autocannon({ url, connections: CONNECTIONS, duration: seconds, pipelining: 1, headers, ...picked, ...post, ...(rate === null ? {} : { overallRate: rate }) }, (err, r) => {
      if (err) return reject(err);
      resolve({ requests: r.requests.total, rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, p999: r.latency.p99_9, errors: r.errors + r.non2xx });
    });
  });
}

function toMs(v, unit) {
  return Number(v) * ({ us: 0.001, ms: 1, s: 1000 }[unit] ?? 1);
}

/**
 * wrk has no fixed-rate mode (wrk2 is not packaged), so a `rate` run gives
 * each connection a think time between its requests (wrk's Lua `delay()`,
 * whole milliseconds, so it alternates between the two nearest to hit the
 * mean): C connections × 1 / (think + latency) ≈ the rate. Latency is timed
 * from the write of each request, so the think time is not in it. The
 * achieved rate is reported next to the target.
 */
function wrkRateScript(rate) {
  const thinkMs = (CONNECTIONS * 1000) / rate;
  const file = join(tmpdir(), `tenantgate-bench-${process.pid}-rate-${Math.round(rate)}.lua`);
  configFiles.push(file);
  writeFileSync(
    file,
    `local lo = ${Math.floor(thinkMs)}
local frac = ${thinkMs - Math.floor(thinkMs)}
function delay()
  if math.random() < frac then return lo + 1 end
  return lo
end
`,
  );
  return file;
}

/**
 * wrk's --latency prints p50/75/90/99 only: every run gets a Lua `done()`
 * printing p99.9 from wrk's own histogram, appended to the run's script (or
 * alone). done() runs once, after the run: no per-request cost.
 */
const WRK_DONE = `
function done(summary, latency, requests)
  io.write(string.format("p99.9 latency: %.0fus\\n", latency:percentile(99.9)))
end
`;
const withDone = new Map();
function wrkScriptWithDone(script) {
  const key = script ?? '';
  if (!withDone.has(key)) withDone.set(key, tempFile(`done-${withDone.size}.lua`, `${script === null ? '' : readFileSync(script, 'utf8')}${WRK_DONE}`));
  return withDone.get(key);
}

/** `script`: a wrk Lua script of the scenario's own (the scale scenarios pick the key per request, the large-body ones POST); not with `rate`. */
function runWrk(url, seconds, headers, rate = null, script = null) {
  const headerArgs = Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]);
  const scriptArgs = ['-s', wrkScriptWithDone(rate === null ? script : wrkRateScript(rate))];
  // --timeout 10s (wrk's default is 2 s, autocannon's 10 s): a timed-out request counts as an error and is missing from
  // the latency histogram, which would flatter p99.9 exactly when the tail is long (the 1 MiB POSTs under load).
  const out = execFileSync('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--timeout', '10s', '--latency', ...scriptArgs, ...headerArgs, url], { encoding: 'utf8' });
  const p999 = /^p99\.9 latency: (\d+)us$/m.exec(out);
  const lat = (p) => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s)`, 'm').exec(out);
    return m ? toMs(m[1], m[2]) : NaN;
  };
  const requests = Number(/(\d+) requests in/.exec(out)[1]);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = non2xx + (socketErrors ? socketErrors.slice(1).reduce((a, b) => a + Number(b), 0) : 0);
  const errorKinds = [non2xx > 0 ? `non-2xx ${non2xx}` : '', socketErrors && errors > non2xx ? socketErrors[0] : ''].filter(Boolean).join(', ');
  return { requests, rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)[1]), p50: lat(50), p99: lat(99), p999: p999 ? Number(p999[1]) / 1000 : NaN, errors, errorKinds };
}

/**
 * tenantgate_limit_wait_seconds from a proxy's admin /metrics, cumulative:
 * { bounds: [le…], counts: [cumulative count…], count }, or null (no limits
 * on that proxy, or a build without the metric).
 */
async function limitWaitOf(adminPort) {
  const text = await scrape(adminPort);
  const bounds = [];
  const counts = [];
  for (const m of text.matchAll(/^tenantgate_limit_wait_seconds_bucket\{le="([^"]+)"\} (\S+)$/gm)) {
    if (m[1] === '+Inf') continue;
    bounds.push(Number(m[1]));
    counts.push(Number(m[2]));
  }
  const count = Number(/^tenantgate_limit_wait_seconds_count (\S+)$/m.exec(text)?.[1]);
  return Number.isFinite(count) ? { bounds, counts, count } : null;
}

/**
 * GET /metrics on a fresh connection: the scrapes are a run apart, longer than
 * the admin server's keep-alive, and a pooled socket it has just closed would
 * fail the request.
 */
function scrape(adminPort) {
  return new Promise((resolve, reject) => {
    const req = httpGet({ host: '127.0.0.1', port: adminPort, path: '/metrics', agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`/metrics: ${res.statusCode}`))));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('/metrics: timeout')));
    req.on('error', reject);
  });
}

/** What the limit checks of several measured windows waited, pooled: the share that waited over the first bucket (0.1 ms) and the p99 as its bucket's bound. */
function pooledLimitWait(windows) {
  const ws = windows.filter((w) => w !== null && w !== undefined);
  if (ws.length === 0) return { checks: 0, waitedShare: NaN, p99BoundMs: NaN };
  const bounds = ws[0].bounds;
  const counts = bounds.map((_, i) => ws.reduce((a, w) => a + w.counts[i], 0));
  const checks = ws.reduce((a, w) => a + w.count, 0);
  if (checks === 0) return { checks, waitedShare: NaN, p99BoundMs: NaN };
  const i99 = counts.findIndex((c) => c >= 0.99 * checks);
  return { checks, waitedShare: (checks - counts[0]) / checks, p99BoundMs: i99 === -1 ? Infinity : bounds[i99] * 1000 };
}

/** A failed scrape leaves that window out of the limit-wait figures, and says so. */
const scrapeFailed = (scenario) => (err) => {
  process.stderr.write(`bench: ${scenario.name}: admin /metrics not read (${err.message}); this run is left out of its limit-wait figures\n`);
  return null;
};

async function measure(scenario, seconds, rate = null) {
  const url = `http://127.0.0.1:${scenario.port}/bench`;
  const pid = scenario.child.pid;
  // Only the fixed-rate table reports limit waits, so only those runs are scraped: a scrape costs the
  // metrics-on rows CPU that the metrics-off row (nothing to scrape) never pays, and would skew their ratio.
  const w0 = scenario.adminPort === undefined || rate === null ? null : await limitWaitOf(scenario.adminPort).catch(scrapeFailed(scenario));
  const t0 = cpuTicks(pid);
  const c0 = scenario.redisPort === undefined ? null : redisCalls(scenario.redisPort);
  const r0 = scenario.redisPid === undefined ? 0 : cpuTicks(scenario.redisPid);
  const headers = scenario.headers ?? {};
  const r = scenario.load !== undefined ? scenario.load(seconds) : WRK ? runWrk(url, seconds, headers, rate, scenario.wrkScript ?? null) : await runAutocannon(url, seconds, headers, rate, scenario.pickKey ?? null, scenario.body ?? null);
  const cpuUs = ((cpuTicks(pid) - t0) / TICKS_PER_S) * 1e6;
  const c1 = scenario.redisPort === undefined ? null : redisCalls(scenario.redisPort);
  const redisCpuUs = scenario.redisPid === undefined ? NaN : ((cpuTicks(scenario.redisPid) - r0) / TICKS_PER_S) * 1e6;
  const w1 = w0 === null ? null : await limitWaitOf(scenario.adminPort).catch(scrapeFailed(scenario));
  return {
    ...r,
    limitWait: w1 === null ? null : { bounds: w1.bounds, counts: w1.counts.map((c, i) => c - w0.counts[i]), count: w1.count - w0.count },
    cpuUsPerReq: r.requests > 0 ? cpuUs / r.requests : NaN,
    redisLimitCallsPerReq: c1 === null ? NaN : (c1.limit - c0.limit) / r.requests,
    redisCpuUsPerReq: r.requests > 0 ? redisCpuUs / r.requests : NaN,
    redisInnerCmdsPerReq: c1 === null ? NaN : (c1.inner - c0.inner) / r.requests,
  };
}

const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/**
 * Rounds alternate the scenarios' order (A B C, then C B A, …): the machine's
 * speed drifts, and in forward order alone whatever runs last in a round is
 * always measured latest. With the order alternating, a slow drift across two
 * rounds cancels out of the per-round ratios below.
 */
const inRoundOrder = (list, round) => (round % 2 === 1 ? list : [...list].reverse());

/**
 * Redis calls per request (INFO commandstats). `limit`: EVALSHA (or EVAL
 * after a script-cache flush), the proxy's ONLY round trips to Redis: the
 * checks of one event-loop turn go out as one batch, and the turn's
 * concurrency releases ride in it. For the full pipeline, also the usage
 * sink's EVALs (one per ~32 KB of events). `inner`: the commands those scripts ran
 * (Redis counts commands inside a script too; they are not round trips).
 */
const NOT_IN_SCRIPTS = new Set(['info', 'config', 'ping', 'select', 'client', 'script', 'hello', 'subscribe']);
function redisCalls(port) {
  const out = execFileSync('redis-cli', ['-p', String(port), 'info', 'commandstats'], { encoding: 'utf8' });
  const calls = { limit: 0, inner: 0 };
  for (const m of out.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)) {
    if (m[1] === 'evalsha' || m[1] === 'eval') calls.limit += Number(m[2]);
    else if (!NOT_IN_SCRIPTS.has(m[1])) calls.inner += Number(m[2]);
  }
  return calls;
}

/** A throwaway redis-server on a free port, on the load generator's CPU (never the machine's own on 6379). */
async function startRedis() {
  const port = await freePort();
  const { child, ready } = spawnRedisServer(port, TASKSET);
  children.add(child);
  await ready;
  return { port, child };
}

/** One request, expecting the upstream's 200 and 100 bytes; with `post` (a Buffer), a POST whose whole body the upstream must have received. */
async function check(url, headers = {}, post = null) {
  const init = post === null ? { headers } : { method: 'POST', headers: { ...headers, 'content-type': 'application/octet-stream' }, body: post };
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(5000) });
  const body = await res.arrayBuffer();
  if (res.status !== 200 || body.byteLength !== 100) throw new Error(`${url}: status ${res.status}, ${body.byteLength} bytes (expected 200 and 100)`);
  const received = res.headers.get('x-bench-body-bytes');
  if (post !== null && received !== String(post.length)) throw new Error(`${url}: the upstream received ${received} body bytes of ${post.length}`);
}

async function main() {
  const upstream = await startServer('upstream', [join(HERE, 'servers/upstream.js')], 1);
  // One tenant, one API key, one ES256 JWT issuer (inline key): the same route under each auth method.
  const apiKey = generateApiKey({ env: 'live', id: 'ak_bench' });
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: 'bench', alg: 'ES256' };
  const jwt = await new SignJWT({ tid: 'bench', scope: 'bench:read' })
    .setProtectedHeader({ alg: 'ES256', kid: 'bench' })
    .setIssuer('https://issuer.bench/')
    .setAudience('bench')
    .setExpirationTime('2h')
    .sign(privateKey);
  // A user in two tenants (roles per tenant, no tenantClaim): the Host picks one (tenants[].hosts; fetch and the load tools send the URL's host).
  const memberJwt = await new SignJWT({ orgs: { bench: ['reader'], other: ['reader'] } })
    .setProtectedHeader({ alg: 'ES256', kid: 'bench' })
    .setIssuer('https://issuer.bench/')
    .setAudience('bench')
    .setExpirationTime('2h')
    .sign(privateKey);
  // Limits high enough never to refuse: the bench measures their cost, not their effect.
  const LIMITED_PLAN = '{ rate: { perSecond: 1000000, burst: 1000000 }, quota: { daily: 1000000000, monthly: 1000000000 }, concurrency: 100000 }';
  // Issue #29's comparison: three named limits (SPEC §11) against the tenant rate alone, far from refusing.
  const TENANT_RATE_PLAN = '{ rate: { perSecond: 1000000, burst: 1000000 } }';
  const NAMED_PLAN =
    '{ limits: [{ name: per-minute, rate: { limit: 60000000, window: 1m } }, { name: hourly, routes: [bench], quota: { limit: 1000000000, window: 1h } }, { name: jobs, routes: [bench], per: project, concurrency: 100000 }] }';
  /** `route`: { upstreamPort, maxBodyBytes, tag } to override the route's upstream and body limit (the large-body scenarios). */
  const configFor = (auth, port, adminPort, store = null, route = {}) => {
    const file = join(tmpdir(), `tenantgate-bench-${process.pid}-${auth}-${store?.prefix ?? ''}${store?.autoPipelining ?? 'mem'}${store?.full ? '-full' : ''}${store?.metricsOff ? '-nometrics' : ''}${store?.tracing ? `-trace${store.tracing.ratio}` : ''}${route.tag ? `-${route.tag}` : ''}.yaml`);
    // The full pipeline: an access line per request (to /dev/null) and a usage event per request to a Redis stream.
    const spoolDir = join(tmpdir(), `tenantgate-bench-${process.pid}-spool-${(store?.prefix ?? '').replace(/\W/g, '')}`);
    if (store?.full) tempDirs.push(spoolDir); // removed at exit
    // Every other scenario keeps the metrics on (the default); `metricsOff` turns the last of the three off: observability's baseline.
    const observability =
      (store?.full ? `usage: { spoolDir: "${spoolDir}", sinks: [{ type: redis-stream, stream: "bench:usage", maxLen: 100000 }] }\n` : '') + (store?.metricsOff ? 'metrics: { enabled: false }\n' : '') +
      (store?.tracing ? `tracing: { otlp: { url: "http://127.0.0.1:${store.tracing.sinkPort}/v1/traces" }, sampleRatio: ${store.tracing.ratio} }\n` : '');
    configFiles.push(file);
    writeFileSync(
      file,
      `listen: { host: 127.0.0.1, port: ${port}${route.tls ? `, http2: true, tls: { certFile: "${route.tls.cert}", keyFile: "${route.tls.key}" }` : ''} }
admin: { host: 127.0.0.1, port: ${adminPort} }
logging: { level: ${store?.full ? 'info' : 'warn'} }
${observability}${store ? `store: { redis: "redis://127.0.0.1:${store.port}", keyPrefix: "${store.prefix ?? ''}bench${store.autoPipelining ? 'p' : ''}:", autoPipelining: ${store.autoPipelining}, commandTimeoutMs: 200 }` : ''}
plans: { basic: ${store ? (store.plan ?? LIMITED_PLAN) : '{}'} }
${
  route.tenancy
    ? `tenants: [{ id: bench, plan: basic, hosts: [127.0.0.1] }, { id: other, plan: basic }]
tenancy: { select: [host], hostPattern: "{tenant}.app.bench" }
roles: { reader: [bench:read] }`
    : 'tenants: [{ id: bench, plan: basic }]'
}
apiKeys: [{ id: ak_bench, tenant: bench${store?.plan === NAMED_PLAN ? ', project: p1' : ''}, hash: "${apiKey.hash}", scopes: [bench:read] }]
jwt:
  issuers:
    - { issuer: "https://issuer.bench/", audience: bench, keys: [${JSON.stringify(jwk)}], algorithms: [ES256]${route.tenancy ? ', membershipsClaim: orgs' : ''} }
routes:
  - name: bench
    match: { pathPrefix: / }
    upstream: http://127.0.0.1:${route.upstreamPort ?? upstream.port}
    auth: [${auth}]
${auth === 'none' ? '' : '    permission: bench:read\n'}${route.maxBodyBytes ? `    maxBodyBytes: ${route.maxBodyBytes}\n` : ''}`,
    );
    return file;
  };
  const tenantgate = async (name, auth, headers, store = null, route = {}) => {
    const port = await freePort();
    const adminPort = await freePort();
    const file = configFor(auth, port, adminPort, store, route);
    // The admin port is scraped around the limited scenarios' fixed-rate runs (tenantgate_limit_wait_seconds), where it has metrics.
    // A TLS data port does not answer the readiness poll's plain fetch: the admin port (opened just before it) does.
    return { ...(await startServer(name, [join(ROOT, 'dist/main.js'), 'serve', '-c', file], 0, route.tls ? adminPort : port)), port, headers, redisPort: store?.port, redisPid: store?.pid, adminPort: store && !store.metricsOff ? adminPort : undefined };
  };
  const redis = has('redis-server') ? await startRedis() : null;
  const fullStore = redis === null ? null : { port: redis.port, pid: redis.child.pid, autoPipelining: false, prefix: 'full:', full: true };
  /** The metrics-off row's store. */
  const offStore = redis === null ? null : { port: redis.port, pid: redis.child.pid, autoPipelining: false, prefix: 'off:', metricsOff: true };
  let otlpSink = null;
  const traced = (ratio) => async (n) => {
    otlpSink ??= startServer('otlp-sink', [join(HERE, 'servers/otlp-sink.js')], 1);
    const tracing = { ratio, sinkPort: (await otlpSink).port };
    return tenantgate(n, 'apiKey', { 'x-api-key': apiKey.key }, { ...fullStore, prefix: `trace${ratio}:`, tracing });
  };
  const nginx = NGINX ? nginxStarter({ startServer, freePort, tempDirs }) : null;
  if (!NGINX) process.stderr.write('bench: nginx is not on PATH, no nginx rows (optional: apt-get install nginx)\n');
  // [name, start]: started lazily so that `--only` starts only what it runs.
  const all = [
    ['direct', async () => ({ ...upstream, name: 'direct' })],
    ['http-proxy-3', () => startServer('http-proxy-3', [join(HERE, 'servers/bare-http-proxy-3.js'), String(upstream.port)], 0)],
    ['undici', () => startServer('undici', [join(HERE, 'servers/bare-undici.js'), String(upstream.port)], 0)],
    ...(nginx ? [['nginx', (n) => nginx(n, upstream.port)]] : []),
    ['tenantgate (auth none)', (n) => tenantgate(n, 'none', {})],
    ['tenantgate (API key)', (n) => tenantgate(n, 'apiKey', { 'x-api-key': apiKey.key })],
    ['tenantgate (JWT)', (n) => tenantgate(n, 'jwt', { authorization: `Bearer ${jwt}` })],
    ['tenantgate (JWT with memberships + host selection)', (n) => tenantgate(n, 'jwt', { authorization: `Bearer ${memberJwt}` }, null, { tenancy: true, tag: 'tenancy' })],
    ...(redis === null
      ? []
      : [
          ['tenantgate (API key + Redis limits)', (n) => tenantgate(n, 'apiKey', { 'x-api-key': apiKey.key }, { port: redis.port, pid: redis.child.pid, autoPipelining: false })],
          [TENANT_RATE_ONLY, (n) => tenantgate(n, 'apiKey', { 'x-api-key': apiKey.key }, { port: redis.port, pid: redis.child.pid, autoPipelining: false, prefix: 'rate:', plan: TENANT_RATE_PLAN })],
          [THREE_NAMED, (n) => tenantgate(n, 'apiKey', { 'x-api-key': apiKey.key }, { port: redis.port, pid: redis.child.pid, autoPipelining: false, prefix: 'named:', plan: NAMED_PLAN })],
          // The full pipeline with its observability off: what observability's cost is measured against. Beside the full pipeline, so each round runs them back to back.
          [OBSERVABILITY_OFF, (n) => tenantgate(n, 'apiKey', { 'x-api-key': apiKey.key }, offStore)],
          ['tenantgate (full pipeline)', (n) => tenantgate(n, 'apiKey', { 'x-api-key': apiKey.key }, fullStore)],
          ...TRACED.map(({ ratio, name }) => [name, traced(ratio)]),
          ['tenantgate (… auto-pipelining on)', (n) => tenantgate(n, 'apiKey', { 'x-api-key': apiKey.key }, { port: redis.port, pid: redis.child.pid, autoPipelining: true })],
        ]),
    ...h2Scenarios({ startServer, tenantgate, upstream, fullStore, apiKeyHeaders: { 'x-api-key': apiKey.key }, tempDirs, tempFile, HERE, connections: CONNECTIONS }),
    ...largeBodyScenarios({ startServer, tenantgate, nginx, fullStore, apiKeyHeaders: { 'x-api-key': apiKey.key }, tempFile, HERE, ROOT, durationS: Math.max(2, Math.round(DURATION_S / 2)) }),
  ];
  const only = args.only?.split(',').map((x) => x.trim()) ?? null;
  const skipped = args.skip?.split(',').map((x) => x.trim()) ?? [];
  // --quick stays under a minute: it leaves out the auto-pipelining variant (checks are batched per turn anyway), the metrics-off one,
  // nginx and the large-body scenarios (unless --only names them).
  const skip = (name) =>
    args.quick && only === null && (name === 'tenantgate (… auto-pipelining on)' || name === OBSERVABILITY_OFF || name === 'nginx' || name.startsWith(LARGE) || TRACED.some((t) => t.name === name));
  // Started together (in the table's order): a --quick run spends less of its minute waiting for start-ups.
  const startedAt = Date.now();
  const scenarios = await Promise.all(all.filter(([name]) => !skip(name) && (only === null || only.some((o) => name.includes(o))) && !skipped.some((o) => name.includes(o))).map(([name, start]) => start(name)));
  process.stderr.write(`bench: ${scenarios.length} scenarios' servers ready in ${((Date.now() - startedAt) / 1000).toFixed(1)} s\n`);
  for (const s of scenarios) await (s.check ? s.check() : check(`http://127.0.0.1:${s.port}/bench`, s.headers, s.body ?? null));

  process.stderr.write(`bench: ${WRK ? 'wrk' : 'autocannon'}, ${CONNECTIONS} connections, ${ROUNDS} rounds × ${DURATION_S}s, ${TASKSET ? 'server on CPU 0, load + upstream on CPU 1' : 'no pinning'}\n`);
  // Warm-up (JIT, pools, keep-alive). --quick warms up only tenantgate's servers: it is a smoke run, and has a minute.
  for (const s of scenarios) if (!args.quick || s.name.startsWith('tenantgate')) await measure(s, 1);
  const samples = new Map(scenarios.map((s) => [s.name, []]));
  for (let round = 1; round <= ROUNDS; round++) {
    for (const s of inRoundOrder(scenarios, round)) {
      const m = await measure(s, s.durationS ?? DURATION_S);
      samples.get(s.name).push(m);
      process.stderr.write(`  round ${round} ${s.name}: ${Math.round(m.rps)} req/s${m.errors > 0 ? `, ${m.errors} errors${m.errorKinds ? ` (${m.errorKinds})` : ''}` : ''}\n`);
    }
  }

  // Latency below saturation: the API-key scenarios at one fixed rate, half of
  // what the limited one sustained above (interleaved and repeated too). The
  // full pipeline runs there too: at an equal rate, its proxy CPU per request
  // next to the limited one's is what metrics + access log + usage events cost
  // the proxy itself, free of how the max-throughput rounds share CPU 1.
  const FIXED = ['tenantgate (API key)', 'tenantgate (API key + Redis limits)', 'tenantgate (full pipeline)', OBSERVABILITY_OFF, TENANT_RATE_ONLY, THREE_NAMED];
  const fixedScenarios = scenarios.filter((s) => FIXED.includes(s.name));
  const saturated = median(samples.get(FIXED[1])?.map((m) => m.rps) ?? samples.get(FIXED[0])?.map((m) => m.rps) ?? []);
  const halfRate = Number.isFinite(saturated) ? Math.round(saturated / 2) : NaN;
  const fixedSamples = new Map(fixedScenarios.map((s) => [s.name, []]));
  if (Number.isFinite(halfRate)) {
    process.stderr.write(`  fixed rate: ${halfRate} req/s (half of ${Math.round(saturated)})\n`);
    // --quick: one fixed-rate round (the whole smoke run stays within a minute, build included).
    for (let round = 1; round <= (args.quick ? 1 : ROUNDS); round++) {
      for (const s of inRoundOrder(fixedScenarios, round)) {
        const m = await measure(s, DURATION_S, halfRate);
        fixedSamples.get(s.name).push(m);
        process.stderr.write(`  round ${round} ${s.name} @ ${halfRate}/s: ${Math.round(m.rps)} req/s, p50 ${m.p50.toFixed(2)} ms, p99 ${m.p99.toFixed(2)} ms\n`);
      }
    }
  }

  const rows = scenarios.map((s) => {
    const ms = samples.get(s.name);
    return {
      scenario: s.name,
      rps: median(ms.map((m) => m.rps)),
      p50Ms: median(ms.map((m) => m.p50)),
      p99Ms: median(ms.map((m) => m.p99)),
      p999Ms: median(ms.map((m) => m.p999)),
      cpuUsPerReq: median(ms.map((m) => m.cpuUsPerReq)),
      peakRssMb: peakRssMb(s.child.pid),
      durationS: s.durationS ?? DURATION_S,
      requestBodyBytes: s.bodyBytes ?? 0,
      requestBodyMBps: s.bodyBytes ? (median(ms.map((m) => m.rps)) * s.bodyBytes) / 1e6 : NaN,
      errors: ms.reduce((a, m) => a + m.errors, 0),
      redisLimitCallsPerReq: median(ms.map((m) => m.redisLimitCallsPerReq)),
      redisCpuUsPerReq: median(ms.map((m) => m.redisCpuUsPerReq)),
      redisInnerCmdsPerReq: median(ms.map((m) => m.redisInnerCmdsPerReq)),
      limitWait: pooledLimitWait(ms.map((m) => m.limitWait)),
      samples: ms.map((m) => Math.round(m.rps)),
    };
  });
  const by = Object.fromEntries(rows.map((r) => [r.scenario, r]));
  const rpsOf = (name) => by[name]?.rps ?? NaN;
  const ratios = {
    'tenantgate / http-proxy-3': rpsOf('tenantgate (auth none)') / rpsOf('http-proxy-3'),
    'tenantgate / undici': rpsOf('tenantgate (auth none)') / rpsOf('undici'),
    'tenantgate / direct': rpsOf('tenantgate (auth none)') / rpsOf('direct'),
    'tenantgate / nginx': rpsOf('tenantgate (auth none)') / rpsOf('nginx'),
    'undici / http-proxy-3': rpsOf('undici') / rpsOf('http-proxy-3'),
    'API key / auth none': rpsOf('tenantgate (API key)') / rpsOf('tenantgate (auth none)'),
    'JWT / auth none': rpsOf('tenantgate (JWT)') / rpsOf('tenantgate (auth none)'),
    'API key + Redis limits / API key': rpsOf('tenantgate (API key + Redis limits)') / rpsOf('tenantgate (API key)'),
    'full pipeline / http-proxy-3': rpsOf('tenantgate (full pipeline)') / rpsOf('http-proxy-3'),
    'full pipeline / undici': rpsOf('tenantgate (full pipeline)') / rpsOf('undici'),
    'full pipeline / direct': rpsOf('tenantgate (full pipeline)') / rpsOf('direct'),
    'full pipeline / nginx': rpsOf('tenantgate (full pipeline)') / rpsOf('nginx'),
    'full pipeline / limits with metrics off (observability on / off: metrics + access log + usage events)': rpsOf('tenantgate (full pipeline)') / rpsOf(OBSERVABILITY_OFF),
    'full pipeline / API key + Redis limits (access log + usage events)': rpsOf('tenantgate (full pipeline)') / rpsOf('tenantgate (API key + Redis limits)'),
    ...Object.fromEntries(TRACED.map(({ name }) => [`${name.slice('tenantgate ('.length, -1)} / full pipeline`, rpsOf(name) / rpsOf('tenantgate (full pipeline)')])),
    'auto-pipelining on / off': rpsOf('tenantgate (… auto-pipelining on)') / rpsOf('tenantgate (API key + Redis limits)'),
    ...largeBodyRatios(rpsOf),
    ...h2Ratios(rpsOf),
  };
  /** `of(a's measurement, b's)` round by round (same run, the same round), from `runs`: samples or fixedSamples. */
  const roundByRound = (runs, a, b, of) => {
    const x = runs.get(a);
    const y = runs.get(b);
    return x && y ? x.map((m, i) => of(m, y[i])) : [];
  };
  const perRound = (a, b) => roundByRound(samples, a, b, (m, n) => m.rps / n.rps);
  const limitRatios = perRound('tenantgate (API key + Redis limits)', 'tenantgate (API key)');

  const fixedRows = fixedScenarios.map((s) => {
    const ms = fixedSamples.get(s.name);
    return {
      scenario: s.name,
      targetRps: halfRate,
      rps: median(ms.map((m) => m.rps)),
      p50Ms: median(ms.map((m) => m.p50)),
      p99Ms: median(ms.map((m) => m.p99)),
      p999Ms: median(ms.map((m) => m.p999)),
      p99Samples: ms.map((m) => m.p99),
      cpuUsPerReq: median(ms.map((m) => m.cpuUsPerReq)),
      redisLimitCallsPerReq: median(ms.map((m) => m.redisLimitCallsPerReq)),
      limitWait: pooledLimitWait(ms.map((m) => m.limitWait)),
      errors: ms.reduce((a, m) => a + m.errors, 0),
    };
  });
  const fixedOff = fixedRows.find((r) => r.scenario === FIXED[0]);
  const fixedOn = fixedRows.find((r) => r.scenario === FIXED[1]);
  const addedP99 = fixedOn && fixedOff ? fixedOn.p99Ms - fixedOff.p99Ms : NaN;
  // Per round: limits-on p99 minus the limits-off p99 of the same round.
  const addedP99Rounds = roundByRound(fixedSamples, FIXED[1], FIXED[0], (on, off) => on.p99 - off.p99);
  const fixedFull = fixedRows.find((r) => r.scenario === 'tenantgate (full pipeline)');
  // Observability's cost to the proxy itself: against the same proxy with all of it off (else with only the metrics left on).
  const fixedBase = fixedRows.find((r) => r.scenario === OBSERVABILITY_OFF) ?? fixedOn;
  const fixedCpuRatio = fixedBase && fixedFull ? fixedBase.cpuUsPerReq / fixedFull.cpuUsPerReq : NaN;
  // The headline comparisons round by round, each with its median's 95 % CI: what a target is judged on when the ratios of medians swing.
  const pairedValues = {
    'API key + Redis limits / API key': limitRatios,
    'full pipeline / limits with metrics off (observability on / off)': perRound('tenantgate (full pipeline)', OBSERVABILITY_OFF),
    'full pipeline / API key + Redis limits': perRound('tenantgate (full pipeline)', 'tenantgate (API key + Redis limits)'),
    'full pipeline / http-proxy-3': perRound('tenantgate (full pipeline)', 'http-proxy-3'),
    ...Object.fromEntries(TRACED.map(({ name }) => [`${name.slice('tenantgate ('.length, -1)} / full pipeline`, perRound(name, 'tenantgate (full pipeline)')])),
    'full pipeline / undici': perRound('tenantgate (full pipeline)', 'undici'),
    'tenantgate (auth none) / http-proxy-3': perRound('tenantgate (auth none)', 'http-proxy-3'),
    [`${H2}: full pipeline / bare node:http2 passthrough`]: perRound(`${H2}: tenantgate (full pipeline)`, `${H2}: bare node:http2 passthrough`),
    'at half saturation: p99 added by the limits, ms': addedP99Rounds,
    'at half saturation: proxy CPU per request, limits with metrics off / full pipeline': roundByRound(fixedSamples, OBSERVABILITY_OFF, 'tenantgate (full pipeline)', (off, full) => off.cpuUsPerReq / full.cpuUsPerReq),
    'at half saturation: proxy CPU per request, limits / full pipeline': roundByRound(fixedSamples, FIXED[1], 'tenantgate (full pipeline)', (on, full) => on.cpuUsPerReq / full.cpuUsPerReq),
    // Issue #29's target: at most 1.10, Redis calls per request staying <= 1 (the fixed-rate table's EVALSHA/req column).
    'at half saturation: proxy CPU per request, three named limits / tenant rate only': roundByRound(fixedSamples, THREE_NAMED, TENANT_RATE_ONLY, (named, rate) => named.cpuUsPerReq / rate.cpuUsPerReq),
  };
  const paired = Object.fromEntries(
    Object.entries(pairedValues)
      .filter(([, values]) => values.length > 0)
      .map(([name, values]) => [name, { ...medianWithCi(values), values }]),
  );

  const f = (x, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '–');
  const getRows = rows.filter((r) => r.requestBodyBytes === 0);
  let table = '';
  if (getRows.length > 0) {
    table +=
      '| scenario | req/s (median) | p50 ms | p99 ms | p99.9 ms | proxy CPU µs/req | peak RSS MB | Redis EVALSHA/req | requests/EVALSHA | commands in scripts/req | Redis CPU µs/req | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n';
  }
  for (const r of getRows) {
    table += `| ${r.scenario} | ${f(r.rps)} | ${f(r.p50Ms, 2)} | ${f(r.p99Ms, 2)} | ${f(r.p999Ms, 2)} | ${r.scenario === 'direct' ? '(upstream) ' : ''}${f(r.cpuUsPerReq, 1)} | ${f(r.peakRssMb, 0)} | ${f(r.redisLimitCallsPerReq, 3)} | ${f(1 / r.redisLimitCallsPerReq, 1)} | ${f(r.redisInnerCmdsPerReq, 2)} | ${f(r.redisCpuUsPerReq, 1)} | ${r.errors} |\n`;
  }
  table += largeBodyTable(rows.filter((r) => r.requestBodyBytes > 0), f);
  table += '\n| ratio (same run) | value |\n|---|---:|\n';
  for (const [k, v] of Object.entries(ratios)) if (Number.isFinite(v)) table += `| ${k} | ${f(v, 2)}× |\n`;
  if (limitRatios.length > 0) table += `| … limits on / off, per round | ${limitRatios.map((x) => f(x, 2)).join(', ')} |\n`;
  if (fixedRows.length > 0) {
    table += `\n| at a fixed ${f(halfRate)} req/s (half of the limited scenario's max) | achieved req/s | p50 ms | p99 ms | p99.9 ms | proxy CPU µs/req | Redis EVALSHA/req | requests/EVALSHA | limit checks waiting > 0.1 ms | limit wait p99 | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n`;
    for (const r of fixedRows) {
      const w = r.limitWait;
      const share = w.checks > 0 ? `${f(w.waitedShare * 100, 3)} % of ${w.checks}` : '–';
      const p99 = w.checks > 0 ? `≤ ${f(w.p99BoundMs, w.p99BoundMs < 1 ? 2 : 1)} ms` : '–';
      table += `| ${r.scenario} | ${f(r.rps)} | ${f(r.p50Ms, 2)} | ${f(r.p99Ms, 2)} | ${f(r.p999Ms, 2)} | ${f(r.cpuUsPerReq, 1)} | ${f(r.redisLimitCallsPerReq, 3)} | ${f(1 / r.redisLimitCallsPerReq, 1)} | ${share} | ${p99} | ${r.errors} |\n`;
    }
    if (Number.isFinite(addedP99)) table += `\np99 added by the limits at half saturation: ${f(addedP99, 2)} ms (median p99s); per round: ${addedP99Rounds.map((x) => f(x, 2)).join(', ')} ms\n`;
    if (Number.isFinite(fixedCpuRatio)) table += `\nAt that rate, proxy CPU per request: (${fixedBase.scenario.slice('tenantgate ('.length, -1)}) / (full pipeline) = ${f(fixedCpuRatio, 2)}× — the throughput ratio the full pipeline would have if the proxy alone were the bottleneck.\n`;
  }
  if (Object.keys(paired).length > 0) {
    table += `\n| per round (same round, adjacent runs) | median | 95 % CI of the median | rounds |\n|---|---:|---:|---:|\n`;
    for (const [name, p] of Object.entries(paired)) {
      const d = name.endsWith('ms') ? 2 : 3;
      const unit = name.endsWith('ms') ? '' : '×';
      table += `| ${name} | ${f(p.median, d)}${unit} | ${Number.isFinite(p.lo) ? `${f(p.lo, d)} – ${f(p.hi, d)} (${f(p.coverage * 100, 1)} %)` : '– (6 rounds or more)'} | ${p.rounds} |\n`;
    }
  }
  if (rows.length > 0) process.stdout.write(`\n${table}`);
  else table = '';

  // --scale: the scale scenarios, after the regular ones (whose servers are stopped first; their RSS is read above).
  let scale;
  if (args.scale) {
    const stopServer = (s) => {
      s.child.kill('SIGKILL');
      children.delete(s.child);
    };
    for (const s of scenarios) if (s.child !== upstream.child) stopServer(s);
    const { runScale } = await import('./scale.js');
    scale = await runScale({
      ROOT, ROUNDS, DURATION_S, QUICK: args.quick, upstream, tempDirs,
      startServer, startRedis, freePort, measure, check, median, f, peakRssMb, execFileSync, stopServer,
      log: (m) => process.stderr.write(`${m}\n`),
    });
    process.stdout.write(scale.table);
    table += scale.table;
  }

  const now = new Date().toISOString();
  const result = {
    at: now,
    machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version, loadGenerator: WRK ? 'wrk' : 'autocannon', pinned: TASKSET },
    settings: { connections: CONNECTIONS, rounds: ROUNDS, durationS: DURATION_S, quick: args.quick, only: args.only ?? null, skip: args.skip ?? null, scale: args.scale, responseBytes: 100, largeBodyBytes: LARGE_BODY_BYTES },
    rows,
    ratios,
    limitRatiosPerRound: limitRatios,
    paired,
    halfSaturation: { targetRps: halfRate, rows: fixedRows, addedP99Ms: addedP99, addedP99MsPerRound: addedP99Rounds, limitsOverFullCpuPerReq: fixedCpuRatio },
    ...(scale === undefined ? {} : { scale: scale.json }),
    table,
  };
  mkdirSync(join(HERE, 'results'), { recursive: true });
  writeFileSync(join(HERE, 'results', `${now.replace(/[:.]/g, '-')}.json`), `${JSON.stringify(result, null, 2)}\n`);
  // A partial run (`--only`, `--skip`) is kept with its timestamp but is not "the latest".
  if (only === null && skipped.length === 0) writeFileSync(join(HERE, 'results', 'latest.json'), `${JSON.stringify(result, null, 2)}\n`);
}
