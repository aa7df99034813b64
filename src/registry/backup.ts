/**
 * `registry export` / `registry import` (SPEC §14): the registry's tenant and
 * API key records as NDJSON, over the generic {@link Registry} (Redis, file or
 * PostgreSQL alike). Records carry hashes only: no plaintext key is ever
 * stored, so none can be exported.
 *
 * Format: a header line `{"type":"header","format":"tenantgate-registry","version":1,…}`,
 * then one `{"type":"tenant",…}` line per tenant (deleted ones too: their ids
 * stay reserved), then one `{"type":"key",…}` line per key.
 *
 * Import is all-or-nothing up to the first write: every line is parsed and
 * checked, and every record compared with the registry's, before anything is
 * written. Then each record is created, replaced (the file's is at least as
 * new: `updatedAt`), left alone (equal), or kept (the registry's is newer, so
 * a restore never un-revokes a key or revives a deleted tenant). A write that
 * fails midway leaves the records before it written; importing the same file
 * again completes the rest. One `all` invalidation at the end makes running
 * replicas re-read everything.
 */
import { z } from 'zod';
import { configSchema } from '../config/schema.js';
import { sameIdButCase } from './tenant-ids.js';
import type { KeyRecord, Registry, TenantRecord } from './types.js';

export const FORMAT = 'tenantgate-registry';
export const VERSION = 1;
/** A record is a few hundred bytes; a line far longer is not one. */
export const MAX_LINE_BYTES = 64 * 1024;

const TENANT = configSchema.shape.tenants.unwrap().element.shape;
const KEY = configSchema.shape.apiKeys.unwrap().element.shape;
const time = z.iso.datetime({ offset: true });

const header = z.object({ type: z.literal('header'), format: z.literal(FORMAT), version: z.number() });

const tenantLine = z.strictObject({
  type: z.literal('tenant'),
  id: TENANT.id,
  plan: TENANT.plan,
  status: z.enum(['active', 'suspended', 'deleted']),
  hosts: z.array(z.string().min(1)).max(100),
  overrides: TENANT.overrides.unwrap(),
  billingDay: TENANT.billingDay.unwrap().optional(),
  createdAt: time,
  updatedAt: time,
});

const keyLine = z.strictObject({
  ...KEY,
  type: z.literal('key'),
  createdAt: time,
  updatedAt: time,
  lastUsedAt: time.optional(),
  rotatedTo: KEY.id.optional(),
});

export interface ExportCounts {
  tenants: number;
  keys: number;
}

/**
 * Writes the registry as NDJSON lines through `write` (which may wait for the
 * output to drain). `extraTenants`: tenant ids the registry may hold keys for
 * without a tenant record (the config's tenants).
 */
export async function exportRegistry(registry: Registry, extraTenants: Iterable<string>, write: (line: string) => void | Promise<void>): Promise<ExportCounts> {
  const tenants = (await registry.listTenants()).sort((a, b) => cmp(a.id, b.id));
  await write(`${JSON.stringify({ type: 'header', format: FORMAT, version: VERSION, registry: registry.kind, exportedAt: new Date().toISOString() })}\n`);
  for (const t of tenants) await write(`${JSON.stringify({ type: 'tenant', ...t })}\n`);
  const owners = [...new Set([...tenants.map((t) => t.id), ...extraTenants])].sort(cmp);
  let keys = 0;
  for (const owner of owners) {
    for (const k of (await registry.listKeys(owner)).sort((a, b) => cmp(a.id, b.id))) {
      await write(`${JSON.stringify({ type: 'key', ...k })}\n`);
      keys++;
    }
  }
  return { tenants: tenants.length, keys };
}

export interface ImportCounts {
  created: number;
  updated: number;
  unchanged: number;
  /** The registry's record is newer than the file's: left as it is. */
  kept: number;
}

/** A file that cannot be imported: every problem found, each naming its line. Nothing was written. */
export class ImportError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
  }
}

type Action = 'create' | 'update' | 'unchanged' | 'kept';
interface Planned<T> {
  line: number;
  record: T;
  action: Action;
}

/**
 * Imports NDJSON `lines` into `registry`. `knownTenants`: tenant ids that
 * exist outside the registry (the config's), which keys may belong to.
 * Throws ImportError (nothing written) for a bad file.
 */
