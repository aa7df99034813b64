/**
 * The registry in PostgreSQL (`registry.postgres`), shared by every replica.
 *
 * Records live whole as JSONB (see ./postgres-schema.ts); a cold key is one
 * primary-key lookup, a warm key none (the Directory's caches answer). Every
 * query is bounded in time, so a database that stops answering costs a
 * request at most that bound and then 503 `store_unavailable`.
 *
 * Invalidations travel by NOTIFY on one channel; each replica keeps one
 * dedicated connection that LISTENs, checks it with a light query every
 * couple of seconds (a silently dead peer would otherwise look alive), and
 * reconnects with backoff when it drops. After each (re)LISTEN the caches are
 * reset: messages sent while nobody listened are gone.
 *
 * The connection URL is what `pg` accepts (`?sslmode=`, `?options=`, …); it
 * is only ever shown with its password replaced, and error texts are scrubbed
 * of it.
 */
import pg from 'pg';
import type { Logger } from '../observability/logger.js';
import { CHANNEL, KEYS_TABLE, migrate, SCHEMA_VERSION, SchemaTooNewError, TENANTS_TABLE } from './postgres-schema.js';
import { RegistryUnavailableError, type Invalidation, type InvalidationHandlers, type KeyRecord, type Registry, type TenantRecord } from './types.js';

export { RegistryUnavailableError } from './types.js';

const { Client, DatabaseError, Pool } = pg;

/** Migrations may wait on another replica's lock: a bound well above a query's. */
const MIGRATION_TIMEOUT_MS = 30_000;
const HEARTBEAT_MS = 2_000;
const MAX_BACKOFF_MS = 1_000;
const TOUCH_BATCH = 500;

export interface PostgresRegistryOptions {
  url: string;
  /** Bound on each query (a cold key lookup is on the request path). */
  queryTimeoutMs: number;
  /** Bound on opening a connection (the pool keeps them open, so rarely on the request path). */
  connectTimeoutMs: number;
  logger?: Logger;
}

/** The URL as it may be shown: password (in the userinfo or a `password=` parameter) replaced by `***`. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    for (const k of [...u.searchParams.keys()]) if (/pass/i.test(k)) u.searchParams.set(k, '***');
    return u.toString();
  } catch {
    return redactText(url);
  }
}

/** Userinfo passwords and `password=` parameters of any URL inside a text, replaced by `***`. */
export function redactText(text: string): string {
  return text.replace(/\/\/([^:/@\s]*):[^@\s]*@/g, '//$1:***@').replace(/([?&][^=&\s]*pass[^=&\s]*=)[^&\s]*/gi, '$1***');
}

/** Every secret the URL carries, as written and decoded, so error texts can be scrubbed of them. */
function secretsOf(url: string): string[] {
  const out = new Set<string>();
  try {
    const u = new URL(url);
    const found = [u.password, ...[...u.searchParams.entries()].filter(([k]) => /pass/i.test(k)).map(([, v]) => v)];
    for (const s of found) {
      if (s === '') continue;
      out.add(s);
      try {
        out.add(decodeURIComponent(s));
      } catch {
        /* not percent-encoded */
      }
    }
  } catch {
    /* an unparsable URL: pg will refuse it, and redactUrl covers its userinfo */
  }
  return [...out].sort((a, b) => b.length - a.length);
}

/** `sslmode` values that make `pg` skip the server certificate check. */
export function certificateCheckOff(url: string): boolean {
  try {
    const q = new URL(url).searchParams;
    const mode = q.get('sslmode');
    if (mode === 'no-verify') return true;
    return q.get('uselibpqcompat') === 'true' && (mode === 'prefer' || (mode === 'require' && !q.has('sslrootcert')));
  } catch {
    return false;
  }
}

/** SQLSTATE classes that mean "no answer now": 08 connection, 53 resources, 57 operator intervention (incl. statement timeout). */
function unavailable(err: unknown): boolean {
  if (err instanceof SchemaTooNewError) return false;
  return !(err instanceof DatabaseError) || /^(08|53|57)/.test(err.code ?? '');
}

/** `p`, or a RegistryUnavailableError after `ms` (p keeps running). */
function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new RegistryUnavailableError(what)), ms)));
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

function frozen<T>(rows: { record: T }[]): T[] {
  return rows.map((r) => Object.freeze(r.record));
}

