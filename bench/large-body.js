// The large-body scenarios: what streaming a request body costs.
// Every request is a 1 MiB POST on a keep-alive connection, through each proxy
// to an upstream that reads the whole body before it answers its 100 bytes
// (bench/servers/upstream.js; its x-bench-body-bytes is checked before the
// rounds, so a proxy that dropped or buffered-and-lost the body fails the run).
// The body is in memory once: wrk formats its request once per thread (Lua
// wrk.body), autocannon builds one request buffer per connection.
// These scenarios have their own upstream process, so the 100-byte rows'
// upstream CPU and RSS stay theirs. Their rounds last half as long as the
// others' (at least 2 s; `durationS`): a 1 MiB request is ~40× the work of a
// 100-byte one, a few thousand per round are enough, and the full run stays
// within its 10 minutes.
import { join } from 'node:path';

export const LARGE = '1 MiB POST';
export const LARGE_BODY_BYTES = 2 ** 20;
/** tenantgate's route gets a limit (what a deployment sets), above the body: the byte counting runs and never refuses. */
const MAX_BODY_BYTES = 2 * LARGE_BODY_BYTES;

const WRK_SCRIPT = `wrk.method = "POST"
wrk.body = string.rep("x", ${LARGE_BODY_BYTES})
wrk.headers["Content-Type"] = "application/octet-stream"
`;

/**
 * [name, start] entries like run.js's, from its helpers: `startServer`,
 * `tenantgate(name, auth, headers, store, route)`, `nginx(name,
 * upstreamPort)` or null, `fullStore` (the full pipeline's store, or null
 * without Redis), `apiKeyHeaders`, `tempFile(name, text)`, `HERE`,
 * `durationS` (each round's).
 */
export function largeBodyScenarios(h) {
  const body = Buffer.alloc(LARGE_BODY_BYTES, 'x');
  let script = null;
  let upstream = null;
  const up = () => (upstream ??= h.startServer(`upstream (${LARGE})`, [join(h.HERE, 'servers/upstream.js')], 1));
  const post = (s, name) => ({ ...s, name, body, bodyBytes: LARGE_BODY_BYTES, durationS: h.durationS, wrkScript: (script ??= h.tempFile('post-1mib.lua', WRK_SCRIPT)) });
  const bare = (file) => async (n) => post(await h.startServer(n, [join(h.HERE, 'servers', file), String((await up()).port)], 0), n);
  const route = async () => ({ upstreamPort: (await up()).port, maxBodyBytes: MAX_BODY_BYTES, tag: 'post' });
  const tenantgate = (store) => async (n) => post(await h.tenantgate(n, 'apiKey', h.apiKeyHeaders, store, await route()), n);
  return [
    [`${LARGE}: direct`, async (n) => post(await up(), n)],
    [`${LARGE}: http-proxy-3`, bare('bare-http-proxy-3.js')],
    [`${LARGE}: undici`, bare('bare-undici.js')],
    ...(h.nginx ? [[`${LARGE}: nginx`, async (n) => post(await h.nginx(n, (await up()).port), n)]] : []),
    [`${LARGE}: tenantgate (API key)`, tenantgate(null)],
    ...(h.fullStore ? [[`${LARGE}: tenantgate (full pipeline)`, tenantgate({ ...h.fullStore, prefix: 'fullpost:' })]] : []),
  ];
}

/** The headline ratios of the large-body case (NaN where a scenario did not run). */
export function largeBodyRatios(rpsOf) {
  const tg = rpsOf(`${LARGE}: tenantgate (API key)`);
  const full = rpsOf(`${LARGE}: tenantgate (full pipeline)`);
  return {
    [`${LARGE}: tenantgate (API key) / http-proxy-3`]: tg / rpsOf(`${LARGE}: http-proxy-3`),
    [`${LARGE}: tenantgate (API key) / undici`]: tg / rpsOf(`${LARGE}: undici`),
    [`${LARGE}: tenantgate (API key) / direct`]: tg / rpsOf(`${LARGE}: direct`),
    [`${LARGE}: tenantgate (API key) / nginx`]: tg / rpsOf(`${LARGE}: nginx`),
    [`${LARGE}: full pipeline / http-proxy-3`]: full / rpsOf(`${LARGE}: http-proxy-3`),
    [`${LARGE}: full pipeline / undici`]: full / rpsOf(`${LARGE}: undici`),
    [`${LARGE}: full pipeline / API key`]: full / tg,
  };
}

/** The large-body rows' own table: request-body throughput instead of the Redis columns. */
export function largeBodyTable(rows, f) {
  if (rows.length === 0) return '';
  let table = `\n| ${LARGE} (keep-alive, ${rows[0].durationS} s rounds) | req/s (median) | request body MB/s | p50 ms | p99 ms | p99.9 ms | proxy CPU µs/req | peak RSS MB | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n`;
  for (const r of rows) {
    table += `| ${r.scenario} | ${f(r.rps)} | ${f(r.requestBodyMBps)} | ${f(r.p50Ms, 2)} | ${f(r.p99Ms, 2)} | ${f(r.p999Ms, 2)} | ${r.scenario.endsWith('direct') ? '(upstream) ' : ''}${f(r.cpuUsPerReq, 1)} | ${f(r.peakRssMb, 0)} | ${r.errors} |\n`;
  }
  return table;
}
