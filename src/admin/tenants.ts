/**
 * Admin API — tenants: create, list, get (with current quota use), update,
 * suspend / activate, delete (a soft delete: the tenant becomes unknown to the
 * proxy, its record and id stay). Tenants from the config file are listed and
 * shown, read-only: changing one is 409.
 */
import { z } from 'zod';
import { configSchema } from '../config/schema.js';
import { PeriodClock } from '../limits/periods.js';
import { MemoryLimitStore } from '../limits/memory-store.js';
import { overrideProblems } from '../limits/plans.js';
import { limitUsage } from '../limits/usage-view.js';
import { sameIdButCase } from '../registry/tenant-ids.js';
import type { TenantRecord } from '../registry/types.js';
import type { AdminContext, Reply } from './context.js';
import { AdminError, audit, paginate, parseBody } from './http.js';

const TENANT = configSchema.shape.tenants.unwrap().element.shape;
const host = z.string().regex(/^(\*\.)?[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/, 'must be a host name, optionally starting with "*."');
const hosts = z.array(host).max(100);

export const createTenantBody = z.strictObject({
  id: TENANT.id,
  plan: z.string().min(1),
  status: z.enum(['active', 'suspended']).optional(),
  hosts: hosts.optional(),
  billingDay: TENANT.billingDay.unwrap().optional(),
  overrides: TENANT.overrides.unwrap().optional(),
});

export const updateTenantBody = z
  .strictObject({ plan: z.string().min(1).optional(), hosts: hosts.optional(), billingDay: TENANT.billingDay.unwrap().optional(), overrides: TENANT.overrides.unwrap().optional() })
  .refine((b) => b.plan !== undefined || b.hosts !== undefined || b.billingDay !== undefined || b.overrides !== undefined, 'give at least one of plan, hosts, billingDay, overrides');

type Source = 'config' | 'admin';
export type TenantView = Omit<TenantRecord, 'createdAt' | 'updatedAt'> & { createdAt?: string; updatedAt?: string; source: Source };

function configTenants(ctx: AdminContext): TenantView[] {
  return ctx.state.config.source.tenants.map((t) => ({ id: t.id, plan: t.plan, status: t.status, hosts: t.hosts, billingDay: t.billingDay, overrides: t.overrides, source: 'config' as const }));
}

const view = (t: TenantRecord): TenantView => ({ ...t, source: 'admin' });

/** The tenant `id` from the config or the registry; 404 when neither has it. */
export function findTenant(ctx: AdminContext, id: string): TenantView {
  const own = ctx.state.config.source.tenants.find((t) => t.id === id);
  if (own !== undefined) return configTenants(ctx).find((t) => t.id === id)!;
  const t = ctx.directory.tenant(id);
  if (t === undefined) throw new AdminError('not_found', `Tenant "${id}" does not exist.`);
  return view(t);
}

/** A registry tenant that may be changed: 409 for config tenants and deleted ones. */
function mutable(ctx: AdminContext, id: string): TenantRecord {
  const t = findTenant(ctx, id);
  if (t.source === 'config') throw new AdminError('conflict', `Tenant "${id}" is defined in the config file, which is read-only here; edit the file instead.`);
  if (t.status === 'deleted') throw new AdminError('conflict', `Tenant "${id}" is deleted.`);
  return ctx.directory.tenant(id)!;
}

function checkPlan(ctx: AdminContext, plan: string): void {
  const plans = Object.keys(ctx.state.config.source.plans);
  if (!plans.includes(plan)) throw new AdminError('bad_request', `Invalid body: plan: unknown plan "${plan}" (plans: ${plans.join(', ') || 'none defined'}).`);
}

/** `overrides.limits` must name the plan's limits, each with its own kind (as the config file's check). */
function checkOverrides(ctx: AdminContext, plan: string, overrides: TenantRecord['overrides']): void {
  const problem = overrideProblems(ctx.state.config.source.plans[plan], overrides)[0];
  if (problem !== undefined) throw new AdminError('bad_request', `Invalid body: overrides.limits.${problem.name}: ${problem.message}.`);
}

/** A host already bound to another tenant (config or registry) is a conflict — the same rule as the config's. */
function checkHosts(ctx: AdminContext, id: string, list: readonly string[]): void {
  const dir = ctx.state.config.tenants;
  const seen = new Set<string>();
  for (const h of list) {
    const lower = h.toLowerCase();
    if (seen.has(lower)) throw new AdminError('bad_request', `Invalid body: hosts: "${h}" is listed twice.`);
    seen.add(lower);
    const owner = lower.startsWith('*.') ? dir.wildcardOwners.find((w) => w.suffix === lower.slice(1))?.tenantId : dir.hostOwner.get(lower);
    if (owner !== undefined && owner !== id) throw new AdminError('conflict', `Host "${h}" already belongs to tenant "${owner}".`);
  }
}

async function save(ctx: AdminContext, before: TenantRecord, after: TenantRecord, action: string): Promise<Reply> {
  await ctx.directory.registry.putTenant(after);
  await ctx.directory.changed(`tenant:${after.id}`, after);
  audit(ctx.state, ctx.actor, action, { type: 'tenant', id: after.id }, before, after);
  return { status: 200, body: view(after) };
}

/**
 * Tenant ids are unique regardless of case (`ACME` beside `acme` is 409): an
 * upstream that looks ids up case-insensitively would merge the two. Checked
 * here against the config and the registry as this replica sees them (for the
 * message); the registry's create refuses it atomically as well (for races).
 */
function checkIdCase(ctx: AdminContext, id: string): void {
  const other = sameIdButCase(ctx.state.config.source.tenants.map((t) => t.id), id);
  if (other !== undefined) throw new AdminError('conflict', `Tenant "${id}" differs only in case from "${other}", which the config file defines; tenant ids are unique regardless of case.`);
  const dynamic = sameIdButCase(ctx.directory.allTenants().map((t) => t.id), id);
  if (dynamic !== undefined) throw new AdminError('conflict', `Tenant "${id}" differs only in case from existing tenant "${dynamic}"; tenant ids are unique regardless of case.`);
}

export async function createTenant(ctx: AdminContext): Promise<Reply> {
  const body = parseBody(createTenantBody, ctx.body);
  if (ctx.state.config.source.tenants.some((t) => t.id === body.id)) throw new AdminError('conflict', `Tenant "${body.id}" is defined in the config file.`);
  checkIdCase(ctx, body.id);
  checkPlan(ctx, body.plan);
  checkOverrides(ctx, body.plan, body.overrides ?? {});
  checkHosts(ctx, body.id, body.hosts ?? []);
  const now = new Date().toISOString();
  const record: TenantRecord = {
    id: body.id,
    plan: body.plan,
    status: body.status ?? 'active',
    hosts: body.hosts ?? [],
    ...(body.billingDay === undefined ? {} : { billingDay: body.billingDay }),
    overrides: body.overrides ?? {},
    createdAt: now,
    updatedAt: now,
  };
  if (!(await ctx.directory.registry.createTenant(record))) {
    throw new AdminError('conflict', `Tenant "${body.id}" already exists (tenant ids are unique regardless of case).`);
  }
  await ctx.directory.changed(`tenant:${record.id}`, record);
  audit(ctx.state, ctx.actor, 'tenant.create', { type: 'tenant', id: record.id }, null, record);
  return { status: 201, body: view(record) };
}

export async function listTenants(ctx: AdminContext): Promise<Reply> {
  const plan = ctx.query.get('plan');
  const status = ctx.query.get('status');
  if (status !== null && !['active', 'suspended', 'deleted'].includes(status)) throw new AdminError('bad_request', 'status must be active, suspended or deleted.');
  const own = new Set(ctx.state.config.source.tenants.map((t) => t.id));
  const all = [...configTenants(ctx), ...ctx.directory.allTenants().filter((t) => !own.has(t.id)).map(view)];
  // Deleted tenants only when asked for.
  const matching = all.filter((t) => (plan === null || t.plan === plan) && (status === null ? t.status !== 'deleted' : t.status === status));
  return { status: 200, body: paginate(matching, ctx.query) };
}

const periods = new PeriodClock();

export async function getTenant(ctx: AdminContext): Promise<Reply> {
  const t = findTenant(ctx, ctx.params.id!);
  return { status: 200, body: { ...t, usage: await currentUsage(ctx, t.id), limits: await limitsNow(ctx, t.id) } };
}

/** Every limit of the tenant's plan with its use, limit and reset (src/limits/usage-view.ts); null when the store cannot be read. */
async function limitsNow(ctx: AdminContext, id: string) {
  const limits = ctx.state.config.limits.get(id);
  if (limits === undefined) return [];
  return limitUsage(ctx.state.limits, ctx.state.config.source.store.keyPrefix, id, limits, null, Date.now()).catch(() => null);
}

/** Quota use in the current UTC day and month, from the limit store's own counters. */
export async function currentUsage(ctx: AdminContext, id: string) {
  const limits = ctx.state.config.limits.get(id);
  const { day, month } = periods.at(Date.now());
  const base = `${ctx.state.config.source.store.keyPrefix}{${id}}:`;
  const keys = [`${base}q:d:${day.id}`, `${base}q:m:${month.id}`];
  const store = ctx.state.limits;
  let used: (number | null)[] = [null, null];
  if (store instanceof MemoryLimitStore) used = store.quotaUsed(keys);
  else if (ctx.directory.registry.readCounters !== undefined) used = await ctx.directory.registry.readCounters(keys).catch(() => [null, null]);
  const period = (i: number, limit: number | null | undefined, resetAtMs: number, periodId: string) => ({
    period: periodId,
    used: used[i] ?? null,
    limit: limit ?? null,
    remaining: limit === null || limit === undefined || used[i] === null ? null : Math.max(0, limit - used[i]!),
    resetAt: new Date(resetAtMs).toISOString(),
  });
  return { daily: period(0, limits?.daily, day.endsAtMs, day.id), monthly: period(1, limits?.monthly, month.endsAtMs, month.id) };
}

export async function updateTenant(ctx: AdminContext): Promise<Reply> {
  const before = mutable(ctx, ctx.params.id!);
  const body = parseBody(updateTenantBody, ctx.body);
  if (body.plan !== undefined) checkPlan(ctx, body.plan);
  checkOverrides(ctx, body.plan ?? before.plan, body.overrides ?? before.overrides);
  if (body.hosts !== undefined) checkHosts(ctx, before.id, body.hosts);
  const after: TenantRecord = {
    ...before,
    ...(body.plan === undefined ? {} : { plan: body.plan }),
    ...(body.hosts === undefined ? {} : { hosts: body.hosts }),
    ...(body.billingDay === undefined ? {} : { billingDay: body.billingDay }),
    ...(body.overrides === undefined ? {} : { overrides: body.overrides }),
    updatedAt: new Date().toISOString(),
  };
  return save(ctx, before, after, 'tenant.update');
}

export function setStatus(status: 'active' | 'suspended' | 'deleted') {
  const action = status === 'active' ? 'tenant.activate' : status === 'suspended' ? 'tenant.suspend' : 'tenant.delete';
  return async (ctx: AdminContext): Promise<Reply> => {
    if (ctx.body !== undefined && (typeof ctx.body !== 'object' || ctx.body === null || Object.keys(ctx.body).length > 0)) {
      throw new AdminError('bad_request', 'Invalid body: this call takes no body.');
    }
    const before = mutable(ctx, ctx.params.id!);
    return save(ctx, before, { ...before, status, updatedAt: new Date().toISOString() }, action);
  };
}
