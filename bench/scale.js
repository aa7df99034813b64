// `npm run bench -- --scale`: the scale scenarios (issues #8 and #6), run after
// the regular ones by bench/run.js (which passes its helpers in: same pinning,
// load generator, interleaved rounds and medians).
//
// 1. Keys stored in Redis vs keys in YAML (issue #8): 100,000 API key records
//    and their tenant written to a throwaway Redis THROUGH THE REGISTRY MODULE
//    (dist/registry/redis-registry.js: the same hashes, key names and create
//    script as the admin API). `(key in Redis)` authenticates with one of them
//    (warm: the same key again and again), `(key in YAML)` with a key from the
//    file; both run against the same store and the same unlimited plan.
//    Then the cold-key cost: N never-used stored keys, one request each, at a
//    fixed small concurrency, against N requests with the warm key, and the
//    Redis commands per cold key (INFO commandstats deltas).
// 2. 10,000 tenants and 100,000 API keys in the YAML (issue #6), requests
//    spread over the keys with a Zipf distribution (s = 1, keys ranked in a
//    random order), against one tenant and one key through the same
//    per-request key picker: throughput ratio and RSS.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { generateApiKey } from '../dist/auth/api-key-format.js';
import { RedisRegistry } from '../dist/registry/redis-registry.js';

const KEYS = 100_000;
const TENANTS = 10_000;
const ZIPF_S = 1;
const COLD_CONCURRENCY = 10;

const rssMb = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Every command's call count (INFO commandstats), minus INFO itself (the bench's own probes). */
function commandStats(execFileSync, port) {
  const out = execFileSync('redis-cli', ['-p', String(port), 'info', 'commandstats'], { encoding: 'utf8' });
  const calls = {};
  for (const m of out.matchAll(/^cmdstat_([\w|]+):calls=(\d+)/gm)) if (m[1] !== 'info') calls[m[1]] = Number(m[2]);
  return calls;
}
function diff(a, b) {
  const out = {};
  for (const [k, v] of Object.entries(b)) if (v - (a[k] ?? 0) > 0) out[k] = v - (a[k] ?? 0);
  return out;
}
const total = (calls) => Object.values(calls).reduce((x, y) => x + y, 0);

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** Zipf(s) over n ranks: the cumulative weights, for a binary search per pick. */
function zipfCdf(n, s) {
  const cdf = new Float64Array(n);
  let acc = 0;
  for (let i = 0; i < n; i++) cdf[i] = acc += 1 / (i + 1) ** s;
  return cdf;
}
function zipfPicker(keys, s) {
  const cdf = zipfCdf(keys.length, s);
  const sum = cdf[cdf.length - 1];
  return () => {
    const r = Math.random() * sum;
    let lo = 0;
    let hi = cdf.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid] < r) lo = mid + 1;
      else hi = mid;
    }
    return keys[lo];
  };
}

/**
 * A wrk script picking X-API-Key per request, Zipf(s) over the keys in
 * `keysFile` (one a line, rank = line number). The one-key baseline uses the
 * same script with a one-line file, so wrk's per-request Lua cost is the same.
 */
function wrkZipfScript(dir, name, keysFile, s) {
  const file = join(dir, `${name}.lua`);
  writeFileSync(
    file,
    `local keys = {}
for line in io.lines("${keysFile}") do keys[#keys + 1] = line end
local n = #keys
local cdf = {}
local sum = 0
for i = 1, n do sum = sum + 1 / (i ^ ${s}); cdf[i] = sum end
local headers = {}
math.randomseed(os.time())
request = function()
  local r = math.random() * sum
  local lo, hi = 1, n
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < r then lo = mid + 1 else hi = mid end
  end
  headers["X-API-Key"] = keys[lo]
  return wrk.format(nil, nil, headers)
end
`,
  );
  return file;
}

function shuffle(xs) {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [xs[i], xs[j]] = [xs[j], xs[i]];
  }
  return xs;
}

/**
 * `count` requests, one per key from `keyAt(i)`, `COLD_CONCURRENCY` at a time
 * on a keep-alive pool (connections opened before the clock starts).
 * Client-side latency, ms, each request timed from its send to its last body byte.
 */
