/**
 * The machine's PostgreSQL (127.0.0.1:5432, user postgres, trust auth) for
 * tests: each run creates databases of its own with random names
 * (`tg_test_<random>`) and drops only those, connections terminated first.
 * Nothing else on the server is read or written.
 *
 * `TcpRelay` sits between the proxy and the database so a test can make the
 * database unreachable for that proxy alone: cut() refuses new connections
 * and severs open ones, restore() listens again on the same port; `frozen`
 * keeps connections open but lets nothing through (a silent network).
 */
import { randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import pg from 'pg';

export const PG_HOST = '127.0.0.1';
export const PG_PORT = 5432;
const ADMIN_URL = `postgres://postgres@${PG_HOST}:${PG_PORT}/postgres`;

export class TestDatabase {
  private constructor(readonly name: string) {}

  static async create(): Promise<TestDatabase> {
    const name = `tg_test_${randomBytes(6).toString('hex')}`;
    await withAdmin((c) => c.query(`CREATE DATABASE ${name}`));
    return new TestDatabase(name);
  }

  /** This database's URL, through another host:port (a relay) if given. */
  url(port = PG_PORT, userinfo = 'postgres'): string {
    return `postgres://${userinfo}@${PG_HOST}:${port}/${this.name}`;
  }

  /** Runs SQL in this database on a connection of its own. */
  async sql<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<R[]> {
    const client = new pg.Client({ connectionString: this.url() });
    await client.connect();
    try {
      return (await client.query<R>(text, values)).rows;
    } finally {
      await client.end();
    }
  }

  async drop(): Promise<void> {
    await withAdmin(async (c) => {
      await c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [this.name]);
      await c.query(`DROP DATABASE IF EXISTS ${this.name} WITH (FORCE)`);
    });
  }
}

async function withAdmin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: ADMIN_URL });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** A TCP relay on a loopback port to PostgreSQL that the test can cut and restore. */
export class TcpRelay {
  port = 0;
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  /** Connections stay open but nothing gets through (a peer that stopped answering). */
  frozen = false;

  constructor(private readonly target = { host: PG_HOST, port: PG_PORT }) {}

  /** Listens (again on the same port after cut()); nothing to do while listening. */
  async start(): Promise<void> {
    if (this.server !== null) return;
    const server = createServer((inbound) => {
      const outbound = connect(this.target.port, this.target.host);
      for (const [s, other] of [
        [inbound, outbound],
        [outbound, inbound],
      ] as const) {
        this.sockets.add(s);
        s.on('error', () => other.destroy());
        s.on('close', () => {
          this.sockets.delete(s);
          other.destroy();
        });
      }
      // Not pipe(): while frozen, bytes are swallowed, as by a network that went silent.
      inbound.on('data', (d: Buffer) => void (this.frozen || outbound.write(d)));
      outbound.on('data', (d: Buffer) => void (this.frozen || inbound.write(d)));
    });
    await new Promise<void>((resolve) => server.listen(this.port, PG_HOST, resolve));
    this.port = (server.address() as { port: number }).port;
    this.server = server;
  }

  /** Connections refused from now on; open ones severed. */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server === null) return;
    for (const s of this.sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  }

  restore(): Promise<void> {
    this.frozen = false;
    return this.start();
  }
}
