/**
 * Admin API — the registry itself: `POST /admin/registry/confirm`, an
 * operator's word that a registry found emptied is right as it now stands
 * (restored with `tenantgate registry import`, or accepted as empty). Every
 * replica then drops the records it kept and reloads from the registry.
 */
import type { AdminContext, Reply } from './context.js';
import { AdminError } from './http.js';

export async function confirmRegistry(ctx: AdminContext): Promise<Reply> {
  const registry = ctx.directory.registry;
  if (registry.confirmContents === undefined) throw new AdminError('conflict', `A ${registry.kind} registry needs no confirmation.`);
  const before = registry.problem?.() ?? null;
  await registry.confirmContents();
  ctx.state.logger.warn({ actor: ctx.actor, before }, 'admin confirmed the registry');
  return { status: 200, body: { confirmed: true, before, problem: registry.problem?.() ?? null } };
}