export async function importRegistry(registry: Registry, lines: AsyncIterable<string> | Iterable<string>, knownTenants: Iterable<string>): Promise<ImportCounts> {
  const { tenants, keys } = await read(lines);
  const problems: string[] = [];

  const existingTenants = new Map((await registry.listTenants()).map((t) => [t.id, t]));
  const tenantPlan: Planned<TenantRecord>[] = [];
  for (const { line, record } of tenants) {
    const existing = existingTenants.get(record.id);
    if (existing === undefined) {
      const twin = sameIdButCase(existingTenants.keys(), record.id);
      if (twin !== undefined) problems.push(`line ${line}: tenant "${record.id}": the registry has "${twin}", which differs only in case`);
    }
    tenantPlan.push({ line, record, action: decide(existing, record) });
  }

  const owners = new Set([...tenants.map((t) => t.record.id), ...existingTenants.keys(), ...knownTenants]);
  const keyPlan: Planned<KeyRecord>[] = [];
  for (let i = 0; i < keys.length; i += 500) {
    const batch = keys.slice(i, i + 500);
    const existing = await Promise.all(batch.map(({ record }) => registry.getKey(record.id)));
    batch.forEach(({ line, record }, j) => {
      const had = existing[j] ?? undefined;
      if (!owners.has(record.tenant)) problems.push(`line ${line}: key "${record.id}": its tenant "${record.tenant}" is neither in this file, nor in the registry, nor in the config`);
      else if (had !== undefined && had.tenant !== record.tenant) problems.push(`line ${line}: key "${record.id}" belongs to tenant "${had.tenant}" in the registry, not "${record.tenant}"`);
      keyPlan.push({ line, record, action: decide(had, record) });
    });
  }
  if (problems.length > 0) throw new ImportError(problems);

  const counts: ImportCounts = { created: 0, updated: 0, unchanged: 0, kept: 0 };
  for (const p of tenantPlan) {
    await apply(p, (t) => registry.createTenant(t), (t) => registry.putTenant(t), `tenant "${p.record.id}"`);
    counts[counted(p.action)]++;
  }
  for (const p of keyPlan) {
    await apply(p, (k) => registry.createKey(k), (k) => registry.putKey(k), `key "${p.record.id}"`);
    counts[counted(p.action)]++;
  }
  // An import is the operator's restore: it also confirms a registry Redis found emptied (docs/registry.md), which reloads every replica.
  if (registry.confirmContents !== undefined) await registry.confirmContents();
  else if (counts.created + counts.updated > 0) await registry.publish('all');
  return counts;
}

const counted = (a: Action): keyof ImportCounts => (a === 'create' ? 'created' : a === 'update' ? 'updated' : a);

async function apply<T>(p: Planned<T>, create: (r: T) => Promise<boolean>, put: (r: T) => Promise<void>, what: string): Promise<void> {
  if (p.action === 'create') {
    // Someone created the same id since the plan was made: stop rather than overwrite it.
    if (!(await create(p.record))) throw new Error(`line ${p.line}: ${what} was created by someone else during the import; run the import again`);
  } else if (p.action === 'update') await put(p.record);
}

/** What to do with the file's `record` given the registry's. `lastUsedAt` is bookkeeping, not content. */
function decide<T extends { updatedAt: string; lastUsedAt?: string }>(existing: T | undefined | null, record: T): Action {
  if (existing === undefined || existing === null) return 'create';
  if (canonical(existing) === canonical(record)) return 'unchanged';
  return Date.parse(existing.updatedAt) > Date.parse(record.updatedAt) ? 'kept' : 'update';
}

function canonical(record: object): string {
  const { lastUsedAt: _ignored, ...rest } = record as { lastUsedAt?: string };
  return JSON.stringify(sortKeys(rest));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v === null || typeof v !== 'object') return v;
  return Object.fromEntries(
    Object.keys(v)
      .sort()
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]),
  );
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Parses and checks every line; throws ImportError naming each bad one. */
async function read(lines: AsyncIterable<string> | Iterable<string>): Promise<{ tenants: { line: number; record: TenantRecord }[]; keys: { line: number; record: KeyRecord }[] }> {
  const problems: string[] = [];
  const tenants: { line: number; record: TenantRecord }[] = [];
  const keys: { line: number; record: KeyRecord }[] = [];
  const seen = new Map<string, number>();
  let n = 0;
  let sawHeader = false;
  for await (const raw of lines) {
    n++;
    const text = raw.trim();
    if (text === '') continue;
    const bad = (why: string) => void problems.push(`line ${n}: ${why}`);
    if (Buffer.byteLength(text) > MAX_LINE_BYTES) {
      bad(`longer than ${MAX_LINE_BYTES} bytes; not a registry record`);
      continue;
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      bad('not JSON');
      continue;
    }
    if (!sawHeader) {
      sawHeader = true;
      const h = header.safeParse(value);
      if (!h.success) {
        bad(`not a ${FORMAT} export (the first line must be its header: {"type":"header","format":"${FORMAT}","version":${VERSION},…})`);
        break;
      }
      if (h.data.version !== VERSION) {
        bad(`format version ${h.data.version}; this tenantgate reads version ${VERSION}`);
        break;
      }
      continue;
    }
    const type = (value as { type?: unknown } | null)?.type;
    const schema = type === 'tenant' ? tenantLine : type === 'key' ? keyLine : null;
    if (schema === null) {
      bad(`"type" must be "tenant" or "key"`);
      continue;
    }
    const parsed = schema.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      bad(`${type}: ${issue.path.length === 0 ? '' : `${issue.path.join('.')}: `}${issue.message}`);
      continue;
    }
    const { type: _type, ...record } = parsed.data;
    const id = `${type}:${record.id}`;
    const first = seen.get(id);
    if (first !== undefined) {
      bad(`${type} "${record.id}" is already on line ${first}`);
      continue;
    }
    seen.set(id, n);
    if (type === 'tenant') tenants.push({ line: n, record: record as TenantRecord });
    else keys.push({ line: n, record: record as KeyRecord });
  }
  if (!sawHeader) problems.push('the input is empty: not a registry export');
  if (problems.length > 0) throw new ImportError(problems);
  return { tenants, keys };
}