export class PostgresRegistry implements Registry {
  readonly kind = 'postgres';
  readonly redactedUrl: string;
  private readonly secrets: string[];
  private readonly base: pg.ClientConfig;
  private readonly pool: pg.Pool;
  private readonly logger: Logger | null;
  private readonly queryTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private schema: Promise<void> | null = null;
  private schemaReady = false;
  private queryFailing = false;
  /** Invalidation listener: null until someone subscribes. */
  private listening: boolean | null = null;
  private listener: pg.Client | null = null;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(opts: PostgresRegistryOptions) {
    this.redactedUrl = redactUrl(opts.url);
    this.secrets = secretsOf(opts.url);
    this.logger = opts.logger ?? null;
    this.queryTimeoutMs = opts.queryTimeoutMs;
    this.connectTimeoutMs = opts.connectTimeoutMs;
    this.base = { connectionString: opts.url, connectionTimeoutMillis: opts.connectTimeoutMs, keepAlive: true, application_name: 'tenantgate' };
    this.pool = new Pool({
      ...this.base,
      max: 10,
      idleTimeoutMillis: 30_000,
      query_timeout: opts.queryTimeoutMs,
      statement_timeout: opts.queryTimeoutMs,
    });
    // An idle connection that dies (database restarted) is dropped by the pool; the next query opens another.
    this.pool.on('error', () => {});
    if (certificateCheckOff(opts.url)) this.logger?.warn({ registry: this.redactedUrl }, 'registry.postgres: this sslmode does not check the server certificate');
  }

  problem(): string | null {
    return this.queryFailing || this.listening === false ? 'registry_unavailable' : null;
  }

