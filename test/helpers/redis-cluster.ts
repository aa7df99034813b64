/**
 * A real three-node Redis Cluster for tests (no replicas), on free loopback
 * ports, its files in a temporary directory: `redis-server --cluster-enabled`
 * three times, then `redis-cli --cluster create`. Never the machine's own Redis.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { RedisServer } from './redis.js';

const run = promisify(execFile);

export class RedisCluster {
  private readonly dir = mkdtempSync(join(tmpdir(), 'tg-cluster-'));
  readonly nodes = [0, 1, 2].map((i) => new RedisServer(null, ['--cluster-enabled', 'yes', '--cluster-config-file', join(this.dir, `nodes-${i}.conf`), '--cluster-node-timeout', '2000', '--dir', this.dir]));

  /** `redis://` URLs of every node (what `store.redis` takes as a list). */
  get urls(): string[] {
    return this.nodes.map((n) => n.url);
  }

  async start(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.start()));
    await run('redis-cli', ['--cluster', 'create', ...this.nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes']);
    // Every node must agree before a client can route: wait for cluster_state:ok on each.
    const deadline = Date.now() + 20_000;
    for (const n of this.nodes) {
      for (;;) {
        const { stdout } = await run('redis-cli', ['-p', String(n.port), 'cluster', 'info']);
        if (stdout.includes('cluster_state:ok')) break;
        if (Date.now() > deadline) throw new Error(`cluster not ready: ${stdout}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.kill()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
