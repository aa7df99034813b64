/**
 * A real redis-server for tests, on a free loopback port, that the test can
 * kill and restart (never the machine's own Redis on 6379). Without
 * persistence by default, so a kill also wipes its data; `persistDir` keeps
 * what it acknowledged across a SIGKILL (AOF, `appendfsync always`), for
 * tests that check no usage event written before an outage was lost.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export class RedisServer {
  private child: ChildProcess | null = null;
  port = 0;

  /** `extraArgs`: more redis-server options (the cluster helper's `--cluster-enabled`, …). */
  constructor(
    private readonly persistDir: string | null = null,
    private readonly extraArgs: readonly string[] = [],
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (this.port === 0) this.port = await freePort();
    const persistence = this.persistDir === null ? ['--appendonly', 'no'] : ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', this.persistDir];
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', ...persistence, ...this.extraArgs], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.child = child;
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('Ready to accept connections')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}: ${out}`)));
    });
  }

  /** SIGKILL: the store vanishes mid-load, as in a crash. */
  async kill(): Promise<void> {
    const child = this.child;
    this.child = null;
    await sigkill(child);
  }
}

/** SIGKILLs a server the harness started and waits for it to exit (nothing to do if it already has). */
export async function sigkill(child: ChildProcess | null): Promise<void> {
  if (child === null || child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}