async function fixedRequests(port, count, keyAt, warmKey) {
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: COLD_CONCURRENCY, pipelining: 1 });
  const one = async (key) => {
    const t0 = process.hrtime.bigint();
    const { statusCode, body } = await pool.request({ path: '/bench', method: 'GET', headers: { 'x-api-key': key } });
    const bytes = (await body.arrayBuffer()).byteLength;
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    return { ms, ok: statusCode === 200 && bytes === 100, statusCode };
  };
  try {
    await Promise.all(Array.from({ length: COLD_CONCURRENCY }, () => one(warmKey))); // open the connections
    const lat = [];
    let errors = 0;
    let firstError = null;
    let next = 0;
    await Promise.all(
      Array.from({ length: COLD_CONCURRENCY }, async () => {
        while (next < count) {
          const r = await one(keyAt(next++));
          lat.push(r.ms);
          if (!r.ok) {
            errors++;
            firstError ??= r.statusCode;
          }
        }
      }),
    );
    if (errors > 0) throw new Error(`${errors} of ${count} requests failed (first: status ${firstError}): are the records in the registry's format?`);
    lat.sort((a, b) => a - b);
    return { p50: percentile(lat, 50), p99: percentile(lat, 99), mean: lat.reduce((a, b) => a + b, 0) / lat.length };
  } finally {
    await pool.close();
  }
}

