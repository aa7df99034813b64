/**
 * SPEC §8 on the real binary (`node dist/main.js serve`, one child process per
 * test): health and readiness, the admin port's default bind, the SIGTERM
 * drain, and reloads by SIGHUP and by file change — a plain write, an atomic
 * rename, a Kubernetes ConfigMap symlink swap — with an invalid new config
 * rejected while the old one keeps serving. Every wait is a bounded poll.
 */
import { spawn } from 'node:child_process';
import { renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MAIN, spawnProxy, startUpstream, writeConfig, type SpawnedProxy, type Upstream } from '../helpers/servers.js';
import { RedisServer } from '../helpers/redis.js';
import { configMapVolume, logLines, publicRoute, reloads, sleep, tryConnect, until, within } from '../helpers/life-process.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function upstream(handler?: Parameters<typeof startUpstream>[0]): Promise<Upstream> {
  const u = await startUpstream(handler);
  cleanups.push(() => u.close());
  return u;
}

/** Status of a GET; bounded, so a poll never hangs on a request the upstream holds. */
const status = async (url: string) => (await fetch(url, { signal: AbortSignal.timeout(5000) })).status;
const statusIs = (url: string, expected: number) => async () => ((await status(url)) === expected ? true : undefined);

/**
 * Spawns `serve` on `configFile` and waits for an answer from the admin port
 * (so the process is past start-up, as an orchestrator would see it before
 * signalling it); the child is SIGKILLed after the test if it still runs.
 */
async function serve(configFile: string): Promise<SpawnedProxy> {
  const p = await spawnProxy('', {}, configFile);
  cleanups.push(() => p.stop('SIGKILL'));
  await until(statusIs(`${p.adminUrl}/healthz`, 200), 'the admin port to answer');
  return p;
}

const HEADER = 'listen: { host: 127.0.0.1, port: 0 }\nadmin: { host: 127.0.0.1, port: 0 }\n';

/** A config with these public routes ([name, prefix] pairs) to `up`, plus any extra top-level YAML. */
function configText(up: Upstream, routes: [string, string][], extra = ''): string {
  return `${HEADER}${extra}routes:\n${routes.map(([name, prefix]) => publicRoute(name, prefix, up.url)).join('')}`;
}

