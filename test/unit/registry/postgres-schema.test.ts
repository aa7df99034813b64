/**
 * The PostgreSQL registry's migrations, run against a database of this test
 * run's own: a second run applies nothing and changes nothing, replicas
 * migrating at once all succeed with each version applied once, and a
 * database a newer tenantgate migrated is refused, not written.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEYS_TABLE, migrate, SCHEMA_VERSION, SchemaTooNewError, TENANTS_TABLE, VERSION_TABLE } from '../../../src/registry/postgres-schema.js';
import { TestDatabase } from '../../helpers/postgres.js';

let db: TestDatabase;
beforeAll(async () => {
  db = await TestDatabase.create();
});
afterAll(async () => db.drop());

async function withClient<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: db.url() });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

const tables = () => db.sql<{ t: string }>(`SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`).then((r) => r.map((x) => x.t));
const indexes = () => db.sql<{ d: string }>(`SELECT indexdef AS d FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1`).then((r) => r.map((x) => x.d));

describe('registry schema migrations', () => {
  it('migrate twice: the first applies every version, the second nothing, and the schema is the same', async () => {
    expect(await withClient(migrate)).toEqual(Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1));
    const before = { tables: await tables(), indexes: await indexes() };
    expect(before.tables).toEqual([KEYS_TABLE, VERSION_TABLE, TENANTS_TABLE].sort());
    expect(before.indexes.some((d) => d.includes('UNIQUE') && d.includes('lower(id)'))).toBe(true);
    await db.sql(`INSERT INTO ${TENANTS_TABLE} (id, record) VALUES ('acme', '{}')`);

    expect(await withClient(migrate)).toEqual([]);
    expect({ tables: await tables(), indexes: await indexes() }).toEqual(before);
    expect(await db.sql(`SELECT id FROM ${TENANTS_TABLE}`)).toEqual([{ id: 'acme' }]);
  });

  it('six replicas migrating a fresh database at once all succeed; each version is applied exactly once', async () => {
    const fresh = await TestDatabase.create();
    try {
      const clients = Array.from({ length: 6 }, () => new pg.Client({ connectionString: fresh.url() }));
      for (const c of clients) c.on('error', () => {});
      await Promise.all(clients.map((c) => c.connect()));
      const applied = await Promise.all(clients.map((c) => migrate(c)));
      await Promise.all(clients.map((c) => c.end()));
      expect(applied.flat().sort()).toEqual(Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1));
      expect(await fresh.sql(`SELECT version FROM ${VERSION_TABLE} ORDER BY version`)).toEqual(Array.from({ length: SCHEMA_VERSION }, (_, i) => ({ version: i + 1 })));
    } finally {
      await fresh.drop();
    }
  });

  it('a database at a newer schema version is refused and left as it was', async () => {
    const fresh = await TestDatabase.create();
    try {
      await fresh.sql(`CREATE TABLE ${VERSION_TABLE} (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`);
      await fresh.sql(`INSERT INTO ${VERSION_TABLE} (version) VALUES ($1)`, [SCHEMA_VERSION + 1]);
      const c = new pg.Client({ connectionString: fresh.url() });
      await c.connect();
      await expect(migrate(c)).rejects.toBeInstanceOf(SchemaTooNewError);
      await c.end();
      const names = await fresh.sql<{ t: string }>(`SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public'`);
      expect(names.map((r) => r.t)).toEqual([VERSION_TABLE]);
    } finally {
      await fresh.drop();
    }
  });
});
