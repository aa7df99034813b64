/**
 * Helpers for the lifecycle tests of a spawned proxy: bounded polling, reading
 * one counter from /metrics, finding log lines, a connection attempt that
 * reports refusal, and a Kubernetes-style ConfigMap volume whose update swaps
 * a `..data` symlink.
 */
import { mkdirSync, mkdtempSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Polls `fn` until it returns something other than undefined (errors count as "not yet"), at most `ms`. */
export async function until<T>(fn: () => Promise<T | undefined> | T | undefined, what: string, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
    await sleep(50);
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Resolves with `promise`, or rejects naming `what` if it takes longer than `ms`. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Value of one sample of the Prometheus text on `adminUrl/metrics` (0 when absent). */
export async function metric(adminUrl: string, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}${labels ? `{${labels}}` : ''} `)) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

export const reloads = (adminUrl: string, result: 'success' | 'failure') => metric(adminUrl, 'tenantgate_config_reloads_total', `result="${result}"`);

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

/** The pino lines in `logs` with this message (prefix). */
export function logLines(logs: unknown[], msg: string): LogLine[] {
  return logs.filter((l): l is LogLine => typeof l === 'object' && l !== null && typeof (l as LogLine).msg === 'string' && (l as LogLine).msg.startsWith(msg));
}

/** Resolves with the error code of a TCP connection attempt to 127.0.0.1:port ('connected' if it was accepted). */
export function tryConnect(port: number, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, host);
    const timer = setTimeout(() => {
      socket.destroy();
      resolve('timeout');
    }, 3000);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(err.code ?? String(err));
    });
  });
}

/** YAML for one public route (`auth: [none]`), indented for a `routes:` list. */
export function publicRoute(name: string, prefix: string, upstream: string): string {
  return `  - name: ${name}\n    match: { pathPrefix: ${prefix} }\n    upstream: ${upstream}\n    auth: [none]\n`;
}

/**
 * A directory laid out as the kubelet mounts a ConfigMap: `tenantgate.yaml` →
 * `..data/tenantgate.yaml`, `..data` → `..<version>/`. `update` writes a new
 * version directory and renames a fresh symlink over `..data`, atomically.
 */
export function configMapVolume(initial: string): { file: string; update(text: string): void } {
  const dir = mkdtempSync(join(tmpdir(), 'tg-life-cm-'));
  let version = 0;
  const writeVersion = (text: string) => {
    const name = `..v${++version}`;
    mkdirSync(join(dir, name));
    writeFileSync(join(dir, name, 'tenantgate.yaml'), text);
    return name;
  };
  symlinkSync(writeVersion(initial), join(dir, '..data'));
  symlinkSync(join('..data', 'tenantgate.yaml'), join(dir, 'tenantgate.yaml'));
  return {
    file: join(dir, 'tenantgate.yaml'),
    update(text: string) {
      const name = writeVersion(text);
      symlinkSync(name, join(dir, '..data_tmp'));
      renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    },
  };
}
