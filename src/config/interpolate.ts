/**
 * `${VAR}` and `${VAR:-default}` substitution, in two steps so an environment
 * value can never inject YAML structure and every node keeps its line:
 *
 * 1. {@link maskPlaceholders}: before parsing, each placeholder in the text
 *    becomes an inert token (`__tg<nonce>_0__`, the nonce random per load),
 *    valid anywhere YAML allows a scalar — inside flow maps like
 *    `{ port: ${PORT:-8080} }` too.
 * 2. {@link substitute}: after parsing, tokens in scalars are replaced by the
 *    values. A plain (unquoted) scalar that is exactly one placeholder becomes
 *    a number or boolean when the value is exactly one (`port: ${PORT:-8080}`
 *    is 8080) and null when empty (`${REDIS_URL:-}` is "not set"); any other
 *    value stays the exact string — `#`, quotes and `&` included. Quoted
 *    scalars always stay strings. `$${` escapes a literal `${`.
 */
import { randomBytes } from 'node:crypto';
import { isScalar, Scalar, visit, type Document } from 'yaml';

const PLACEHOLDER = /\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}\n]*))?\}/g;
/** Scalars a substituted value may become; anything else stays the exact string (no comments, quotes, anchors). */
const NUMBER = /^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?$/;
const BOOLEAN = /^(?:true|false)$/i;

export interface Placeholder {
  name: string;
  fallback: string | undefined;
  /** `$${…}`: stands for the literal text, no lookup. */
  literal: string | null;
}

export interface Masked {
  text: string;
  /** Random per load; every token contains it. */
  nonce: string;
  placeholders: Placeholder[];
  /** Tokens carry a random nonce, so text that merely looks like one is left alone. */
  token: RegExp;
  wholeToken: RegExp;
}

export interface InterpolationError {
  path: (string | number)[];
  message: string;
}

export function maskPlaceholders(text: string): Masked {
  const nonce = randomBytes(6).toString('hex');
  const placeholders: Placeholder[] = [];
  const masked = text.replace(PLACEHOLDER, (match, escape: string, name: string, fallback?: string) => {
    placeholders.push({ name, fallback, literal: escape ? match.slice(1) : null });
    return `__tg${nonce}_${placeholders.length - 1}__`;
  });
  return { text: masked, nonce, placeholders, token: new RegExp(`__tg${nonce}_(\\d+)__`, 'g'), wholeToken: new RegExp(`^__tg${nonce}_(\\d+)__$`) };
}

export function substitute(doc: Document, masked: Masked, env: NodeJS.ProcessEnv): InterpolationError[] {
  const errors: InterpolationError[] = [];
  const { placeholders, token, wholeToken } = masked;
  if (placeholders.length === 0) return errors;
  visit(doc, {
    Scalar(_key, node, ancestors) {
      if (typeof node.value !== 'string') return;
      const original = node.value;
      token.lastIndex = 0;
      if (!token.test(original)) return;
      const { text: replaced, missing } = replaceTokens(original, masked, env);
      if (missing.length > 0) {
        errors.push({
          path: pathOf(ancestors, node),
          message: `environment variable ${missing.join(', ')} is not set (use \${NAME:-default} for an optional value)`,
        });
        return;
      }
      const whole = node.type === Scalar.PLAIN ? wholeToken.exec(original) : null;
      node.value = whole !== null && placeholders[Number(whole[1])]!.literal === null ? rereadScalar(replaced) : replaced;
    },
  });
  return errors;
}

/** Every token in `text` replaced by its value (a literal `$${…}` by its text); `missing`: the unset variables without a fallback (replaced by ''). */
export function replaceTokens(text: string, masked: Masked, env: NodeJS.ProcessEnv): { text: string; missing: string[] } {
  const missing: string[] = [];
  masked.token.lastIndex = 0;
  const replaced = text.replace(masked.token, (_m, index: string) => {
    const p = masked.placeholders[Number(index)]!;
    if (p.literal !== null) return p.literal;
    const value = lookupPlaceholder(p, env);
    if (value !== undefined) return value;
    missing.push(p.name);
    return '';
  });
  return { text: replaced, missing };
}

/** The value of a (non-literal) placeholder: the variable if set and not empty, else the fallback; undefined when neither. */
export function lookupPlaceholder(p: Placeholder, env: NodeJS.ProcessEnv): string | undefined {
  const value = env[p.name];
  if (value !== undefined && value !== '') return value;
  return p.fallback;
}

/** A whole-value substitution becomes a number, a boolean or null (empty) when it is exactly one; else the exact string. */
export function rereadScalar(text: string): unknown {
  if (text.trim() === '') return null;
  if (NUMBER.test(text)) return Number(text);
  if (BOOLEAN.test(text)) return text.toLowerCase() === 'true';
  return text;
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
