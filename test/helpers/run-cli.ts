/** Runs `node dist/main.js …` as a user would: a child process, its exit code, stdout and stderr. */
import { spawn } from 'node:child_process';
import { MAIN, ROOT } from './servers.js';

export interface CliRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** The environment of this process without TENANTGATE_* variables (a test sets the ones it means). */
export function cliEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('TENANTGATE_')) env[k] = v;
  return { ...env, ...extra };
}

/** Runs the CLI to completion, `stdin` piped in (or nothing); killed after `timeoutMs`. */
export function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv; stdin?: string; cwd?: string; timeoutMs?: number } = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { env: opts.env ?? cliEnv(), cwd: opts.cwd ?? ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 20_000);
    child.once('error', reject);
    child.once('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
    child.stdin.end(opts.stdin ?? '');
  });
}
