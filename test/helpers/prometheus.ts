/**
 * promtool and a real Prometheus server for tests (Debian package
 * `prometheus`, which .ci/run installs). The server is the test's own: a free
 * loopback port, a temporary TSDB directory and config, killed after.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function onPath(name: string): string | null {
  const run = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  return run.status === 0 ? run.stdout.trim() : null;
}

export const PROMTOOL = onPath('promtool');
export const PROMETHEUS = onPath('prometheus');

if (PROMTOOL === null || PROMETHEUS === null) {
  console.warn('promtool/prometheus not found: the Prometheus tests are skipped (apt-get install prometheus, as .ci/run does)');
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface RunningPrometheus {
  url: string;
  child: ChildProcess;
  /** GET /api/v1/<path>: the `data` of a successful answer; throws with Prometheus' error otherwise. */
  api<T>(path: string): Promise<T>;
  stop(): Promise<void>;
}

/** Starts Prometheus scraping `target` (host:port, path /metrics) every second, with `ruleFiles` loaded; resolves once it is ready. */
export async function startPrometheus(target: string, ruleFiles: readonly string[] = []): Promise<RunningPrometheus> {
  const dir = mkdtempSync(join(tmpdir(), 'tg-prometheus-'));
  const config = join(dir, 'prometheus.yml');
  writeFileSync(
    config,
    JSON.stringify({
      global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
      rule_files: ruleFiles,
      scrape_configs: [{ job_name: 'tenantgate', static_configs: [{ targets: [target] }] }],
    }),
  );
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(PROMETHEUS!, [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`prometheus exited with ${child.exitCode}: ${stderr}`);
    const ready = await fetch(`${url}/-/ready`).then((r) => r.ok, () => false);
    if (ready) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus not ready after 20 s: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const api = async <T>(path: string): Promise<T> => {
    const body = (await (await fetch(`${url}/api/v1/${path}`)).json()) as { status: string; data?: T; error?: string };
    if (body.status !== 'success') throw new Error(`${path}: ${body.error ?? body.status}`);
    return body.data as T;
  };
  return { url, child, api, stop };
}
