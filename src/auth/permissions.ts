/**
 * Permission patterns, compiled once per config: a grant is an exact
 * permission (`orders:read`), a namespace wildcard (`orders:*`, which grants
 * `orders:read` and `orders:refunds:write`) or `*` (everything). Used for API
 * key scopes and for the permissions a JWT role grants (`roles:` in config).
 * A scope grants the permission of its own name plus what `scopes:` maps it
 * to (`orders.read` → `orders:read`), see {@link grantsForScopes}.
 */

export interface Grants {
  readonly all: boolean;
  readonly exact: ReadonlySet<string>;
  /** `orders:` for the grant `orders:*`. */
  readonly prefixes: readonly string[];
}

export const NO_GRANTS: Grants = Object.freeze({ all: false, exact: new Set<string>(), prefixes: [] });

export function compileGrants(patterns: Iterable<string>): Grants {
  let all = false;
  const exact = new Set<string>();
  const prefixes: string[] = [];
  for (const p of patterns) {
    if (p === '*') all = true;
    else if (p.endsWith(':*')) prefixes.push(p.slice(0, -1));
    else exact.add(p);
  }
  return Object.freeze({ all, exact, prefixes });
}

export function grants(g: Grants, permission: string): boolean {
  if (g.all || g.exact.has(permission)) return true;
  for (const prefix of g.prefixes) if (permission.startsWith(prefix)) return true;
  return false;
}

/** Merges several grant sets (a caller's roles) into one. */
export function mergeGrants(list: readonly Grants[]): Grants {
  if (list.length === 1) return list[0]!;
  return Object.freeze({
    all: list.some((g) => g.all),
    exact: new Set(list.flatMap((g) => [...g.exact])),
    prefixes: list.flatMap((g) => g.prefixes),
  });
}

/** `scopes:` in config: scope → the permission patterns it grants besides its own name. */
export type ScopeTable = ReadonlyMap<string, readonly string[]>;

/** What a caller's scopes grant: each scope's own name, and its `scopes:` mapping. */
export function grantsForScopes(scopes: readonly string[], table: ScopeTable): Grants {
  if (table.size === 0) return compileGrants(scopes);
  const patterns: string[] = [];
  for (const scope of scopes) patterns.push(scope, ...(table.get(scope) ?? []));
  return compileGrants(patterns);
}
