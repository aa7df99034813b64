#!/usr/bin/env node
// `node bench/lab/proxy-instructions.js [--warmup 40000] [--window 8000] [--windows 6] [--compare <root>]` (after `npm run build`)
//
// The limits proxy against the full pipeline (access log + usage events to a
// Redis stream) for the WHOLE proxy, by counting instead of timing: each
// proxy runs under valgrind's callgrind, V8 single-threaded, the two side by
// side (one per CPU). After `--warmup` requests, instrumentation is zeroed and
// dumped around each of `--windows` windows of `--window` requests
// (autocannon, 10 connections), and each window's instructions are split by
// function name into V8's compiler, its GC and the rest (the program).
//
// Why: a timed A/B on a noisy machine cannot resolve a few percent. Under
// valgrind a request takes ~50× longer, so V8's clock-driven heuristics fire
// far more often per request than natively; the proxies therefore run with
// `--no-memory-reducer --no-flush-bytecode`, and the table gives the median
// of the "clean" windows (V8's compiler < 3 k and GC < 10 k instructions per
// request, as tiering still goes on late), and of all windows for comparison.
// Slow (~100 requests/s per proxy, ~15–20 minutes with the defaults); blind to
// cache misses and system calls.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { generateApiKey } from '../../dist/auth/api-key-format.js';
import { freePort, has, limitedProxyConfig, median, startThrowawayRedis, TASKSET } from '../standalone.js';

const BENCH = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: {
    warmup: { type: 'string', default: '40000' },
    window: { type: 'string', default: '8000' },
    windows: { type: 'string', default: '6' },
    compare: { type: 'string' },
  },
});
if (!has('valgrind') || !has('callgrind_control')) {
  process.stderr.write('bench/lab/proxy-instructions.js needs valgrind (apt-get install valgrind)\n');
  process.exit(1);
}

const CLEAN = { compiler: 3000, gc: 10000 };
const COMPILER = /v8::internal::(compiler|maglev|turboshaft|baseline|interpreter)::|v8::internal::(Compiler|Parser|Scanner|BytecodeGenerator|OptimizedCompilationJob)\b/;
const GC = /v8::internal::(\w*Heap\w*|Scaveng\w*|\w*Mark(ing|Compact)\w*|Sweeper|\w*Evacuat\w*|RememberedSet\w*|RecordMigrated\w*|GCTracer|MemoryAllocator|\w*Space|SlotSet|FreeList\w*|MemoryChunk|BodyDescriptor\w*|RootScavengeVisitor|CppMarkingState)\b|heap::base::|IterateObjectCache/;

const children = new Set();
const killAll = () => children.forEach((c) => c.kill('SIGKILL'));
process.on('exit', killAll);

/** A callgrind dump's instructions: total, V8's compiler, its GC (each function's exclusive cost, by name). */
function readDump(file) {
  const text = execFileSync('callgrind_annotate', ['--threshold=100', file], { encoding: 'utf8', maxBuffer: 1 << 28 });
  const total = Number(/^\s*([\d,]+) \S+\s+PROGRAM TOTALS/m.exec(text)[1].replaceAll(',', ''));
  let compiler = 0;
  let gc = 0;
  for (const m of text.matchAll(/^\s*([\d,]+) \([ \d.]+%\)\s+(.*)$/gm)) {
    const ir = Number(m[1].replaceAll(',', ''));
    if (COMPILER.test(m[2])) compiler += ir;
    else if (GC.test(m[2])) gc += ir;
  }
  return { total, compiler, gc };
}

async function load(port, headers, amount) {
  const r = await autocannon({ url: `http://127.0.0.1:${port}/bench`, headers, connections: 10, amount });
  if (r.non2xx || r.errors || r.timeouts) throw new Error(`load: ${r.non2xx} non-2xx, ${r.errors} errors, ${r.timeouts} timeouts`);
  return r.requests.total;
}

