#!/usr/bin/env node
// `npm run soak [-- --minutes 5 --rps 150]` (not in CI): the proxy under mixed traffic for N minutes
// while Redis is killed and restarted and the config is reloaded (SIGHUP), all on loopback. Reports,
// after a warm-up and again at the end: RSS and open file descriptors of the proxy (/proc), leases held
// (whether the concurrency-limited tenant can still admit its full concurrency), in-flight requests,
// and usage events against requests sent — and whether each stayed flat. Exit 1 when one did not.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { configYaml, makeKeys, metrics, processStats, PROBE_CONCURRENCY, Redis, rewriteConfig, startProxy, startUpstream } from './system.js';
import { drive, probeLeases, Tally } from './traffic.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: '5' },
    rps: { type: 'string', default: '150' },
    workers: { type: 'string', default: '8' },
    'max-requests': { type: 'string', default: '2000000' },
    'keep-dir': { type: 'boolean', default: false },
  },
});
const minutes = Number(args.minutes);
const rps = Number(args.rps);
if (!(minutes > 0 && minutes <= 24 * 60) || !(rps > 0 && rps <= 5000)) {
  console.error('usage: npm run soak -- [--minutes 0<m<=1440] [--rps 0<r<=5000] [--workers n] [--max-requests n] [--keep-dir]');
  process.exit(2);
}
const durationMs = minutes * 60_000;
const warmupMs = Math.min(20_000, durationMs / 5);
/** Faults: about five Redis restarts and ten reloads a run, never more often than every 10 s / 5 s. */
const redisEveryMs = Math.max(10_000, durationMs / 5);
const reloadEveryMs = Math.max(5_000, durationMs / 10);

const log = (...a) => console.log(new Date().toISOString().slice(11, 19), ...a);
const dir = mkdtempSync(join(tmpdir(), 'tg-soak-'));
const redis = await Redis.start();
const upstream = await startUpstream();
const keys = makeKeys();
const configFile = join(dir, 'tenantgate.yaml');
let generation = 0;
const configOptions = () => ({ dir, redisUrl: redis.url, upstream: upstream.url, keys, generation });
writeFileSync(configFile, configYaml(configOptions()));
const proxy = await startProxy(ROOT, configFile);
// However the soak ends (an error, Ctrl-C), it leaves no proxy or redis-server behind.
process.once('exit', () => {
  proxy.child.kill('SIGKILL');
  redis.child?.kill('SIGKILL');
});
process.once('SIGINT', () => process.exit(130));
log(`proxy pid ${proxy.child.pid} on :${proxy.port}, redis :${redis.port}; ${minutes} min at ~${rps} req/s`);

const tally = new Tally();
let pausedFlag = false;
let stopAt = Date.now() + warmupMs;
const run = (extra) => drive({ port: () => proxy.port, keys, workers: Number(args.workers), rps, maxRequests: Number(args['max-requests']), until: () => Date.now() >= stopAt, paused: () => pausedFlag, tally, ...extra });

async function settle() {
  const until = Date.now() + 10_000;
  while (Date.now() < until && ((await metrics(proxy.adminPort)).inflight > 0 || upstream.tunnels() > 0)) await sleep(50);
}

/** A quiet moment: traffic paused and drained, then everything read. */
async function snapshot(label) {
  pausedFlag = true;
  await settle();
  await sleep(500); // one usage flush interval and more
  const m = await metrics(proxy.adminPort);
  const requests = tally.requests;
  const stats = processStats(proxy.child.pid);
  const leases = await probeLeases(proxy.port, upstream, keys.probe.key, tally);
  const snap = { label, ...stats, leasesAdmitted: leases, inflight: m.inflight, upstreamTunnels: upstream.tunnels(), requests, ...m.events, reloadsOk: m.reloadsOk, reloadsFailed: m.reloadsFailed };
  pausedFlag = false;
  log(label, JSON.stringify(snap));
  return snap;
}