describe('health, readiness and the admin port', () => {
  it('/healthz and /readyz answer 200 and the admin port binds 127.0.0.1 by default', async () => {
    const up = await upstream();
    const p = await serve(writeConfig(`listen: { port: 0 }\nadmin: { port: 0 }\nroutes:\n${publicRoute('a', '/', up.url)}`));
    const listening = logLines(p.logs, 'tenantgate listening')[0] as unknown as { admin: AddressInfo; data: AddressInfo };
    expect(listening.admin.address).toBe('127.0.0.1');
    expect(listening.data.address).toBe('0.0.0.0');

    const health = await fetch(`${p.adminUrl}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${p.adminUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready' });
    expect(await status(`${p.url}/x`)).toBe(200);

    // Not reachable on any other interface of this machine.
    const external = Object.values(networkInterfaces())
      .flat()
      .find((i) => i !== undefined && i.family === 'IPv4' && !i.internal);
    if (external !== undefined) expect(await tryConnect(p.adminPort, external.address)).toBe('ECONNREFUSED');
  });

  it('/readyz is 503 while a `failureMode: closed` store is down, and 200 once it answers', async () => {
    const up = await upstream();
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));

    const p = await serve(writeConfig(configText(up, [['a', '/']], `store: { redis: "redis://127.0.0.1:${port}", failureMode: closed }\n`)));
    const down = await fetch(`${p.adminUrl}/readyz`);
    expect(down.status).toBe(503);
    // The registry lives in the same Redis: /readyz names it as well.
    expect(await down.json()).toEqual({ status: 'not_ready', reason: 'store_unavailable', degraded: ['registry_unavailable'] });
    expect((await fetch(`${p.adminUrl}/healthz`)).status).toBe(200);

    const redis = new RedisServer();
    redis.port = port;
    await redis.start();
    cleanups.push(() => redis.kill());
    await until(statusIs(`${p.adminUrl}/readyz`, 200), '/readyz to turn 200 once Redis is up', 15_000);
  });

  it('/readyz stays 200 with a `failureMode: open` store that is down', async () => {
    const up = await upstream();
    const p = await serve(writeConfig(configText(up, [['a', '/']], 'store: { redis: "redis://127.0.0.1:1", failureMode: open }\n')));
    expect(await status(`${p.adminUrl}/readyz`)).toBe(200);
  });
});

describe('signals during start-up', () => {
  it('a SIGHUP while the proxy waits for its store at start-up does not kill it', async () => {
    // A "Redis" that accepts connections and never answers: start-up then waits
    // (up to 3 s) for the store, a window in which a config reloader or an
    // operator may well send SIGHUP. Its first connection tells the test that
    // the proxy is in that window.
    const sockets = new Set<Socket>();
    const silentRedis = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => silentRedis.listen(0, '127.0.0.1', resolve));
    cleanups.push(async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => silentRedis.close(resolve));
    });
    const redisPort = (silentRedis.address() as AddressInfo).port;
    const configFile = writeConfig(`${HEADER}store: { redis: "redis://127.0.0.1:${redisPort}" }\nroutes:\n${publicRoute('a', '/', 'http://127.0.0.1:1')}`);
    const child = spawn(process.execPath, [MAIN, 'serve', '-c', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    cleanups.push(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));

    await until(() => (sockets.size > 0 ? true : undefined), 'the proxy to connect to its store', 20_000);
    expect(out, 'precondition: still starting (waiting for the store)').not.toContain('tenantgate listening');
    child.kill('SIGHUP');
    const outcome = await Promise.race([
      exited,
      until(() => (out.includes('tenantgate listening') ? 'listening' : undefined), 'the listening line', 15_000),
    ]);
    expect(outcome).toBe('listening');
  });
});

describe('signals while the modules load', () => {
  it('a SIGHUP while serve is still being imported is kept as a reload request, not fatal', async () => {
    // A module hook holds back the import of cli/serve.js (the proxy's whole module graph
    // loads behind it) for a second and says so on stderr: the window in which a SIGHUP
    // used to hit Node's default action and end the process.
    const dir = dirname(writeConfig(''));
    const hook = join(dir, `slow-serve-hook-${process.pid}.mjs`);
    writeFileSync(
      hook,
      `import { writeSync } from 'node:fs';
export async function load(url, context, next) {
  if (url.endsWith('/cli/serve.js')) {
    writeSync(2, 'loading serve\\n');
    await new Promise((r) => setTimeout(r, 1000));
  }
  return next(url, context);
}
`,
    );
    const register = join(dir, `slow-serve-register-${process.pid}.mjs`);
    writeFileSync(register, `import { register } from 'node:module';\nimport { pathToFileURL } from 'node:url';\nregister(pathToFileURL(${JSON.stringify(hook)}));\n`);
    cleanups.push(async () => {
      unlinkSync(hook);
      unlinkSync(register);
    });
    const up = await upstream();
    const configFile = writeConfig(configText(up, [['a', '/']]));
    const child = spawn(process.execPath, ['--import', register, MAIN, 'serve', '-c', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    cleanups.push(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));

    await until(() => (err.includes('loading serve') ? true : undefined), 'the hook to hold back cli/serve.js', 20_000);
    child.kill('SIGHUP');
    const outcome = await Promise.race([
      exited,
      until(() => (out.includes('tenantgate listening') ? 'listening' : undefined), 'the listening line', 15_000),
    ]);
    expect(outcome).toBe('listening');
    // The early SIGHUP is the reload it asked for, once the proxy is up.
    await until(() => (out.includes('"msg":"config reloaded"') ? true : undefined), 'the reload the early SIGHUP asked for', 10_000);
  });
});

describe('SIGTERM drain', () => {
  it('a slow in-flight request completes, /readyz turns 503, new connections are refused, exit 0', async () => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    // Answers about 1.5 s after the request arrived, and never before the test has looked at the drain.
    const up = await upstream((_req, res) => {
      void Promise.all([sleep(1500), released]).then(() => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('slow done');
      });
    });
    const p = await serve(writeConfig(configText(up, [['a', '/']], 'shutdownGraceMs: 10000\n')));
    const inflight = fetch(`${p.url}/slow`).then(async (r) => [r.status, await r.text()] as const);
    inflight.catch(() => {}); // awaited below; this only keeps an early failure from also reporting it unhandled
    await until(async () => (up.requests.length === 1 ? true : undefined), 'the upstream to receive the slow request');

    p.child.kill('SIGTERM');
    const notReady = await until(async () => {
      const r = await fetch(`${p.adminUrl}/readyz`);
      return r.status === 503 ? r.json() : undefined;
    }, '/readyz to turn 503');
    expect(notReady).toEqual({ status: 'not_ready', reason: 'shutting_down' });
    expect((await fetch(`${p.adminUrl}/healthz`)).status).toBe(200);
    expect(await tryConnect(p.port)).toBe('ECONNREFUSED');
    expect(p.child.exitCode).toBeNull();

    release();
    expect(await within(inflight, 10_000, 'the in-flight request')).toEqual([200, 'slow done']);
    expect(await within(p.exited, 15_000, 'exit after the drain')).toBe(0);
    expect(logLines(p.logs, 'shutdown requested')[0]).toMatchObject({ signal: 'SIGTERM' });
    expect(logLines(p.logs, 'draining')[0]).toMatchObject({ inflight: 1, graceMs: 10000 });
    expect(logLines(p.logs, 'grace period over')).toEqual([]);
    expect(logLines(p.logs, 'stopped')).toHaveLength(1);
  });

  it('a second SIGTERM during the drain does not cut the in-flight request', async () => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const up = await upstream((_req, res) => void released.then(() => res.end('slow done')));
    const p = await serve(writeConfig(configText(up, [['a', '/']], 'shutdownGraceMs: 10000\n')));
    const inflight = fetch(`${p.url}/slow`).then(async (r) => [r.status, await r.text()] as const);
    inflight.catch(() => {}); // awaited below
    await until(async () => (up.requests.length === 1 ? true : undefined), 'the upstream to receive the request');

    p.child.kill('SIGTERM');
    await until(statusIs(`${p.adminUrl}/readyz`, 503), '/readyz to turn 503');
    p.child.kill('SIGTERM');
    await sleep(300);
    release();
    expect(await within(inflight, 10_000, 'the in-flight request')).toEqual([200, 'slow done']);
    expect(await within(p.exited, 15_000, 'exit after the drain')).toBe(0);
  });

  it('SIGINT drains the same way and exits 0', async () => {
    const up = await upstream();
    const p = await serve(writeConfig(configText(up, [['a', '/']])));
    expect(await status(`${p.url}/x`)).toBe(200);
    p.child.kill('SIGINT');
    expect(await within(p.exited, 15_000, 'exit after SIGINT')).toBe(0);
    expect(logLines(p.logs, 'shutdown requested')[0]).toMatchObject({ signal: 'SIGINT' });
  });

  it('an upstream that never answers is cut after shutdownGraceMs and the process still exits 0', async () => {
    const up = await upstream(() => {});
    const p = await serve(writeConfig(configText(up, [['a', '/']], 'shutdownGraceMs: 500\n')));
    const inflight = fetch(`${p.url}/hang`).then(
      (r) => r.status,
      () => 'cut',
    );
    await until(async () => (up.requests.length === 1 ? true : undefined), 'the upstream to receive the request');
    p.child.kill('SIGTERM');
    expect(await within(p.exited, 15_000, 'exit once the grace period is over')).toBe(0);
    await within(inflight, 5000, 'the hanging request to end');
    expect(logLines(p.logs, 'grace period over')[0]).toMatchObject({ level: 40, inflight: 1 });
  });
});

describe('reload on SIGHUP', () => {
  it('SIGHUP re-reads the file and counts a successful reload', async () => {
    const up = await upstream();
    const p = await serve(writeConfig(configText(up, [['a', '/a']])));
    const before = await reloads(p.adminUrl, 'success');
    p.child.kill('SIGHUP');
    await until(async () => ((await reloads(p.adminUrl, 'success')) === before + 1 ? true : undefined), 'the reload to be counted');
    // The log line is written asynchronously (pino), so it may arrive just after the counter moves.
    await until(async () => (logLines(p.logs, 'config reloaded').length > 0 ? true : undefined), 'the reload log line');
    expect(logLines(p.logs, 'config reloaded')[0]).toMatchObject({ level: 30, routes: 1 });
    expect(await status(`${p.url}/a`)).toBe(200);
  });

  it('a new route works after the file is changed and SIGHUP sent', async () => {
    const up = await upstream();
    const file = writeConfig(configText(up, [['a', '/a']]));
    const p = await serve(file);
    expect(await status(`${p.url}/b`)).toBe(404);
    const before = await reloads(p.adminUrl, 'success');

    writeFileSync(file, configText(up, [['a', '/a'], ['b', '/b']]));
    p.child.kill('SIGHUP');
    await until(statusIs(`${p.url}/b`, 200), 'route /b after SIGHUP');
    expect(await reloads(p.adminUrl, 'success')).toBeGreaterThanOrEqual(before + 1);
    expect(await reloads(p.adminUrl, 'failure')).toBe(0);
  });

  it('an invalid new config is rejected: the old config keeps serving, the failure is counted and logged', async () => {
    const up = await upstream();
    const file = writeConfig(configText(up, [['a', '/a']]));
    const p = await serve(file);
    const before = await reloads(p.adminUrl, 'failure');

    // Line 10 holds the bad upstream of the new route.
    const broken = `${configText(up, [['a', '/a']])}  - name: c\n    match: { pathPrefix: /c }\n    upstream: not-a-url\n    auth: [none]\n`;
    expect(broken.split('\n')[9]).toBe('    upstream: not-a-url');
    writeFileSync(file, broken);
    p.child.kill('SIGHUP');
    await until(async () => ((await reloads(p.adminUrl, 'failure')) >= before + 1 ? true : undefined), 'the failed reload to be counted');

    expect(await status(`${p.url}/a`)).toBe(200);
    expect(await status(`${p.url}/c`)).toBe(404);
    expect(await status(`${p.adminUrl}/readyz`)).toBe(200);
    await until(async () => (logLines(p.logs, 'config reload rejected').length > 0 ? true : undefined), 'the rejection log line');
    const error = logLines(p.logs, 'config reload rejected')[0];
    expect(error).toMatchObject({ level: 50, msg: 'config reload rejected; the previous config keeps serving' });
    expect(error!.problems).toEqual([`${file}:10 routes[1].upstream: must be an http:// or https:// URL`]);
  });

  it('a request in flight during a reload finishes on the route it started with', async () => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    // Only the first request waits; the polls below are answered at once.
    const up = await upstream((req, res) => {
      if (req.url === '/a/slow') void released.then(() => res.end('old route'));
      else res.end('fast');
    });
    const file = writeConfig(configText(up, [['a', '/a']]));
    const p = await serve(file);
    const inflight = fetch(`${p.url}/a/slow`).then(async (r) => [r.status, await r.text()] as const);
    inflight.catch(() => {}); // awaited below
    await until(async () => (up.requests.length === 1 ? true : undefined), 'the upstream to receive the request');

    writeFileSync(file, configText(up, [['b', '/b']]));
    p.child.kill('SIGHUP');
    await until(statusIs(`${p.url}/a`, 404), 'route /a to be gone');
    release();
    expect(await within(inflight, 10_000, 'the in-flight request')).toEqual([200, 'old route']);
  });

  it('a reloaded shutdownGraceMs is the one the drain uses', async () => {
    const up = await upstream(() => {});
    const file = writeConfig(configText(up, [['a', '/']], 'shutdownGraceMs: 60000\n'));
    const p = await serve(file);
    writeFileSync(file, configText(up, [['a', '/']], 'shutdownGraceMs: 300\n'));
    p.child.kill('SIGHUP');
    await until(async () => ((await reloads(p.adminUrl, 'success')) >= 1 ? true : undefined), 'the reload');

    void fetch(`${p.url}/hang`).catch(() => {});
    await until(async () => (up.requests.length === 1 ? true : undefined), 'the upstream to receive the request');
    p.child.kill('SIGTERM');
    expect(await within(p.exited, 15_000, 'exit after the reloaded grace period')).toBe(0);
    expect(logLines(p.logs, 'draining')[0]).toMatchObject({ graceMs: 300 });
  });

  it('a deleted config file keeps the old config serving; SIGHUP then counts a failure', async () => {
    const up = await upstream();
    const file = writeConfig(configText(up, [['a', '/a']]));
    const p = await serve(file);
    unlinkSync(file);
    await sleep(500); // let the watcher see the deletion
    expect(await status(`${p.url}/a`)).toBe(200);

    const before = await reloads(p.adminUrl, 'failure');
    p.child.kill('SIGHUP');
    await until(async () => ((await reloads(p.adminUrl, 'failure')) === before + 1 ? true : undefined), 'the failed reload to be counted');
    expect(await status(`${p.url}/a`)).toBe(200);
    // Log lines are buffered (up to 50 ms): wait for the line, not just the counter.
    await until(async () => (logLines(p.logs, 'config reload rejected').length > 0 ? true : undefined), 'the rejection log line');
    expect(logLines(p.logs, 'config reload rejected')[0]!.problems).toEqual([`${file} (document): cannot read file: ENOENT`]);
  });
});

