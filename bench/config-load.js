// `node bench/config-load.js [--keys N] [--tenants M] [--dist DIR] [--no-serve]`
// (after `npm run build`): what a big YAML config costs to load.
//
// Writes a config of M tenants and N API keys in the shape bench/scale.js
// serves (one flow map per line; default 10,000 tenants and 100,000 keys,
// 11.8 MB), then, each in a fresh process:
//
// 1. `load`: loadConfig() (parse, interpolate, validate, compile, verifiers)
//    timed, then a second loadConfig() of the same file while the first is
//    still referenced (what a reload does), then the first dropped. Printed:
//    load time, peak RSS (VmHWM) after the first load and after the reload,
//    heap retained by one config (after a full GC), RSS at the end.
// 2. `serve` (unless --no-serve): `node dist/main.js serve -c <file>` timed
//    from spawn to the admin port's /readyz answering 200, then requests with
//    10 of the keys (the proxy answers 502: no upstream, the key was
//    verified on the way), a SIGHUP reload of the same file, and VmHWM /
//    VmRSS of the server after each step (from /proc/<pid>/status).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i < 0 ? fallback : process.argv[i + 1];
};
const KEYS = Number(arg('--keys', 100_000));
const TENANTS = Number(arg('--tenants', Math.max(1, Math.round(KEYS / 10))));
const DIST = resolve(arg('--dist', join(ROOT, 'dist')));

/** The YAML of bench/scale.js's 100k-key scenario (header lines aside), and some of its plaintext keys. */
export async function scaleConfig({ keys, tenants, dataPort, adminPort, upstream, dist = DIST }) {
  const { generateApiKey } = await import(pathToFileURL(join(dist, 'auth/api-key-format.js')).href);
  const pad = (n, w) => String(n).padStart(w, '0');
  const parts = [
    `listen: { host: 127.0.0.1, port: ${dataPort} }\nadmin: { host: 127.0.0.1, port: ${adminPort} }\nlogging: { level: info }\nplans: { open: {} }\ntenants:\n`,
  ];
  for (let t = 0; t < tenants; t++) parts.push(`  - { id: t${pad(t, 5)}, plan: open }\n`);
  parts.push('apiKeys:\n');
  const sample = [];
  for (let i = 0; i < keys; i++) {
    const k = generateApiKey({ env: 'live', id: `ak_s${pad(i, 6)}` });
    if (i % Math.max(1, Math.floor(keys / 10)) === 0) sample.push(k.key);
    parts.push(`  - { id: ${k.id}, tenant: t${pad(i % tenants, 5)}, hash: "${k.hash}", scopes: [bench:read] }\n`);
  }
  parts.push(`routes:\n  - name: bench\n    match: { pathPrefix: / }\n    upstream: ${upstream}\n    auth: [apiKey]\n    permission: bench:read\n`);
  return { yaml: parts.join(''), sample };
}

const status = (pid) => {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)[1]) / 1024;
  return { hwm: kb('VmHWM'), rss: kb('VmRSS') };
};
const mb = (x) => `${x.toFixed(0)} MB`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const freePort = () =>
  new Promise((res) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });

/** In a child process: load, reload while the first is referenced, drop the first. */
const LOAD_CHILD = `
import { readFileSync } from 'node:fs';
const { loadConfig } = await import(process.argv[1]);
const file = process.argv[2];
const st = () => { const s = readFileSync('/proc/self/status', 'utf8'); const kb = (k) => Number(new RegExp(k + ':\\\\s+(\\\\d+)').exec(s)[1]) / 1024; return { hwm: kb('VmHWM'), rss: kb('VmRSS') }; };
const heap = () => { gc(); gc(); return process.memoryUsage().heapUsed / 2 ** 20; };
const heap0 = heap();
let t = performance.now();
let first = await loadConfig(file);
const loadMs = performance.now() - t;
const afterLoad = st();
const retained = heap() - heap0;
t = performance.now();
let second = await loadConfig(file, process.env, first);
const reloadMs = performance.now() - t;
const afterReload = st();
first = null;
const retainedAfterReload = heap() - heap0;
console.log(JSON.stringify({ keys: second.source.apiKeys.length, loadMs, reloadMs, afterLoad, afterReload, retained, retainedAfterReload, end: st() }));
`;

