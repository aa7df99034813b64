/**
 * `tenantgate serve` as a real child process: health and readiness, the
 * SIGTERM drain (in-flight requests complete, readiness turns 503, exit 0),
 * reload by SIGHUP and by file change (valid and invalid configs), and the
 * `validate` command's exit codes and messages.
 */
import { spawnSync } from 'node:child_process';
import { renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MAIN, spawnProxy, startUpstream, withTestDefaults, writeConfig, type SpawnedProxy, type Upstream } from '../helpers/servers.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function upstreamThat(handler?: Parameters<typeof startUpstream>[0]): Promise<Upstream> {
  const u = await startUpstream(handler);
  cleanups.push(() => u.close());
  return u;
}

async function proxyFor(yaml: string): Promise<SpawnedProxy> {
  const p = await spawnProxy(yaml);
  cleanups.push(() => p.stop('SIGKILL'));
  return p;
}

function routeYaml(name: string, prefix: string, upstream: string): string {
  return `  - name: ${name}\n    match: { pathPrefix: ${prefix} }\n    upstream: ${upstream}\n    auth: [none]\n`;
}

async function until<T>(fn: () => Promise<T | undefined>, what: string, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const reloads = async (adminUrl: string, result: string) => {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  return Number(new RegExp(`tenantgate_config_reloads_total\\{result="${result}"\\} (\\d+)`).exec(text)?.[1]);
};

describe('serve lifecycle', () => {
  it('answers /healthz and /readyz, and binds the admin port to 127.0.0.1 by default', async () => {
    const up = await upstreamThat();
    const configFile = writeConfig(`listen: { host: 127.0.0.1, port: 0 }\nadmin: { port: 0 }\nroutes:\n${routeYaml('a', '/', up.url)}`);
    const p = await spawnProxy('', {}, configFile);
    cleanups.push(() => p.stop('SIGKILL'));
    const listening = p.logs.find((l) => (l as { msg?: string }).msg === 'tenantgate listening') as { admin: { address: string } };
    expect(listening.admin.address).toBe('127.0.0.1');
    expect((await fetch(`${p.adminUrl}/healthz`)).status).toBe(200);
    expect(await (await fetch(`${p.adminUrl}/readyz`)).json()).toEqual({ status: 'ready' });
    expect(await (await fetch(`${p.adminUrl}/metrics`)).text()).toContain('tenantgate_inflight_requests');
  });

  it('SIGTERM drains: the in-flight request completes, readiness is 503, exit 0', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const up = await upstreamThat((_req, res) => {
      void gate.then(() => res.end('done'));
    });
    const p = await proxyFor(`shutdownGraceMs: 5000\nroutes:\n${routeYaml('a', '/', up.url)}`);
    const inflight = fetch(`${p.url}/slow`).then(async (r) => [r.status, await r.text()]);
    await until(async () => (up.requests.length === 1 ? true : undefined), 'the upstream to receive the request');
    p.child.kill('SIGTERM');
    const ready = await until(async () => {
      const r = await fetch(`${p.adminUrl}/readyz`);
      return r.status === 503 ? r.json() : undefined;
    }, 'readiness to turn 503');
    expect(ready).toEqual({ status: 'not_ready', reason: 'shutting_down' });
    await expect(fetch(`${p.url}/new`)).rejects.toThrow();
    release();
    expect(await inflight).toEqual([200, 'done']);
    expect(await p.exited).toBe(0);
  });

  it('SIGTERM with an upstream that never answers still exits 0 after shutdownGraceMs', async () => {
    const up = await upstreamThat(() => {});
    const p = await proxyFor(`shutdownGraceMs: 300\nroutes:\n${routeYaml('a', '/', up.url)}`);
    const inflight = fetch(`${p.url}/hang`).then((r) => r.status, () => 'cut');
    await until(async () => (up.requests.length === 1 ? true : undefined), 'the upstream to receive the request');
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
    expect(await inflight).toBe('cut');
  });

  it('SIGHUP reloads a valid config and keeps the old one when the new one is invalid', async () => {
    const a = await upstreamThat();
    const yaml = withTestDefaults(`routes:\n${routeYaml('a', '/a', a.url)}`);
    const configFile = writeConfig(yaml);
    const p = await spawnProxy('', {}, configFile);
    cleanups.push(() => p.stop('SIGKILL'));
    expect((await fetch(`${p.url}/b`)).status).toBe(404);

    writeFileSync(configFile, `${yaml}${routeYaml('b', '/b', a.url)}`);
    p.child.kill('SIGHUP');
    await until(async () => ((await fetch(`${p.url}/b`)).status === 200 ? true : undefined), 'route /b after SIGHUP');
    expect(await reloads(p.adminUrl, 'success')).toBeGreaterThanOrEqual(1);

    writeFileSync(configFile, `${yaml}  - name: broken\n    upstream: not-a-url\n`);
    p.child.kill('SIGHUP');
    await until(async () => ((await reloads(p.adminUrl, 'failure')) >= 1 ? true : undefined), 'the failed reload to be counted');
    expect((await fetch(`${p.url}/b`)).status).toBe(200);
    const errorLine = p.logs.find((l) => (l as { msg?: string }).msg?.startsWith('config reload rejected')) as { problems: string[] };
    expect(errorLine.problems.join('\n')).toMatch(/routes\[1\]\.(match|upstream)/);
  });

  it('reloads on a file change, including an atomic rename over the file', async () => {
    const a = await upstreamThat();
    const yaml = withTestDefaults(`routes:\n${routeYaml('a', '/a', a.url)}`);
    const configFile = writeConfig(yaml);
    const p = await spawnProxy('', {}, configFile);
    cleanups.push(() => p.stop('SIGKILL'));

    writeFileSync(configFile, `${yaml}${routeYaml('b', '/b', a.url)}`);
    await until(async () => ((await fetch(`${p.url}/b`)).status === 200 ? true : undefined), 'route /b after a write');

    const tmp = join(dirname(configFile), 'next.yaml');
    writeFileSync(tmp, `${yaml}${routeYaml('c', '/c', a.url)}`);
    renameSync(tmp, configFile);
    await until(async () => ((await fetch(`${p.url}/c`)).status === 200 ? true : undefined), 'route /c after a rename');
    expect((await fetch(`${p.url}/b`)).status).toBe(404);
  });

  it('refuses to start on an invalid config, printing every problem', async () => {
    const configFile = writeConfig('listen: { port: 70000 }\nroutes:\n  - name: x\n    upstream: ftp://x\n    match: {}\n');
    const r = spawnSync(process.execPath, [MAIN, 'serve', '-c', configFile], { encoding: 'utf8', timeout: 10_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`${configFile}:1 listen.port`);
    expect(r.stderr).toContain(`${configFile}:4 routes[0].upstream`);
  });
});

describe('validate', () => {
  const validate = (file: string) => spawnSync(process.execPath, [MAIN, 'validate', '-c', file], { encoding: 'utf8', timeout: 10_000 });

  it.each(['tenantgate.yaml', 'demo.yaml'])('exits 0 on config/%s', (name) => {
    const r = validate(join(dirname(MAIN), '..', 'config', name));
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('exits 1 on a missing file', () => {
    const r = validate('/nonexistent/tenantgate.yaml');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('cannot read file: ENOENT');
  });

  it('unknown commands exit 2 with the usage', () => {
    const r = spawnSync(process.execPath, [MAIN, 'frobnicate'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('usage:');
  });
});