  /**
   * Migrates the schema, retrying while the database is unreachable, for up
   * to `waitMs`; then start serving anyway (queries migrate first, and fail
   * as unavailable meanwhile). A schema the database refuses is an error.
   */
  async ready(waitMs: number): Promise<void> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      try {
        await bounded(this.ensureSchema(), Math.max(1, deadline - Date.now()), 'no answer at start');
        return;
      } catch (err) {
        if (!(err instanceof RegistryUnavailableError)) throw err;
        if (Date.now() + 200 >= deadline) {
          this.logger?.warn({ registry: this.redactedUrl, err: err.message }, 'PostgreSQL registry unreachable at start; serving known records and retrying');
          return;
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  async listTenants(): Promise<TenantRecord[]> {
    return frozen(await this.query<{ record: TenantRecord }>('tg_list_tenants', `SELECT record FROM ${TENANTS_TABLE} ORDER BY id`, []));
  }

  async getTenant(id: string): Promise<TenantRecord | null> {
    return frozen(await this.query<{ record: TenantRecord }>('tg_get_tenant', `SELECT record FROM ${TENANTS_TABLE} WHERE id = $1`, [id]))[0] ?? null;
  }

  /** One INSERT: the primary key and the unique lower(id) index refuse an existing id and its case twins alike. */
  async createTenant(t: TenantRecord): Promise<boolean> {
    const rows = await this.query('tg_create_tenant', `INSERT INTO ${TENANTS_TABLE} (id, record) VALUES ($1, $2::jsonb) ON CONFLICT DO NOTHING RETURNING id`, [t.id, JSON.stringify(t)]);
    return rows.length === 1;
  }

  async putTenant(t: TenantRecord): Promise<void> {
    await this.query('tg_put_tenant', `INSERT INTO ${TENANTS_TABLE} (id, record) VALUES ($1, $2::jsonb) ON CONFLICT (id) DO UPDATE SET record = excluded.record`, [t.id, JSON.stringify(t)]);
  }

  async getKey(id: string): Promise<KeyRecord | null> {
    return frozen(await this.query<{ record: KeyRecord }>('tg_get_key', `SELECT record FROM ${KEYS_TABLE} WHERE id = $1`, [id]))[0] ?? null;
  }

  async createKey(k: KeyRecord): Promise<boolean> {
    const rows = await this.query('tg_create_key', `INSERT INTO ${KEYS_TABLE} (id, tenant, record) VALUES ($1, $2, $3::jsonb) ON CONFLICT DO NOTHING RETURNING id`, [k.id, k.tenant, JSON.stringify(k)]);
    return rows.length === 1;
  }

  async putKey(k: KeyRecord): Promise<void> {
    await this.query(
      'tg_put_key',
      `INSERT INTO ${KEYS_TABLE} (id, tenant, record) VALUES ($1, $2, $3::jsonb) ON CONFLICT (id) DO UPDATE SET tenant = excluded.tenant, record = excluded.record`,
      [k.id, k.tenant, JSON.stringify(k)],
    );
  }

  async listKeys(tenant: string): Promise<KeyRecord[]> {
    return frozen(await this.query<{ record: KeyRecord }>('tg_list_keys', `SELECT record FROM ${KEYS_TABLE} WHERE tenant = $1 ORDER BY id`, [tenant]));
  }

  /** One statement per TOUCH_BATCH keys (each stays well within the query bound); ids without a record (config keys) match no row. */
  async touchKeys(times: ReadonlyMap<string, string>): Promise<void> {
    const entries = [...times];
    for (let i = 0; i < entries.length; i += TOUCH_BATCH) {
      const batch = entries.slice(i, i + TOUCH_BATCH);
      await this.query(
        'tg_touch_keys',
        `UPDATE ${KEYS_TABLE} k SET record = jsonb_set(k.record, '{lastUsedAt}', to_jsonb(t.at)) FROM unnest($1::text[], $2::text[]) AS t(id, at) WHERE k.id = t.id`,
        [batch.map(([id]) => id), batch.map(([, at]) => at)],
      );
    }
  }

  async publish(m: Invalidation): Promise<void> {
    await this.query('tg_notify', 'SELECT pg_notify($1, $2)', [CHANNEL, m]);
  }

  subscribe(handlers: InvalidationHandlers): void {
    this.listening = false;
    void this.listen(handlers);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    if (this.heartbeat !== null) clearInterval(this.heartbeat);
    const listener = this.listener;
    this.listener = null;
    // A peer that stopped answering would hold end() forever; a shutdown does not wait on it.
    const bounded = (p: Promise<unknown>) => Promise.race([p.catch(() => {}), new Promise((r) => setTimeout(r, 1000).unref())]);
    await Promise.all([bounded(this.pool.end()), listener === null ? null : bounded(listener.end())]);
  }

  private async query<R>(name: string, text: string, values: unknown[]): Promise<R[]> {
    try {
      // A migration may wait on another replica's lock; a request waits no longer than a query would.
      if (!this.schemaReady) await bounded(this.ensureSchema(), this.connectTimeoutMs + this.queryTimeoutMs, 'schema not migrated yet');
      const res = await this.pool.query<R & pg.QueryResultRow>({ name, text, values });
      this.queryFailing = false;
      return res.rows;
    } catch (err) {
      this.queryFailing = true;
      throw err instanceof RegistryUnavailableError ? err : this.wrap(err);
    }
  }

  private ensureSchema(): Promise<void> {
    if (this.schemaReady) return Promise.resolve();
    this.schema ??= this.runMigrations().then(
      () => void (this.schemaReady = true),
      (err: unknown) => {
        this.schema = null;
        throw this.wrap(err);
      },
    );
    return this.schema;
  }

  private async runMigrations(): Promise<void> {
    const client = new Client({ ...this.base, query_timeout: MIGRATION_TIMEOUT_MS });
    client.on('error', () => {});
    try {
      await client.connect();
      const applied = await migrate(client);
      if (applied.length > 0) this.logger?.info({ registry: this.redactedUrl, applied, version: SCHEMA_VERSION }, 'registry schema migrated');
    } finally {
      void client.end().catch(() => {});
    }
  }

  /** A scrubbed error: RegistryUnavailableError when the database did not answer, else a plain Error naming the registry. */
  private wrap(err: unknown): Error {
    if (err instanceof RegistryUnavailableError) return err;
    let text = err instanceof Error ? err.message : String(err);
    for (const s of this.secrets) text = text.split(s).join('***');
    text = redactText(text);
    return unavailable(err) ? new RegistryUnavailableError(text || 'no answer') : new Error(`PostgreSQL registry ${this.redactedUrl}: ${text}`);
  }

  /** One LISTEN connection; when it fails, another after a backoff (0.1 s more per attempt, at most 1 s). */
  private async listen(handlers: InvalidationHandlers): Promise<void> {
    if (this.closed) return;
    const client = new Client({ ...this.base, query_timeout: Math.max(1000, this.queryTimeoutMs) });
    this.listener = client;
    let dropped = false;
    const drop = () => {
      if (dropped) return;
      dropped = true;
      if (this.heartbeat !== null) clearInterval(this.heartbeat);
      this.heartbeat = null;
      if (this.listener === client) this.listener = null;
      void client.end().catch(() => {});
      if (this.closed) return;
      if (this.listening === true) {
        this.listening = false;
        handlers.status(false);
      }
      this.attempt++;
      this.retryTimer = setTimeout(() => void this.listen(handlers), Math.min(this.attempt * 100, MAX_BACKOFF_MS));
      this.retryTimer.unref();
    };
    client.on('error', drop);
    client.on('end', drop);
    client.on('notification', (n) => {
      if (n.channel === CHANNEL && n.payload !== undefined) handlers.message(n.payload);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
    } catch {
      drop();
      return;
    }
    if (dropped) return;
    if (this.closed) {
      void client.end().catch(() => {});
      return;
    }
    this.attempt = 0;
    this.listening = true;
    // Whatever was published before this LISTEN (while down, or before start) may have been missed.
    handlers.reset();
    handlers.status(true);
    this.heartbeat = setInterval(() => {
      void client.query('SELECT 1').catch(drop);
      // A failed query leaves problem() set until one succeeds; with no traffic, this one.
      if (this.queryFailing) void this.query('tg_ping', 'SELECT 1', []).catch(() => {});
    }, HEARTBEAT_MS);
    this.heartbeat.unref();
  }
}
