/**
 * The admin route table's scopes (src/admin/api.ts): every route names one,
 * reads and writes are split, every scope is needed somewhere, and the served
 * OpenAPI document says each operation's scope.
 */
import { describe, expect, it } from 'vitest';
import { ADMIN_ROUTES } from '../../../src/admin/api.js';
import { OPENAPI, withScopes } from '../../../src/admin/openapi.js';
import { ADMIN_SCOPES } from '../../../src/admin/tokens.js';

describe('admin route scopes', () => {
  it('every route needs a known scope, except the API description any valid token may read', () => {
    for (const r of ADMIN_ROUTES) {
      if (r.path === '/admin/openapi.json') expect(r.scope).toBeNull();
      else expect(ADMIN_SCOPES, `${r.method} ${r.path}`).toContain(r.scope);
    }
  });

  it('reads need a :read scope and changes a :write scope, of the resource the path names', () => {
    for (const r of ADMIN_ROUTES.filter((x) => x.scope !== null)) {
      const [resource, access] = r.scope!.split(':');
      expect(access, `${r.method} ${r.path}`).toBe(r.method === 'GET' ? 'read' : 'write');
      const named = /\/(usage|keys)(\/|$)/.exec(r.path)?.[1] ?? 'tenants';
      expect(resource, `${r.method} ${r.path}`).toBe(named);
    }
  });

  it('every scope opens at least one route', () => {
    const used = new Set(ADMIN_ROUTES.map((r) => r.scope));
    for (const s of ADMIN_SCOPES) expect(used, s).toContain(s);
  });

  it('the served OpenAPI document lists each operation’s scope, and leaves ./openapi.ts untouched', () => {
    const served = withScopes(OPENAPI, ADMIN_ROUTES) as unknown as { paths: Record<string, Record<string, { security?: unknown }>> };
    for (const r of ADMIN_ROUTES) {
      const op = served.paths[r.path]![r.method.toLowerCase()]!;
      expect(op.security, `${r.method} ${r.path}`).toEqual(r.scope === null ? undefined : [{ adminToken: [r.scope] }]);
    }
    expect(JSON.stringify(OPENAPI)).not.toContain('tenants:write');
  });
});
