/**
 * Admin API — API keys: create for a tenant (the plaintext is in this answer
 * and nowhere else), list and get (never a hash), rotate with an overlap
 * window, revoke. Keys from the config file are listed, read-only.
 *
 * Rotation creates the new key and sets the old one's `expiresAt` to now +
 * `overlapSec` (or keeps an earlier expiry): the verifier checks `expiresAt`
 * on every request, cached or not, so the old key stops by itself when the
 * overlap ends, on every replica, with no further message.
 */
import { z } from 'zod';
import { generateApiKey } from '../auth/api-key-format.js';
import type { ApiKeyRecord } from '../auth/types.js';
import { configSchema } from '../config/schema.js';
import type { KeyRecord } from '../registry/types.js';
import type { AdminContext, Reply } from './context.js';
import { AdminError, audit, paginate, parseBody } from './http.js';
import { findTenant } from './tenants.js';
import { UNLIMITED } from '../limits/plans.js';

const KEY = configSchema.shape.apiKeys.unwrap().element.shape;
const scope = z.string().min(1).max(200).regex(/^\S+$/, 'a scope cannot contain whitespace');
const MAX_OVERLAP_SEC = 30 * 86_400;

export const createKeyBody = z.strictObject({
  id: KEY.id.optional(),
  project: KEY.project,
  scopes: z.array(scope).max(100).optional(),
  env: z.enum(['live', 'test']).optional(),
  expiresAt: KEY.expiresAt,
  rate: KEY.rate,
});

export const rotateKeyBody = z.strictObject({ overlapSec: z.number().int().min(0).max(MAX_OVERLAP_SEC).default(0) });

/** A key as the API shows it: never the hash. */
export type KeyView = Omit<KeyRecord, 'hash' | 'createdAt' | 'updatedAt'> & { createdAt?: string; updatedAt?: string; source: 'config' | 'admin' };

function view(k: ApiKeyRecord | KeyRecord, source: 'config' | 'admin', lastUsed?: string): KeyView {
  const { hash: _hash, ...rest } = k;
  const lastUsedAt = 'lastUsedAt' in rest && rest.lastUsedAt !== undefined ? rest.lastUsedAt : lastUsed;
  return { ...rest, ...(lastUsedAt === undefined ? {} : { lastUsedAt }), source };
}

const withoutHash = (k: KeyRecord | null) => (k === null ? null : view(k, 'admin'));

async function findKey(ctx: AdminContext, id: string): Promise<{ record: ApiKeyRecord | KeyRecord; source: 'config' | 'admin' }> {
  const own = ctx.state.config.source.apiKeys.find((k) => k.id === id);
  if (own !== undefined) return { record: own, source: 'config' };
  const record = await ctx.directory.registry.getKey(id);
  if (record === null) throw new AdminError('not_found', `API key "${id}" does not exist.`);
  return { record, source: 'admin' };
}

async function mutableKey(ctx: AdminContext, id: string): Promise<KeyRecord> {
  const { record, source } = await findKey(ctx, id);
  if (source === 'config') throw new AdminError('conflict', `API key "${id}" is defined in the config file, which is read-only here; edit the file instead.`);
  return record as KeyRecord;
}

/** Stores a new key record; its id must be new to the config and the registry. */
async function insertKey(ctx: AdminContext, fields: Omit<KeyRecord, 'id' | 'hash' | 'createdAt' | 'updatedAt' | 'revoked'>, id?: string): Promise<{ key: string; record: KeyRecord }> {
  if (id !== undefined && ctx.state.config.source.apiKeys.some((k) => k.id === id)) throw new AdminError('conflict', `API key "${id}" is defined in the config file.`);
  const { key, id: keyId, hash } = generateApiKey({ env: fields.env, id, pepper: ctx.directory.pepper });
  const now = new Date().toISOString();
  const record: KeyRecord = { id: keyId, ...fields, hash, revoked: false, createdAt: now, updatedAt: now };
  if (!(await ctx.directory.registry.createKey(record))) throw new AdminError('conflict', `API key "${keyId}" already exists.`);
  // Another replica may have cached "unknown" for this id (someone tried it): drop that everywhere.
  await ctx.directory.changed(`key:${keyId}`);
  return { key, record };
}

/** A key that still counts against the plan's entitlements: not revoked, not expired. */
const live = (k: ApiKeyRecord, nowMs: number): boolean => !k.revoked && (k.expiresAt === undefined || Date.parse(k.expiresAt) > nowMs);

/**
 * The plan's `entitlements` (SPEC §11): a new key past `apiKeys`, or a key
 * with a project the tenant's keys do not have yet past `projects`, is 409
 * entitlement_exceeded. Live keys of the config file and of the registry
 * count. Checked by this replica before it writes, so two replicas creating
 * keys for one tenant at the same instant may pass it together.
 */