async function loadScenario(file) {
  const child = spawn(process.execPath, ['--expose-gc', '--input-type=module', '-e', LOAD_CHILD, pathToFileURL(join(DIST, 'config/load.js')).href, file], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const code = await new Promise((r) => child.on('exit', r));
  if (code !== 0) throw new Error(`load child exited ${code}`);
  return JSON.parse(out.trim().split('\n').pop());
}

async function serveScenario(file, dataPort, adminPort, sample, cwd) {
  const started = performance.now();
  const child = spawn(process.execPath, [join(DIST, 'main.js'), 'serve', '-c', file], { cwd, stdio: ['ignore', 'pipe', 'inherit'] });
  let log = '';
  child.stdout.on('data', (d) => (log += d));
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`serve exited ${child.exitCode}: ${log}`);
      const ok = await fetch(`http://127.0.0.1:${adminPort}/readyz`).then((r) => r.ok, () => false);
      if (ok) break;
      await sleep(20);
    }
    const readyS = (performance.now() - started) / 1000;
    const ready = status(child.pid);
    const codes = new Set();
    for (const key of sample) {
      const r = await fetch(`http://127.0.0.1:${dataPort}/bench`, { headers: { 'x-api-key': key } });
      codes.add(r.status);
      await r.arrayBuffer();
    }
    const afterRequests = status(child.pid);
    const reloads = () => (log.match(/config reloaded/g) ?? []).length;
    const t = performance.now();
    child.kill('SIGHUP');
    while (reloads() === 0) {
      if (performance.now() - t > 120_000) throw new Error('no reload within 120 s');
      await sleep(20);
    }
    const reloadS = (performance.now() - t) / 1000;
    const afterReload = status(child.pid);
    await sleep(3000);
    const settled = status(child.pid);
    return { readyS, ready, codes: [...codes], afterRequests, reloadS, afterReload, settled };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r() : child.on('exit', r)));
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dir = mkdtempSync(join(tmpdir(), 'tenantgate-config-load-'));
  try {
    const [dataPort, adminPort, upstreamPort] = [await freePort(), await freePort(), await freePort()];
    const { yaml, sample } = await scaleConfig({ keys: KEYS, tenants: TENANTS, dataPort, adminPort, upstream: `http://127.0.0.1:${upstreamPort}` });
    const file = join(dir, 'config.yaml');
    writeFileSync(file, yaml);
    console.log(`config: ${TENANTS} tenants, ${KEYS} API keys, ${(Buffer.byteLength(yaml) / 2 ** 20).toFixed(1)} MB (dist: ${DIST})`);
    const l = await loadScenario(file);
    console.log(
      `load:  loadConfig ${(l.loadMs / 1000).toFixed(2)} s, peak RSS ${mb(l.afterLoad.hwm)}, heap retained by one config ${mb(l.retained)}; ` +
        `reload (previous still referenced) ${(l.reloadMs / 1000).toFixed(2)} s, peak RSS ${mb(l.afterReload.hwm)}, heap retained after dropping the previous ${mb(l.retainedAfterReload)}, RSS at end ${mb(l.end.rss)}`,
    );
    if (!process.argv.includes('--no-serve')) {
      const s = await serveScenario(file, dataPort, adminPort, sample, dir);
      console.log(
        `serve: ready in ${s.readyS.toFixed(2)} s, RSS ${mb(s.ready.rss)} (peak ${mb(s.ready.hwm)}); after ${sample.length} requests (status ${s.codes.join(',')}) peak ${mb(s.afterRequests.hwm)}; ` +
          `SIGHUP reload ${s.reloadS.toFixed(2)} s, peak ${mb(s.afterReload.hwm)}, RSS ${mb(s.afterReload.rss)}, 3 s later ${mb(s.settled.rss)}`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
