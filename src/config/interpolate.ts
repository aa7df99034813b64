/**
 * `${VAR}` and `${VAR:-default}` substitution, in two steps so an environment
 * value can never inject YAML structure and every node keeps its line:
 *
 * 1. {@link maskPlaceholders}: before parsing, each placeholder in the text
 *    becomes an inert token (`__tg_env_0__`), valid anywhere YAML allows a
 *    scalar — inside flow maps like `{ port: ${PORT:-8080} }` too.
 * 2. {@link substitute}: after parsing, tokens in scalars are replaced by the
 *    values. A plain (unquoted) scalar that is exactly one placeholder is
 *    re-read as a YAML scalar, so `port: ${PORT:-8080}` is the number 8080
 *    and an empty `${REDIS_URL:-}` is null ("not set"). Quoted scalars stay
 *    strings. `$${` escapes a literal `${`.
 */
import { isScalar, parse as parseYaml, Scalar, visit, type Document } from 'yaml';

const PLACEHOLDER = /\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}\n]*))?\}/g;
const TOKEN = /__tg_env_(\d+)__/g;
const WHOLE_TOKEN = /^__tg_env_\d+__$/;

interface Placeholder {
  name: string;
  fallback: string | undefined;
  /** `$${…}`: stands for the literal text, no lookup. */
  literal: string | null;
}

export interface Masked {
  text: string;
  placeholders: Placeholder[];
}

export interface InterpolationError {
  path: (string | number)[];
  message: string;
}

export function maskPlaceholders(text: string): Masked {
  const placeholders: Placeholder[] = [];
  const masked = text.replace(PLACEHOLDER, (match, escape: string, name: string, fallback?: string) => {
    placeholders.push({ name, fallback, literal: escape ? match.slice(1) : null });
    return `__tg_env_${placeholders.length - 1}__`;
  });
  return { text: masked, placeholders };
}

export function substitute(doc: Document, placeholders: readonly Placeholder[], env: NodeJS.ProcessEnv): InterpolationError[] {
  const errors: InterpolationError[] = [];
  if (placeholders.length === 0) return errors;
  visit(doc, {
    Scalar(_key, node, ancestors) {
      if (typeof node.value !== 'string' || !node.value.includes('__tg_env_')) return;
      const original = node.value;
      const missing: string[] = [];
      const replaced = original.replace(TOKEN, (_m, index: string) => {
        const p = placeholders[Number(index)]!;
        if (p.literal !== null) return p.literal;
        const value = env[p.name];
        if (value !== undefined && value !== '') return value;
        if (p.fallback !== undefined) return p.fallback;
        missing.push(p.name);
        return '';
      });
      if (missing.length > 0) {
        errors.push({
          path: pathOf(ancestors, node),
          message: `environment variable ${missing.join(', ')} is not set (use \${NAME:-default} for an optional value)`,
        });
        return;
      }
      const whole = node.type === Scalar.PLAIN && WHOLE_TOKEN.test(original) && placeholders[Number(original.slice(9, -2))]!.literal === null;
      node.value = whole ? rereadScalar(replaced) : replaced;
    },
  });
  return errors;
}

/** Reads a substituted value as a YAML scalar (number, boolean, null) — never as a map or list. */
function rereadScalar(text: string): unknown {
  if (text.trim() === '') return null;
  try {
    const value: unknown = parseYaml(text);
    return value === null || typeof value !== 'object' ? value : text;
  } catch {
    return text;
  }
}

/** The YAML path of a node from the visitor's ancestor chain (keys of pairs, indexes in sequences). */
function pathOf(ancestors: readonly unknown[], node: unknown): (string | number)[] {
  const path: (string | number)[] = [];
  let child: unknown = node;
  for (let i = ancestors.length - 1; i >= 0; i--) {
    const parent = ancestors[i] as { items?: unknown[]; key?: unknown; value?: unknown };
    if (Array.isArray(parent.items)) {
      const index = parent.items.indexOf(child);
      // In a map, items are pairs and the pair already contributed its key.
      if (index >= 0 && !('key' in (parent.items[index] as object))) path.unshift(index);
    } else if ('key' in parent && parent.value === child) {
      path.unshift(isScalar(parent.key) ? String(parent.key.value) : String(parent.key));
    }
    child = parent;
  }
  return path;
}
