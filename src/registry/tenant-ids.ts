/**
 * Tenant ids are unique regardless of case: an upstream that looks ids up
 * case-insensitively (a collation, a lower-cased cache key) would merge
 * `ACME` and `acme`. Ids are ASCII (the schema), so toLowerCase folds them.
 */

/** An id among `ids` that equals `id` but for case, if any. */
export function sameIdButCase(ids: Iterable<string>, id: string): string | undefined {
  const folded = id.toLowerCase();
  for (const other of ids) if (other !== id && other.toLowerCase() === folded) return other;
  return undefined;
}