/** One proxy under callgrind on `cpu`, through its warm-up and windows; per window, instructions per request. */
async function countProxy(name, root, full, cpu, { redisPort, upstreamPort, dir }) {
  const key = generateApiKey({ env: 'live', id: 'ak_bench' });
  const [port, adminPort] = [await freePort(), await freePort()];
  const config = join(dir, `${name}.yaml`);
  // As bench/run.js's limits and full-pipeline scenarios.
  writeFileSync(config, limitedProxyConfig({ port, adminPort, redisPort, upstreamPort, keyHash: key.hash, prefix: name, full, spoolDir: join(dir, `${name}-spool`), commandTimeoutMs: 5000 }));
  const out = join(dir, `${name}.cg`);
  // --single-threaded: V8 compiles and collects on this thread, so that work is counted in the window it happens in.
  // --no-memory-reducer, --no-flush-bytecode: the clock-driven full GCs and the bytecode ageing they drive, which
  // under valgrind's slower clock fire far more often per request than natively (the header above).
  const node = [process.execPath, '--single-threaded', '--no-memory-reducer', '--no-flush-bytecode', join(root, 'dist/main.js'), 'serve', '-c', config];
  const valgrind = ['valgrind', '--tool=callgrind', '--smc-check=all-non-file', `--callgrind-out-file=${out}`, '--dump-instr=no', ...node];
  const child = spawn(TASKSET ? 'taskset' : valgrind[0], TASKSET ? ['-c', String(cpu), ...valgrind] : valgrind.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(child);
  let stderr = '';
  child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-2000)));
  const headers = { 'x-api-key': key.key };
  for (let started = Date.now(); ; ) {
    const ok = await fetch(`http://127.0.0.1:${port}/bench`, { headers }).then((r) => r.arrayBuffer().then(() => r.status === 200), () => false);
    if (ok) break;
    if (child.exitCode !== null || Date.now() - started > 300_000) throw new Error(`${name} did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  await load(port, headers, Number(args.warmup));
  const windows = [];
  for (let w = 1; w <= Number(args.windows); w++) {
    // callgrind_control acts when the process next runs instrumented code; the load keeps it running.
    execFileSync('callgrind_control', ['--zero', String(child.pid)], { stdio: 'ignore' });
    const requests = await load(port, headers, Number(args.window));
    execFileSync('callgrind_control', ['--dump', String(child.pid)], { stdio: 'ignore' });
    const dump = readdirSync(dir).filter((f) => f.startsWith(`${name}.cg.`)).sort((a, b) => Number(a.split('.').pop()) - Number(b.split('.').pop())).at(-1);
    const d = readDump(join(dir, dump));
    const per = { total: d.total / requests, compiler: d.compiler / requests, gc: d.gc / requests };
    per.clean = per.compiler < CLEAN.compiler && per.gc < CLEAN.gc;
    windows.push(per);
    const k = (x) => Math.round(x).toLocaleString('en');
    process.stderr.write(`  ${name} window ${w}: ${k(per.total)} instructions/request (V8 compiler ${k(per.compiler)}, GC ${k(per.gc)})${per.clean ? ', clean' : ''}\n`);
  }
  child.kill('SIGKILL');
  return windows;
}

const dir = mkdtempSync(join(tmpdir(), 'tg-proxy-instructions-'));
try {
  const { port: redisPort, child: redis } = await startThrowawayRedis('bench/lab/proxy-instructions.js');
  children.add(redis);
  const upstream = spawn(process.execPath, [join(BENCH, 'servers/upstream.js')], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(upstream);
  const upstreamPort = await new Promise((res, rej) => {
    upstream.stdout.once('data', (d) => res(JSON.parse(String(d)).port));
    upstream.once('exit', (code) => rej(new Error(`upstream exited with ${code}`)));
  });
  const builds = [['this build', join(BENCH, '..')], ...(args.compare ? [['compare', resolve(args.compare)]] : [])];
  process.stderr.write(`bench/lab/proxy-instructions.js: ${args.warmup} requests of warm-up, then ${args.windows} windows of ${args.window}\n`);
  const rows = [];
  for (const [build, root] of builds) {
    const tag = build === 'this build' ? 'this' : 'compare';
    const shared = { redisPort, upstreamPort, dir };
    const [limits, full] = await Promise.all([countProxy(`${tag}-limits`, root, false, 0, shared), countProxy(`${tag}-full`, root, true, 1, shared)]);
    rows.push({ build, root, limits, full });
  }
  const k = (x) => (x === undefined ? '–' : Math.round(x).toLocaleString('en'));
  const clean = (ws) => ws.filter((w) => w.clean).map((w) => w.total);
  process.stdout.write(`\n| whole proxy, instructions/request (callgrind, ${args.warmup} warm-up, ${args.windows} × ${args.window}) | limits: clean windows (of all) | full pipeline: clean windows (of all) | full − limits | limits / full |\n|---|---:|---:|---:|---:|\n`);
  for (const { build, root, limits, full } of rows) {
    const [l, f] = [median(clean(limits)), median(clean(full))];
    const lAll = median(limits.map((w) => w.total));
    const fAll = median(full.map((w) => w.total));
    const ratio = l === undefined || f === undefined ? '– (no clean window: more --warmup or --windows)' : `${(l / f).toFixed(3)}×`;
    process.stdout.write(`| ${build} (${root}) | ${k(l)} (${clean(limits).length}/${limits.length}; all ${k(lAll)}) | ${k(f)} (${clean(full).length}/${full.length}; all ${k(fAll)}) | ${l === undefined || f === undefined ? '–' : k(f - l)} | ${ratio} |\n`);
  }
} finally {
  killAll();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