describe('reload on a change of the file', () => {
  it('a write is picked up without any signal', async () => {
    const up = await upstream();
    const file = writeConfig(configText(up, [['a', '/a']]));
    const p = await serve(file);
    const before = await reloads(p.adminUrl, 'success');
    writeFileSync(file, configText(up, [['a', '/a'], ['b', '/b']]));
    await until(statusIs(`${p.url}/b`, 200), 'route /b after a write');
    expect(await reloads(p.adminUrl, 'success')).toBe(before + 1);
  });

  it('an invalid write is rejected and counted; the next valid write is applied', async () => {
    const up = await upstream();
    const file = writeConfig(configText(up, [['a', '/a']]));
    const p = await serve(file);
    writeFileSync(file, `${configText(up, [['a', '/a']])}  - { name: b, match: { pathPrefx: /b }, upstream: "${up.url}", auth: [none] }\n`);
    await until(async () => ((await reloads(p.adminUrl, 'failure')) >= 1 ? true : undefined), 'the failed reload to be counted');
    expect(await status(`${p.url}/a`)).toBe(200);
    // Log lines are buffered (up to 50 ms): wait for the line, not just the counter.
    await until(async () => (logLines(p.logs, 'config reload rejected').length > 0 ? true : undefined), 'the rejection log line');
    expect(logLines(p.logs, 'config reload rejected')[0]!.problems).toEqual([`${file}:8 routes[1].match.pathPrefx: unknown key "pathPrefx"`]);

    writeFileSync(file, configText(up, [['a', '/a'], ['b', '/b']]));
    await until(statusIs(`${p.url}/b`, 200), 'route /b after the fix');
  });

  it('an atomic replace (write a new file, rename it over the old one) is picked up', async () => {
    const up = await upstream();
    const file = writeConfig(configText(up, [['a', '/a']]));
    const p = await serve(file);
    const tmp = join(dirname(file), '.tenantgate.yaml.tmp');
    writeFileSync(tmp, configText(up, [['b', '/b']]));
    renameSync(tmp, file);
    await until(statusIs(`${p.url}/b`, 200), 'route /b after the rename');
    expect(await status(`${p.url}/a`)).toBe(404);

    // And a second one: the watch survives the first rename.
    writeFileSync(tmp, configText(up, [['c', '/c']]));
    renameSync(tmp, file);
    await until(statusIs(`${p.url}/c`, 200), 'route /c after a second rename');
  });

  it('a Kubernetes ConfigMap update (the ..data symlink swapped) is picked up', async () => {
    const up = await upstream();
    const volume = configMapVolume(configText(up, [['a', '/a']]));
    const p = await serve(volume.file);
    expect(await status(`${p.url}/b`)).toBe(404);
    volume.update(configText(up, [['a', '/a'], ['b', '/b']]));
    await until(statusIs(`${p.url}/b`, 200), 'route /b after the ConfigMap update');
    volume.update(configText(up, [['c', '/c']]));
    await until(statusIs(`${p.url}/c`, 200), 'route /c after a second ConfigMap update');
    expect(await status(`${p.url}/b`)).toBe(404);
  });

  it('rewriting the file with the same content is not a reload', async () => {
    const up = await upstream();
    const text = configText(up, [['a', '/a']]);
    const file = writeConfig(text);
    const p = await serve(file);
    const before = await reloads(p.adminUrl, 'success');
    writeFileSync(file, text);
    await sleep(1000); // well past the watcher's debounce
    writeFileSync(file, configText(up, [['a', '/a'], ['b', '/b']]));
    await until(statusIs(`${p.url}/b`, 200), 'route /b after a real change');
    expect(await reloads(p.adminUrl, 'success')).toBe(before + 1);
  });

  it('after a SIGHUP reload, reverting the file to its original content is picked up', async () => {
    const up = await upstream();
    const original = configText(up, [['a', '/a']]);
    const file = writeConfig(original);
    const p = await serve(file);

    writeFileSync(file, configText(up, [['a', '/a'], ['b', '/b']]));
    p.child.kill('SIGHUP');
    await until(statusIs(`${p.url}/b`, 200), 'route /b after SIGHUP');
    await sleep(1000); // the watcher has seen that write by now

    writeFileSync(file, original);
    await until(statusIs(`${p.url}/b`, 404), 'route /b to disappear after the file was reverted');
  });
});
