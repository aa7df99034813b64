/**
 * Admin API — the registry itself: `POST /admin/registry/confirm`, an
 * operator's word that a registry found emptied is right as it now stands
 * (restored with `tenantgate registry import`, or accepted as empty). Every
 * replica then drops the records it kept and reloads from the registry.
 */
import { z } from 'zod';
import type { AdminContext, Reply } from './context.js';
import { AdminError, parseBody } from './http.js';

export async function confirmRegistry(ctx: AdminContext): Promise<Reply> {
  // No fields: a body naming any is a mistake worth a 400, not silently a confirmation.
  parseBody(z.strictObject({}), ctx.body);
  const registry = ctx.directory.registry;
  if (registry.confirmContents === undefined) throw new AdminError('conflict', `A ${registry.kind} registry needs no confirmation.`);
  const before = registry.problem?.() ?? null;
  await registry.confirmContents();
  ctx.state.logger.warn({ actor: ctx.actor, before }, 'admin confirmed the registry');
  return { status: 200, body: { confirmed: true, before, problem: registry.problem?.() ?? null } };
}
