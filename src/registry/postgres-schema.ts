/**
 * The PostgreSQL registry's schema and its migrations.
 *
 * Each record is kept whole as JSONB beside the columns it is looked up by:
 * a key by its id (primary key: a cold key is one index lookup), a tenant's
 * keys by (tenant, id), a tenant id by lower(id) (unique: an id that differs
 * only in case from one that exists, deleted ones included, is refused by the
 * same INSERT that would create it).
 *
 * `migrate()` runs at start on every replica: inside one transaction holding
 * a transaction-level advisory lock, so replicas starting at once take turns
 * and the second finds nothing left to do. Applied versions are rows of
 * `tenantgate_schema_version`; a database migrated by a newer tenantgate is
 * refused rather than written with an older idea of the schema.
 */
import type { ClientBase } from 'pg';

export const TENANTS_TABLE = 'tenantgate_tenants';
export const KEYS_TABLE = 'tenantgate_keys';
export const VERSION_TABLE = 'tenantgate_schema_version';
/** NOTIFY channel of invalidations (LISTEN/NOTIFY is per database). */
export const CHANNEL = 'tenantgate_invalidate';
/** pg_advisory_xact_lock key serialising migrations: "tg" + 0x0001 (any fixed number other tools are unlikely to pick). */
export const MIGRATION_LOCK = 0x74670001;

/** Migration N (1-based) is MIGRATIONS[N - 1]. Append only: never edit one that has shipped. */
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE ${TENANTS_TABLE} (
     id text PRIMARY KEY,
     record jsonb NOT NULL
   );
   CREATE UNIQUE INDEX ${TENANTS_TABLE}_lower_id ON ${TENANTS_TABLE} (lower(id));
   CREATE TABLE ${KEYS_TABLE} (
     id text PRIMARY KEY,
     tenant text NOT NULL,
     record jsonb NOT NULL
   );
   CREATE INDEX ${KEYS_TABLE}_tenant ON ${KEYS_TABLE} (tenant, id);`,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

export class SchemaTooNewError extends Error {
  constructor(found: number) {
    super(`the registry database has schema version ${found}; this tenantgate knows up to ${SCHEMA_VERSION} (a newer tenantgate migrated it)`);
  }
}

/**
 * Brings the schema up to SCHEMA_VERSION; returns the versions it applied
 * (none when another replica, or an earlier start, already did).
 */
export async function migrate(client: ClientBase): Promise<number[]> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await client.query(`CREATE TABLE IF NOT EXISTS ${VERSION_TABLE} (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`);
    const { rows } = await client.query<{ v: number | null }>(`SELECT max(version) AS v FROM ${VERSION_TABLE}`);
    const current = rows[0]?.v ?? 0;
    if (current > SCHEMA_VERSION) throw new SchemaTooNewError(current);
    const applied: number[] = [];
    for (let v = current + 1; v <= SCHEMA_VERSION; v++) {
      await client.query(MIGRATIONS[v - 1]!);
      await client.query(`INSERT INTO ${VERSION_TABLE} (version) VALUES ($1)`, [v]);
      applied.push(v);
    }
    await client.query('COMMIT');
    return applied;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}
