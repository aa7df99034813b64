/**
 * NATS test parts: a JetStream stream of the test's own (unique name and
 * subjects, deleted at the end; no other stream is touched) on the machine's
 * server at 127.0.0.1:4222, a consumer that reads it once, and a nats-server
 * of the test's own on a free port that it can kill and restart (only where
 * `nats-server` is on PATH).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AckPolicy, connect, DeliverPolicy, type JsMsg, type NatsConnection } from 'nats';
import { freePort, sigkill } from './redis.js';

export const MACHINE_NATS = 'nats://127.0.0.1:4222';

export interface TestStream {
  name: string;
  /** The sink's subjectPrefix: the stream captures `<prefix>.>`. */
  prefix: string;
  nc: NatsConnection;
  /** Every message in the stream, read once by a fresh consumer from the start. */
  readAll(expected: number): Promise<JsMsg[]>;
  /** Deletes the stream and closes the connection. */
  remove(): Promise<void>;
}

export async function createTestStream(url = MACHINE_NATS): Promise<TestStream> {
  const tag = randomBytes(6).toString('hex');
  const name = `tgtest_${tag}`;
  const prefix = `tgtest.${tag}`;
  const nc = await connect({ servers: url, timeout: 5000, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  const jsm = await nc.jetstreamManager();
  // duplicate_window is in nanoseconds: long enough that every replay in a test falls inside it.
  await jsm.streams.add({ name, subjects: [`${prefix}.>`], duplicate_window: 120 * 1e9 });
  return {
    name,
    prefix,
    nc,
    async readAll(expected) {
      // A connection of its own: the test's server may have been restarted since the stream was made.
      const rc = await connect({ servers: url, timeout: 5000 });
      const rjsm = await rc.jetstreamManager();
      const consumer = await rjsm.consumers.add(name, { ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All });
      const c = await rc.jetstream().consumers.get(name, consumer.name);
      const out: JsMsg[] = [];
      // One more than expected, so a duplicate the stream kept would show up.
      for (let left = expected + 1; left > 0; ) {
        const batch = await c.fetch({ max_messages: Math.min(left, 500), expires: 1000 });
        const before = out.length;
        for await (const m of batch) {
          m.ack();
          out.push(m);
        }
        if (out.length === before) break;
        left -= out.length - before;
      }
      await rjsm.consumers.delete(name, consumer.name);
      await rc.close();
      return out;
    },
    async remove() {
      await jsm.streams.delete(name).catch(() => undefined);
      await nc.close();
    },
  };
}

export const hasNatsServer = spawnSync('sh', ['-c', 'command -v nats-server'], { stdio: 'ignore' }).status === 0;

/** A nats-server with JetStream of the test's own: file storage in a temp dir, so a restart keeps its streams. */
export class OwnNatsServer {
  private child: ChildProcess | null = null;
  port = 0;
  private readonly storeDir = mkdtempSync(join(tmpdir(), 'tg-nats-'));

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (this.port === 0) this.port = await freePort();
    this.child = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(this.port), '-js', '-sd', this.storeDir], { stdio: 'ignore' });
    const deadline = Date.now() + 10_000;
    while (!(await accepts(this.port))) {
      if (Date.now() > deadline) throw new Error('nats-server did not start');
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async kill(): Promise<void> {
    const child = this.child;
    this.child = null;
    await sigkill(child);
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}
