/**
 * The import rules of registry/backup.ts over a real file registry (a state
 * file in a temp directory): what is created, replaced, left alone or kept,
 * and the refusals that leave the registry as it was.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exportRegistry, importRegistry, ImportError } from '../../../src/registry/backup.js';
import { FileRegistry } from '../../../src/registry/file-registry.js';
import type { KeyRecord, TenantRecord } from '../../../src/registry/types.js';

const T0 = '2026-01-01T00:00:00.000Z';
const T1 = '2026-02-01T00:00:00.000Z';
const tenant = (id: string, extra: Partial<TenantRecord> = {}): TenantRecord => ({ id, plan: 'free', status: 'active', hosts: [], overrides: {}, createdAt: T0, updatedAt: T0, ...extra });
const key = (id: string, tenantId: string, extra: Partial<KeyRecord> = {}): KeyRecord => ({
  id,
  tenant: tenantId,
  hash: `sha256:${'a'.repeat(43)}`,
  scopes: [],
  env: 'live',
  revoked: false,
  createdAt: T0,
  updatedAt: T0,
  ...extra,
});

const open = () => FileRegistry.open(join(mkdtempSync(join(tmpdir(), 'tg-backup-unit-')), 'state.json'));
const HEADER = JSON.stringify({ type: 'header', format: 'tenantgate-registry', version: 1 });
const file = (...records: (TenantRecord | KeyRecord)[]) => [HEADER, ...records.map((r) => JSON.stringify({ type: 'tenant' in r ? 'key' : 'tenant', ...r }))];

async function exported(registry: FileRegistry, extra: string[] = []): Promise<string[]> {
  let text = '';
  await exportRegistry(registry, extra, (l) => void (text += l));
  return text.trimEnd().split('\n');
}

describe('importRegistry', () => {
  it('creates, then finds everything unchanged; an export imports into an empty registry as it was', async () => {
    const a = await open();
    expect(await importRegistry(a, file(tenant('globex'), key('ak_1', 'globex'), key('ak_2', 'cfg')), ['cfg'])).toEqual({ created: 3, updated: 0, unchanged: 0, kept: 0 });
    expect(await importRegistry(a, file(tenant('globex'), key('ak_1', 'globex'), key('ak_2', 'cfg')), ['cfg'])).toEqual({ created: 0, updated: 0, unchanged: 3, kept: 0 });
    const lines = await exported(a, ['cfg']);
    const b = await open();
    expect(await importRegistry(b, lines, ['cfg'])).toEqual({ created: 3, updated: 0, unchanged: 0, kept: 0 });
    expect((await exported(b, ['cfg'])).slice(1)).toEqual(lines.slice(1));
  });

  it('replaces an older record, keeps a newer one, and treats lastUsedAt as bookkeeping', async () => {
    const r = await open();
    await r.createTenant(tenant('globex', { status: 'suspended', updatedAt: T1 }));
    await r.createKey(key('ak_1', 'globex'));
    await r.createKey(key('ak_2', 'globex', { lastUsedAt: T1 }));
    const counts = await importRegistry(r, file(tenant('globex'), key('ak_1', 'globex', { revoked: true, updatedAt: T1 }), key('ak_2', 'globex')), []);
    expect(counts).toEqual({ created: 0, updated: 1, unchanged: 1, kept: 1 });
    expect((await r.getTenant('globex'))!.status).toBe('suspended');
    expect(r.getKey('ak_1')!.revoked).toBe(true);
  });

  it('refuses, writing nothing: a key whose tenant exists nowhere, a key of another tenant, a case twin', async () => {
    const r = await open();
    await r.createTenant(tenant('Acme'));
    await r.createKey(key('ak_1', 'Acme'));
    const refusal = importRegistry(r, file(tenant('new'), tenant('acme'), key('ak_1', 'new'), key('ak_2', 'ghost')), []);
    await expect(refusal).rejects.toThrow(ImportError);
    await expect(refusal).rejects.toMatchObject({
      problems: [
        'line 3: tenant "acme": the registry has "Acme", which differs only in case',
        'line 4: key "ak_1" belongs to tenant "Acme" in the registry, not "new"',
        'line 5: key "ak_2": its tenant "ghost" is neither in this file, nor in the registry, nor in the config',
      ],
    });
    expect((await r.listTenants()).map((t) => t.id)).toEqual(['Acme']);
    expect(r.getKey('ak_2')).toBeNull();
  });

  it('names every bad line, and skips blank ones', async () => {
    const r = await open();
    const lines = [HEADER, '', 'nope', JSON.stringify({ type: 'tenant', id: 'x' }), '   ', JSON.stringify({ type: 'key' })];
    await expect(importRegistry(r, lines, [])).rejects.toMatchObject({
      problems: ['line 3: not JSON', expect.stringMatching(/^line 4: tenant: plan: /), expect.stringMatching(/^line 6: key: id: /)],
    });
  });
});