async function checkEntitlements(ctx: AdminContext, tenantId: string, project: string | undefined): Promise<void> {
  const { apiKeys, projects } = (ctx.state.config.limits.get(tenantId) ?? UNLIMITED).entitlements;
  if (apiKeys === null && projects === null) return;
  const now = Date.now();
  const own = ctx.state.config.source.apiKeys.filter((k) => k.tenant === tenantId);
  const ownIds = new Set(own.map((k) => k.id));
  const keys = [...own, ...(await ctx.directory.registry.listKeys(tenantId)).filter((k) => !ownIds.has(k.id))].filter((k) => live(k, now));
  if (apiKeys !== null && keys.length >= apiKeys) throw new AdminError('entitlement_exceeded', `Tenant "${tenantId}" has ${keys.length} API keys; its plan allows ${apiKeys}.`);
  const used = new Set(keys.flatMap((k) => (k.project === undefined ? [] : [k.project])));
  if (projects !== null && project !== undefined && !used.has(project) && used.size >= projects) {
    throw new AdminError('entitlement_exceeded', `Tenant "${tenantId}" has keys for ${used.size} projects; its plan allows ${projects}.`);
  }
}

export async function createKey(ctx: AdminContext): Promise<Reply> {
  const body = parseBody(createKeyBody, ctx.body);
  const tenant = findTenant(ctx, ctx.params.id!);
  if (tenant.status === 'deleted') throw new AdminError('conflict', `Tenant "${tenant.id}" is deleted.`);
  if (body.expiresAt !== undefined && !(Date.parse(body.expiresAt) > Date.now())) throw new AdminError('bad_request', 'Invalid body: expiresAt: is in the past.');
  await checkEntitlements(ctx, tenant.id, body.project);
  const { key, record } = await insertKey(
    ctx,
    {
      tenant: tenant.id,
      ...(body.project === undefined ? {} : { project: body.project }),
      scopes: [...new Set(body.scopes ?? [])],
      env: body.env ?? 'live',
      ...(body.expiresAt === undefined ? {} : { expiresAt: body.expiresAt }),
      ...(body.rate === undefined ? {} : { rate: body.rate }),
    },
    body.id,
  );
  audit(ctx.state, ctx.actor, 'key.create', { type: 'key', id: record.id, tenant: tenant.id }, null, view(record, 'admin'));
  return { status: 201, body: { key, record: view(record, 'admin') } };
}

export async function listKeys(ctx: AdminContext): Promise<Reply> {
  const tenant = findTenant(ctx, ctx.params.id!);
  const lastUsed = ctx.directory.lastUsed;
  const own = ctx.state.config.source.apiKeys.filter((k) => k.tenant === tenant.id).map((k) => view(k, 'config', lastUsed.get(k.id)));
  const ownIds = new Set(own.map((k) => k.id));
  const dynamic = (await ctx.directory.registry.listKeys(tenant.id)).filter((k) => !ownIds.has(k.id)).map((k) => view(k, 'admin', lastUsed.get(k.id)));
  return { status: 200, body: paginate([...own, ...dynamic], ctx.query) };
}

export async function getKey(ctx: AdminContext): Promise<Reply> {
  const { record, source } = await findKey(ctx, ctx.params.keyId!);
  return { status: 200, body: view(record, source, ctx.directory.lastUsed.get(record.id)) };
}

export async function rotateKey(ctx: AdminContext): Promise<Reply> {
  const { overlapSec } = parseBody(rotateKeyBody, ctx.body);
  const old = await mutableKey(ctx, ctx.params.keyId!);
  if (old.revoked) throw new AdminError('conflict', `API key "${old.id}" is revoked; create a new key instead.`);
  if (old.rotatedTo !== undefined) throw new AdminError('conflict', `API key "${old.id}" was already rotated (to "${old.rotatedTo}").`);
  const tenant = findTenant(ctx, old.tenant);
  if (tenant.status === 'deleted') throw new AdminError('conflict', `Tenant "${tenant.id}" is deleted.`);
  const { key, record } = await insertKey(ctx, {
    tenant: old.tenant,
    ...(old.project === undefined ? {} : { project: old.project }),
    scopes: old.scopes,
    env: old.env,
    ...(old.expiresAt === undefined ? {} : { expiresAt: old.expiresAt }),
    ...(old.rate === undefined ? {} : { rate: old.rate }),
  });
  const overlapEnd = Date.now() + overlapSec * 1000;
  const expiresAt = old.expiresAt !== undefined && Date.parse(old.expiresAt) < overlapEnd ? old.expiresAt : new Date(overlapEnd).toISOString();
  const after: KeyRecord = { ...old, expiresAt, rotatedTo: record.id, updatedAt: new Date().toISOString() };
  await ctx.directory.registry.putKey(after);
  await ctx.directory.changed(`key:${old.id}`);
  audit(ctx.state, ctx.actor, 'key.rotate', { type: 'key', id: old.id, tenant: old.tenant }, withoutHash(old), { old: withoutHash(after), new: view(record, 'admin'), overlapSec });
  return { status: 201, body: { key, record: view(record, 'admin'), previous: view(after, 'admin') } };
}

export async function revokeKey(ctx: AdminContext): Promise<Reply> {
  if (ctx.body !== undefined) throw new AdminError('bad_request', 'Invalid body: this call takes no body.');
  const before = await mutableKey(ctx, ctx.params.keyId!);
  if (before.revoked) return { status: 200, body: view(before, 'admin') };
  const after: KeyRecord = { ...before, revoked: true, updatedAt: new Date().toISOString() };
  await ctx.directory.registry.putKey(after);
  await ctx.directory.changed(`key:${before.id}`);
  audit(ctx.state, ctx.actor, 'key.revoke', { type: 'key', id: before.id, tenant: before.tenant }, withoutHash(before), withoutHash(after));
  return { status: 200, body: view(after, 'admin') };
}