export async function runScale(h) {
  const { startServer, startRedis, freePort, measure, check, median, f, peakRssMb, execFileSync, ROUNDS, DURATION_S, QUICK, upstream, stopServer, log } = h;
  const COLD_N = QUICK ? 500 : 2000;
  // Configs in their own directory: tenantgate watches its config file's DIRECTORY, and a
  // 12 MB config re-read on every unrelated change in /tmp would be noise.
  const dir = mkdtempSync(join(tmpdir(), 'tenantgate-bench-scale-'));
  h.tempDirs.push(dir);

  const t0 = Date.now();
  const keys = Array.from({ length: KEYS }, (_, i) => generateApiKey({ env: 'live', id: `ak_s${String(i).padStart(6, '0')}` }));
  const yamlKey = generateApiKey({ env: 'live', id: 'ak_yaml' });
  log(`scale: ${KEYS} keys generated in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  const routeYaml = `routes:
  - name: bench
    match: { pathPrefix: / }
    upstream: http://127.0.0.1:${upstream.port}
    auth: [apiKey]
    permission: bench:read
`;
  const writeConfig = (name, port, body) => {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(file, `listen: { host: 127.0.0.1, port: ${port} }\nadmin: { host: 127.0.0.1, port: 0 }\nlogging: { level: warn }\n${body}${routeYaml}`);
    return file;
  };
  const serve = async (name, body, headers, extra = {}) => {
    const port = await freePort();
    const file = writeConfig(name.replace(/\W+/g, '-'), port, body);
    const started = Date.now();
    const s = await startServer(name, [join(h.ROOT, 'dist/main.js'), 'serve', '-c', file], 0, port, 180_000);
    return { ...s, headers, startupS: (Date.now() - started) / 1000, startRssMb: rssMb(s.child.pid), ...extra };
  };

  /** Interleaved rounds of `scenarios` (after a 1 s warm-up each; the order alternates), with the Redis commands per request when `redisPort` is set. */
  const rounds = async (scenarios, redisPort = null) => {
    for (const s of scenarios) await measure(s, 1);
    const samples = new Map(scenarios.map((s) => [s.name, []]));
    for (let round = 1; round <= ROUNDS; round++) {
      // A B, B A, A B …: two scenarios compared, so neither is always the one measured first.
      for (const s of round % 2 ? scenarios : [...scenarios].reverse()) {
        const c0 = redisPort === null ? null : commandStats(execFileSync, redisPort);
        const m = await measure(s, DURATION_S);
        m.redisCmdsPerReq = c0 === null ? NaN : total(diff(c0, commandStats(execFileSync, redisPort))) / m.requests;
        samples.get(s.name).push(m);
        log(`  scale round ${round} ${s.name}: ${Math.round(m.rps)} req/s`);
      }
    }
    return scenarios.map((s) => {
      const ms = samples.get(s.name);
      return {
        scenario: s.name,
        rps: median(ms.map((m) => m.rps)),
        p50Ms: median(ms.map((m) => m.p50)),
        p99Ms: median(ms.map((m) => m.p99)),
        p999Ms: median(ms.map((m) => m.p999)),
        cpuUsPerReq: median(ms.map((m) => m.cpuUsPerReq)),
        redisCmdsPerReq: median(ms.map((m) => m.redisCmdsPerReq)),
        startupS: s.startupS,
        startRssMb: s.startRssMb,
        endRssMb: rssMb(s.child.pid),
        peakRssMb: peakRssMb(s.child.pid),
        errors: ms.reduce((a, m) => a + m.errors, 0),
        samples: ms.map((m) => Math.round(m.rps)),
      };
    });
  };
  const perRound = (rows, a, b) => {
    const x = rows.find((r) => r.scenario === a).samples;
    const y = rows.find((r) => r.scenario === b).samples;
    return x.map((v, i) => v / y[i]);
  };
  const spread = (xs) => (xs.length === 0 ? '–' : `${f(Math.min(...xs), 2)}–${f(Math.max(...xs), 2)}`);

  // ---- 1. keys stored in Redis vs keys in YAML --------------------------------------------
  const redis = await startRedis();
  const PREFIX = 'scale:';
  const registry = new RedisRegistry({ redis: `redis://127.0.0.1:${redis.port}`, keyPrefix: PREFIX, commandTimeoutMs: 5000 });
  await registry.ready(5000);
  const now = new Date().toISOString();
  // The records exactly as the admin API writes them (src/admin/tenants.ts, keys.ts insertKey).
  if (!(await registry.createTenant({ id: 'scale', plan: 'open', status: 'active', hosts: [], overrides: {}, createdAt: now, updatedAt: now }))) throw new Error('scale tenant exists');
  const t1 = Date.now();
  for (let i = 0; i < KEYS; i += 2000) {
    const created = await Promise.all(
      keys.slice(i, i + 2000).map((k) => registry.createKey({ id: k.id, tenant: 'scale', scopes: ['bench:read'], env: 'live', hash: k.hash, revoked: false, createdAt: now, updatedAt: now })),
    );
    if (created.includes(false)) throw new Error('a key record already existed');
  }
  await registry.close();
  const dbsize = Number(execFileSync('redis-cli', ['-p', String(redis.port), 'dbsize'], { encoding: 'utf8' }));
  const usedMemory = Number(/used_memory:(\d+)/.exec(execFileSync('redis-cli', ['-p', String(redis.port), 'info', 'memory'], { encoding: 'utf8' }))[1]) / 2 ** 20;
  log(`scale: ${KEYS} key records + 1 tenant written through RedisRegistry in ${((Date.now() - t1) / 1000).toFixed(1)} s (${dbsize} Redis keys, ${usedMemory.toFixed(0)} MB)`);

  const store = `store: { redis: "redis://127.0.0.1:${redis.port}", keyPrefix: "${PREFIX}", commandTimeoutMs: 200 }\nplans: { open: {} }\n`;
  const warmKey = keys[0];
  const A = 'tenantgate (100k keys in Redis, key in Redis)';
  const B = 'tenantgate (100k keys in Redis, key in YAML)';
  const a = await serve(A, `${store}tenants: []\napiKeys: []\n`, { 'x-api-key': warmKey.key }, { redisPort: redis.port, redisPid: redis.child.pid });
  // The same store, registry and tenant id; the YAML's tenant shadows the registry's (the file wins).
  const b = await serve(
    B,
    `${store}tenants: [{ id: scale, plan: open }]\napiKeys: [{ id: ak_yaml, tenant: scale, hash: "${yamlKey.hash}", scopes: [bench:read] }]\n`,
    { 'x-api-key': yamlKey.key },
    { redisPort: redis.port, redisPid: redis.child.pid },
  );
  await check(`http://127.0.0.1:${a.port}/bench`, a.headers);
  await check(`http://127.0.0.1:${b.port}/bench`, b.headers);
  // Another stored key (never used in the rounds nor the cold-key batches).
  await check(`http://127.0.0.1:${a.port}/bench`, { 'x-api-key': keys[KEYS - 1].key });
  const redisRows = await rounds([a, b], redis.port);
  const redisRatios = perRound(redisRows, A, B);

  // Cold keys: never used before (index 1 .. KEYS-2: 0 is the warm key, KEYS-1 was checked above).
  const cold = [];
  let nextCold = 1;
  for (let round = 1; round <= ROUNDS; round++) {
    const warm = await fixedRequests(a.port, COLD_N, () => warmKey.key, warmKey.key);
    const s0 = commandStats(execFileSync, redis.port);
    const base = nextCold;
    const c = await fixedRequests(a.port, COLD_N, (i) => keys[base + i].key, warmKey.key);
    nextCold += COLD_N;
    const s1 = commandStats(execFileSync, redis.port);
    await sleep(5500); // lastUsedAt is written in batches every 5 s, off the request path
    const s2 = commandStats(execFileSync, redis.port);
    const during = diff(s0, s1);
    const withDeferred = diff(s0, s2);
    const per = (calls) => Object.fromEntries(Object.entries(calls).map(([k, v]) => [k, v / COLD_N]));
    cold.push({ warm, cold: c, perColdKeyDuring: per(during), perColdKeyWithDeferred: per(withDeferred) });
    log(`  scale cold round ${round}: cold p50 ${c.p50.toFixed(2)} p99 ${c.p99.toFixed(2)} ms, warm p50 ${warm.p50.toFixed(2)} p99 ${warm.p99.toFixed(2)} ms, per cold key ${JSON.stringify(per(during))} (+ deferred ${JSON.stringify(per(withDeferred))})`);
  }
  const redisRssA = { start: a.startRssMb, end: rssMb(a.child.pid), peak: peakRssMb(a.child.pid) };
  stopServer(a);
  stopServer(b);
  stopServer({ child: redis.child });

  // ---- 2. 10,000 tenants and 100,000 keys in the YAML -------------------------------------
  const ranked = shuffle([...keys]); // Zipf rank unrelated to the key's tenant
  const keysFile = join(dir, 'zipf-keys.txt');
  writeFileSync(keysFile, `${ranked.map((k) => k.key).join('\n')}\n`);
  const oneKeyFile = join(dir, 'one-key.txt');
  writeFileSync(oneKeyFile, `${yamlKey.key}\n`);
  let big = 'plans: { open: {} }\ntenants:\n';
  for (let t = 0; t < TENANTS; t++) big += `  - { id: t${String(t).padStart(5, '0')}, plan: open }\n`;
  big += 'apiKeys:\n';
  for (let i = 0; i < KEYS; i++) big += `  - { id: ${keys[i].id}, tenant: t${String(i % TENANTS).padStart(5, '0')}, hash: "${keys[i].hash}", scopes: [bench:read] }\n`;
  const C = `tenantgate (${TENANTS / 1000}k tenants, ${KEYS / 1000}k keys in YAML, Zipf)`;
  const D = 'tenantgate (1 tenant, 1 key in YAML, same picker)';
  const c = await serve(C, big, {}, { wrkScript: wrkZipfScript(dir, 'zipf-100k', keysFile, ZIPF_S), pickKey: zipfPicker(ranked.map((k) => k.key), ZIPF_S) });
  const configMb = Buffer.byteLength(big) / 2 ** 20;
  log(`scale: ${configMb.toFixed(1)} MB config served after ${c.startupS.toFixed(1)} s, RSS ${c.startRssMb.toFixed(0)} MB (peak so far ${peakRssMb(c.child.pid).toFixed(0)} MB)`);
  const d = await serve(D, `plans: { open: {} }\ntenants: [{ id: t00000, plan: open }]\napiKeys: [{ id: ak_yaml, tenant: t00000, hash: "${yamlKey.hash}", scopes: [bench:read] }]\n`, {}, {
    wrkScript: wrkZipfScript(dir, 'zipf-1', oneKeyFile, ZIPF_S),
    pickKey: () => yamlKey.key,
  });
  for (const k of [ranked[0], ranked[1], ranked[KEYS - 1], keys[TENANTS - 1]]) await check(`http://127.0.0.1:${c.port}/bench`, { 'x-api-key': k.key });
  await check(`http://127.0.0.1:${d.port}/bench`, { 'x-api-key': yamlKey.key });
  const configRows = await rounds([c, d]);
  const configRatios = perRound(configRows, C, D);
  stopServer(c);
  stopServer(d);

  // ---- tables -----------------------------------------------------------------------------
  const byName = (rows, n) => rows.find((r) => r.scenario === n);
  const ratioA = byName(redisRows, A).rps / byName(redisRows, B).rps;
  const ratioC = byName(configRows, C).rps / byName(configRows, D).rps;
  const med = (get) => median(cold.map(get));
  const coldCmds = {};
  const coldCmdsDeferred = {};
  for (const r of cold) {
    for (const [k, v] of Object.entries(r.perColdKeyDuring)) (coldCmds[k] ??= []).push(v);
    for (const [k, v] of Object.entries(r.perColdKeyWithDeferred)) (coldCmdsDeferred[k] ??= []).push(v);
  }
  // A command missing from a round counted 0 there (a lastUsedAt flush falls inside the batch in some rounds only).
  const cmdMedians = (m) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, median([...v, ...Array(cold.length - v.length).fill(0)])]));
  const fmtCmds = (m) =>
    Object.entries(m)
      .map(([k, v]) => `${k} ${f(v, 3)}`)
      .join(', ') || '–';
  const coldSummary = {
    n: COLD_N,
    concurrency: COLD_CONCURRENCY,
    rounds: cold.length,
    coldP50Ms: med((r) => r.cold.p50),
    coldP99Ms: med((r) => r.cold.p99),
    warmP50Ms: med((r) => r.warm.p50),
    warmP99Ms: med((r) => r.warm.p99),
    redisCommandsPerColdKey: cmdMedians(coldCmds),
    redisCommandsPerColdKeyWithDeferred: cmdMedians(coldCmdsDeferred),
    perRound: cold,
  };

  const row = (r) =>
    `| ${r.scenario} | ${f(r.rps)} | ${r.samples.join(', ')} | ${f(r.p50Ms, 2)} | ${f(r.p99Ms, 2)} | ${f(r.p999Ms, 2)} | ${f(r.cpuUsPerReq, 1)} | ${f(r.redisCmdsPerReq, 4)} | ${f(r.startupS, 1)} | ${f(r.startRssMb)} / ${f(r.endRssMb)} / ${f(r.peakRssMb)} | ${r.errors} |\n`;
  let table = `\n### Scale (\`--scale\`)\n\n| scenario | req/s (median) | req/s per round | p50 ms | p99 ms | p99.9 ms | proxy CPU µs/req | Redis cmds/req | startup s | RSS MB: ready / after / peak | errors |\n|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n`;
  for (const r of [...redisRows, ...configRows]) table += row(r);
  table += `\n| ratio (same run) | median | per round (spread) | target |\n|---|---:|---|---|\n`;
  table += `| key in Redis / key in YAML (warm, ${KEYS / 1000}k stored keys) | ${f(ratioA, 3)}× | ${redisRatios.map((x) => f(x, 3)).join(', ')} (${spread(redisRatios)}) | ≥ 0.95× (issue #8) |\n`;
  table += `| ${TENANTS / 1000}k tenants + ${KEYS / 1000}k keys (Zipf s=${ZIPF_S}) / 1 tenant | ${f(ratioC, 3)}× | ${configRatios.map((x) => f(x, 3)).join(', ')} (${spread(configRatios)}) | ≥ 0.85× (issue #6) |\n`;
  table += `| peak RSS, ${KEYS / 1000}k keys in YAML (after load) | ${f(byName(configRows, C).peakRssMb)} MB (${f(byName(configRows, C).endRssMb)} MB) | 1 tenant: ${f(byName(configRows, D).peakRssMb)} MB | < 150 MB (issue #6) |\n`;
  table += `\n| cold-key cost (${COLD_N} requests × ${cold.length} rounds, ${COLD_CONCURRENCY} at a time, client-side) | p50 ms | p99 ms | p50 per round | p99 per round |\n|---|---:|---:|---|---|\n`;
  table += `| ${COLD_N} never-used stored keys, one request each | ${f(coldSummary.coldP50Ms, 2)} | ${f(coldSummary.coldP99Ms, 2)} | ${cold.map((r) => f(r.cold.p50, 2)).join(', ')} | ${cold.map((r) => f(r.cold.p99, 2)).join(', ')} |\n`;
  table += `| ${COLD_N} requests with one warm stored key | ${f(coldSummary.warmP50Ms, 2)} | ${f(coldSummary.warmP99Ms, 2)} | ${cold.map((r) => f(r.warm.p50, 2)).join(', ')} | ${cold.map((r) => f(r.warm.p99, 2)).join(', ')} |\n`;
  table += `\nRedis commands per cold key (medians of ${cold.length} rounds): during the batch ${fmtCmds(coldSummary.redisCommandsPerColdKey)}; including the deferred \`lastUsedAt\` writes (the 5 s timer, off the request path; window +5.5 s) ${fmtCmds(coldSummary.redisCommandsPerColdKeyWithDeferred)}.\n`;

  return {
    table,
    json: {
      keys: KEYS,
      tenants: TENANTS,
      zipfS: ZIPF_S,
      redisKeys: {
        redisDbKeys: dbsize,
        redisUsedMemoryMb: usedMemory,
        rows: redisRows,
        ratio: ratioA,
        ratioPerRound: redisRatios,
        rssMbKeyInRedis: redisRssA,
        cold: coldSummary,
      },
      configScale: { configMb, rows: configRows, ratio: ratioC, ratioPerRound: configRatios },
    },
  };
}