await run();
const start = await snapshot('start');
const timeline = [];
stopAt = Date.now() + durationMs;
const faults = (async () => {
  let nextRedis = Date.now() + redisEveryMs / 2;
  let nextReload = Date.now() + reloadEveryMs / 2;
  let nextSample = Date.now() + 15_000;
  while (Date.now() < stopAt - 3000) {
    const now = Date.now();
    if (now >= nextRedis) {
      await redis.kill();
      log('redis killed');
      await sleep(2000);
      await redis.up();
      log('redis restarted');
      nextRedis += redisEveryMs;
    } else if (now >= nextReload) {
      generation++;
      rewriteConfig(configFile, configOptions());
      proxy.child.kill('SIGHUP');
      nextReload += reloadEveryMs;
    } else if (now >= nextSample) {
      const m = await metrics(proxy.adminPort).catch(() => ({ inflight: NaN }));
      timeline.push({ at: Math.round((now - (stopAt - durationMs)) / 1000), ...processStats(proxy.child.pid), inflight: m.inflight, requests: tally.requests });
      nextSample += 15_000;
    } else await sleep(100);
  }
})();
await Promise.all([run(), faults]);
const end = await snapshot('end');

// SIGTERM flushes every usage event; then the file holds one line per request the proxy saw.
proxy.child.kill('SIGTERM');
const exitCode = await proxy.exited;
const fileEvents = readFileSync(join(dir, 'usage.ndjson'), 'utf8').split('\n').filter((l) => l.startsWith('{')).length;
await upstream.close();
await redis.kill();

const rssGrowthMb = Math.round((end.rssMb - start.rssMb) * 10) / 10;
const verdicts = [
  ['RSS (MB)', start.rssMb, end.rssMb, end.rssMb <= start.rssMb * 1.25 + 20, `growth ${rssGrowthMb} MB (flat: within 25 % + 20 MB)`],
  ['open fds', start.fds, end.fds, end.fds - start.fds <= 8, 'flat: within 8'],
  [`leases: admitted of ${PROBE_CONCURRENCY}`, start.leasesAdmitted, end.leasesAdmitted, start.leasesAdmitted === PROBE_CONCURRENCY && end.leasesAdmitted === PROBE_CONCURRENCY, 'flat: all admitted, none held'],
  ['in flight (gauge)', start.inflight, end.inflight, end.inflight === 0, 'flat: 0 when idle'],
  ['upstream tunnels open', start.upstreamTunnels, end.upstreamTunnels, end.upstreamTunnels === 0, 'flat: 0 when idle'],
  ['usage events (file) − requests', start.fileSent - start.requests, end.fileSent - end.requests, Math.abs(end.fileSent - end.requests) <= Math.abs(start.fileSent - start.requests) + 2, 'flat: the lag does not grow'],
  ['redis-stream spooled − replayed', start.streamSpooled - start.streamReplayed, end.streamSpooled - end.streamReplayed, end.streamSpooled - end.streamReplayed <= 0, 'flat: backlog replayed'],
];
const eventsExact = fileEvents === tally.requests;
console.log('\n| measure | start | end | flat | rule |\n|---|---|---|---|---|');
for (const [name, a, b, ok, rule] of verdicts) console.log(`| ${name} | ${a} | ${b} | ${ok ? 'yes' : 'NO'} | ${rule} |`);
console.log(`\nrequests sent ${tally.requests} (${JSON.stringify(tally.byOutcome)})`);
console.log(`usage events in the file after SIGTERM: ${fileEvents} — ${eventsExact ? 'one per request' : `MISMATCH (${fileEvents - tally.requests})`}`);
console.log(`redis-stream sink: sent ${end.streamSent}, spooled ${end.streamSpooled}, replayed ${end.streamReplayed}; reloads ok ${end.reloadsOk}, failed ${end.reloadsFailed}; proxy error lines ${proxy.errorLines}${proxy.lastError ? ` (last: ${proxy.lastError})` : ''}; exit ${exitCode}`);
console.log(`timeline (s, RSS MB, fds, in flight, requests): ${timeline.map((t) => `${t.at}:${t.rssMb}/${t.fds}/${t.inflight}/${t.requests}`).join(' ')}`);
if (!args['keep-dir']) rmSync(dir, { recursive: true, force: true });
else console.log(`kept ${dir}`);
process.exit(verdicts.every((v) => v[3]) && eventsExact && exitCode === 0 ? 0 : 1);
