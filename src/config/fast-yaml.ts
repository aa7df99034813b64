/**
 * The fast path's YAML reader (issue #6): config text → plain JS values, with
 * no AST kept and no positions, for the common case of a file that is valid.
 *
 * Why js-yaml: the `yaml` package builds a CST and then a document of nodes
 * for the whole file before `toJS()`; for 100,000 API keys (11.8 MB) that
 * took 9-15 s and ~1 GB of RSS, and its streaming Parser still builds the CST
 * of the one document. js-yaml reads straight into JS values: ~0.8 s and
 * ~100 MB for the same file. The `yaml` package stays the reference: any
 * problem at all (a syntax error, an unset variable, a schema or reference
 * problem) is reported by the full path in ./load.ts, which re-reads the
 * file with `parseDocument` for lines. So this reader only has to agree with
 * `parseDocument(...).toJS()` on files it accepts, and to decline
 * (`undefined`) whatever it cannot vouch for:
 *
 * - Scalars resolve with copies of yaml's YAML 1.2 core schema tests (null,
 *   bool, int in base 8/10/16, float, .inf/.nan) in yaml's order, under
 *   private tag names, so js-yaml's own types (timestamps, merge keys,
 *   `!!int`...) never apply: an explicit tag other than !!str/!!seq/!!map
 *   is unknown here and declines.
 * - Directives (`%YAML 1.1` changes the schema), anchors (yaml caps alias
 *   expansion), complex keys (`? …`, `[a]: b`: the two stringify them
 *   differently) and keys that are null (yaml makes them "", js-yaml "null")
 *   decline. A false alarm (the same characters inside a string) only costs
 *   the full path.
 * - Placeholders (masked as in ./interpolate.ts) are substituted on the plain
 *   values with the same rules as the AST path: a PLAIN scalar that is one
 *   whole token is marked by an implicit type (implicit types only ever see
 *   plain scalars), so quoted and block scalars stay strings. A token in a
 *   key, or an unset variable, declines.
 */
import { FAILSAFE_SCHEMA, load, Type } from 'js-yaml';
import type { Masked } from './interpolate.js';
import { lookupPlaceholder, replaceTokens, rereadScalar } from './interpolate.js';

/** yaml's core schema (yaml/dist/schema/core), in its order: the first test that matches resolves the plain scalar. */
const CORE: [name: string, test: RegExp, resolve: (s: string) => unknown][] = [
  ['null', /^(?:~|[Nn]ull|NULL)?$/, () => null],
  ['bool', /^(?:[Tt]rue|TRUE|[Ff]alse|FALSE)$/, (s) => s[0] === 't' || s[0] === 'T'],
  ['int-oct', /^0o[0-7]+$/, (s) => parseInt(s.substring(2), 8)],
  ['int', /^[-+]?[0-9]+$/, (s) => parseInt(s, 10)],
  ['int-hex', /^0x[0-9a-fA-F]+$/, (s) => parseInt(s.substring(2), 16)],
  ['float-nan', /^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/, (s) => (s.slice(-3).toLowerCase() === 'nan' ? NaN : s[0] === '-' ? -Infinity : Infinity)],
  ['float-exp', /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/, (s) => parseFloat(s)],
  ['float', /^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/, (s) => parseFloat(s)],
];
const CORE_TYPES = CORE.map(
  ([name, test, resolve]) => new Type(`tag:tenantgate,fast:${name}`, { kind: 'scalar', resolve: (s: unknown) => typeof s === 'string' && test.test(s), construct: resolve }),
);

/**
 * `%` directives, anchors (`&a` after a space, line start or flow
 * indicator), explicit keys (`? `) and flow collections used as keys
 * (`]:`, `}:`).
 */
const UNSUPPORTED = /^%|(?:^|[\s[{,:])&\S|(?:^|[\s[{,])\?(?:\s|$)|[\]}][ \t]*:(?:\s|$)/m;

const SPACE = 0x20;
const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const isBlank = (c: number) => c === SPACE || c === TAB || c === LF || c === CR || Number.isNaN(c);

/**
 * Whether a quoted scalar or a flow collection continues past the end of a
 * line. js-yaml accepts their continuation lines at any indentation, where
 * yaml requires them deeper than the block they sit in ("Missing closing
 * quote", "Flow map in block collection must be sufficiently indented"):
 * rather than mirror that rule, the fast path takes no such construct.
 *
 * A scan line by line that knows where a node may begin (line start, after
 * `- `, `: `, a tag, and in a flow collection after `[`, `{`, `,`), since a
 * quote or bracket anywhere else is part of a plain scalar. When unsure it
 * says yes: that only sends the file to the full path. Lines of block
 * scalars are scanned like any other (their content may give a false yes).
 */
export function continuesPastLine(text: string): boolean {
  let i = 0;
  const n = text.length;
  while (i < n) {
    let depth = 0;
    let nodeStart = true;
    for (;;) {
      const c = text.charCodeAt(i);
      if (i >= n || c === LF) break;
      if (c === SPACE || c === TAB || c === CR) {
        i++;
        continue;
      }
      const prev = text.charCodeAt(i - 1);
      const next = text.charCodeAt(i + 1);
      if (c === 0x23 /* # */ && (isBlank(prev) || i === 0)) {
        // A comment, to the end of the line.
        while (i < n && text.charCodeAt(i) !== LF) i++;
        break;
      }
      if (nodeStart && (c === 0x22 /* " */ || c === 0x27) /* ' */) {
        let j = i + 1;
        for (;;) {
          const d = text.charCodeAt(j);
          if (j >= n || d === LF) return true;
          if (c === 0x22 && d === 0x5c /* \ */) {
            // An escape; one of the line break continues the scalar.
            if (j + 1 >= n || text.charCodeAt(j + 1) === LF || text.charCodeAt(j + 1) === CR) return true;
            j += 2;
          }
          else if (d === c && c === 0x27 && text.charCodeAt(j + 1) === 0x27) j += 2;
          else if (d === c) break;
          else j++;
        }
        i = j + 1;
        // A quoted key may be followed by its `:` at once (`"a":b`).
        nodeStart = text.charCodeAt(i) === 0x3a;
        if (nodeStart) i++;
        continue;
      }
      if (nodeStart && (c === 0x5b /* [ */ || c === 0x7b) /* { */) {
        depth++;
        i++;
        continue;
      }
      if (depth > 0 && (c === 0x5d /* ] */ || c === 0x7d) /* } */) {
        depth--;
        nodeStart = false;
      } else if (depth > 0 && c === 0x2c /* , */) nodeStart = true;
      else if (c === 0x3a /* : */ && (isBlank(next) || next === 0x22 || next === 0x27 || (depth > 0 && (next === 0x2c || next === 0x5b || next === 0x5d || next === 0x7b || next === 0x7d))))
        nodeStart = true;
      else if (nodeStart && (c === 0x2d /* - */ || c === 0x3f) /* ? */ && isBlank(next)) nodeStart = true;
      else if (nodeStart && c === 0x2d && next === 0x2d && text.charCodeAt(i + 2) === 0x2d && isBlank(text.charCodeAt(i + 3))) i += 2;
      else if (nodeStart && (c === 0x21 /* ! */ || c === 0x26) /* & */) {
        // A tag or an anchor: the node follows it.
        while (i + 1 < n && !isBlank(text.charCodeAt(i + 1))) i++;
      } else if (nodeStart && (c === 0x7c /* | */ || c === 0x3e) /* > */ && depth === 0) {
        // A block scalar's header: only indicators and a comment follow on its line.
        while (i < n && text.charCodeAt(i) !== LF) i++;
        break;
      } else nodeStart = false;
      i++;
    }
    if (depth > 0) return true;
    i++;
  }
  return false;
}

/** The plain value of the text, apiKeys apart. */
export interface PlainConfig {
  /** Everything but `apiKeys`. */
  root: Record<string, unknown>;
  /**
   * Feeds each API key's plain value to `each`, in order, reading the list a
   * chunk at a time when it could be split off; false when a chunk declines or
   * `each` returns false.
   */
  forEachKey(each: (key: unknown) => boolean): boolean;
  /**
   * With `collectUnset`: each value naming an unset variable (left as it was,
   * not substituted), with its path; complete once forEachKey has run.
   */
  readonly unset: readonly UnsetVariable[];
}

export interface UnsetVariable {
  readonly path: readonly (string | number)[];
  readonly names: readonly string[];
}

/** Items read together: few enough that a chunk's plain values die young (2000 and up: +10-30 MB peak RSS for 100,000 keys). */
const CHUNK_ITEMS = 500;

/**
 * The plain value of config text, or undefined when only the full path can
 * tell (see the header). `collectUnset`: an unset variable does not decline;
 * it is recorded with its path in `unset` (for the problem list of a file too
 * big to re-read with positions: ./load.ts).
 */
export function readPlain(masked: Masked, env: NodeJS.ProcessEnv, collectUnset = false): PlainConfig | undefined {
  if (UNSUPPORTED.test(masked.text) || continuesPastLine(masked.text)) return undefined;
  // A whole plain placeholder becomes this marker string (with the load's nonce, so no YAML text can spell it) until substituted.
  const marker = masked.placeholders.length === 0 ? null : new RegExp(`^__tgP${masked.nonce}_(\\d+)__$`);
  const schema = FAILSAFE_SCHEMA.extend({
    implicit:
      marker === null
        ? CORE_TYPES
        : [
            ...CORE_TYPES,
            new Type('tag:tenantgate,fast:placeholder', {
              kind: 'scalar',
              resolve: (s: unknown) => typeof s === 'string' && masked.wholeToken.test(s),
              construct: (s: string) => s.replace('__tg', '__tgP'),
            }),
          ],
  });
  const walk = new Walk(masked, marker, env, collectUnset);
  const read = (text: string): unknown => {
    try {
      return load(text, { schema });
    } catch {
      return DECLINED;
    }
  };

  const split = splitKeys(masked.text, masked.nonce);
  const root = read(split === null ? masked.text : split.rest);
  if (!isMap(root) || !walk.map(root)) return undefined;
  if (split === null) {
    const keys = root.apiKeys;
    delete root.apiKeys;
    if (keys !== undefined && !Array.isArray(keys)) return undefined;
    return { root, unset: walk.unset, forEachKey: (each) => keys === undefined || keys.every((k, i) => ((keys[i] = undefined), each(k))) };
  }
  // The stand-in must have been read as root's own apiKeys (not, say, inside a string that swallowed the line).
  const stand = root.apiKeys;
  if (!Array.isArray(stand) || stand.length !== 1 || stand[0] !== split.standIn) return undefined;
  delete root.apiKeys;
  return {
    root,
    unset: walk.unset,
    forEachKey(each) {
      let base = 0;
      for (const chunk of split.chunks) {
        const items = read(chunk.text);
        // As many items as item lines: the cuts were all between items.
        if (!Array.isArray(items) || items.length !== chunk.items || !walk.list(items, ['apiKeys'], base)) return false;
        base += items.length;
        for (let i = 0; i < items.length; i++) {
          const k: unknown = items[i];
          items[i] = undefined;
          if (!each(k)) return false;
        }
      }
      return true;
    },
  };
}

/**
 * Splits a top-level block sequence `apiKeys:` off the text, so its items can
 * be read a chunk at a time: `rest` has the line `apiKeys: [<stand-in>]`
 * instead, each chunk is whole items. Null (read the text in one go) unless
 * the layout is the plain one: `apiKeys:` alone on its line at column 0, then
 * item lines (`- `) all at one indentation, every other line deeper, blank or
 * a comment, up to the next line at column 0. A cut can only fall between
 * items then: a scalar or flow collection spanning lines ends deeper than the
 * items or not at all (and a chunk that does not parse declines).
 */
function splitKeys(text: string, nonce: string): { rest: string; standIn: string; chunks: { text: string; items: number }[] } | null {
  const head = /^apiKeys:[ \t]*(?:[ \t]#[^\n]*)?\r?\n/m.exec(text);
  if (head === null) return null;
  const bodyStart = head.index + head[0].length;
  const starts: number[] = [];
  let indent = -1;
  let end = text.length;
  for (let pos = bodyStart; pos < text.length; ) {
    const nl = text.indexOf('\n', pos);
    const next = nl === -1 ? text.length : nl + 1;
    let i = pos;
    while (text.charCodeAt(i) === 0x20) i++;
    const c = text.charCodeAt(i);
    const blank = i >= text.length || c === 0x0a || (c === 0x0d && text.charCodeAt(i + 1) === 0x0a);
    if (!blank && c !== 0x23 /* # */) {
      const col = i - pos;
      const d = text.charCodeAt(i + 1);
      const item = c === 0x2d /* - */ && (i + 1 >= text.length || d === 0x20 || d === 0x0a || d === 0x0d);
      if (col === 0 && !(item && indent <= 0)) {
        end = pos;
        break;
      }
      if (indent === -1) {
        if (!item) return null;
        indent = col;
      }
      if (col < indent || (col === indent && !item)) return null;
      if (col === indent) starts.push(pos);
    }
    pos = next;
  }
  if (starts.length === 0) return null;
  const chunks: { text: string; items: number }[] = [];
  for (let k = 0; k < starts.length; k += CHUNK_ITEMS) {
    chunks.push({ text: text.slice(starts[k], starts[k + CHUNK_ITEMS] ?? end), items: Math.min(CHUNK_ITEMS, starts.length - k) });
  }
  const standIn = `__tgK${nonce}__`;
  return { rest: `${text.slice(0, head.index)}apiKeys: [${standIn}]\n${text.slice(end)}`, standIn, chunks };
}

const DECLINED = Symbol('declined');
const isMap = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Checks every key and substitutes every placeholder in place; false to decline. */
class Walk {
  /** Set when there are placeholders: every token and marker contains it. */
  private readonly nonce: string | null;
  /** Only when collecting unset variables: the path of the value being walked. */
  private readonly path: (string | number)[] | null;
  readonly unset: UnsetVariable[] = [];
  constructor(
    private readonly masked: Masked,
    private readonly marker: RegExp | null,
    private readonly env: NodeJS.ProcessEnv,
    collectUnset: boolean,
  ) {
    this.nonce = marker === null ? null : masked.nonce;
    this.path = collectUnset ? [] : null;
  }

  map(m: Record<string, unknown>): boolean {
    for (const key of Object.keys(m)) {
      if (key === 'null' || key === '[object Object]' || (this.nonce !== null && key.includes(this.nonce))) return false;
      this.path?.push(key);
      const v = this.slot(m[key]);
      this.path?.pop();
      if (v === DECLINED) return false;
      // Only when substituted: an own `__proto__` key must never go through the prototype setter.
      if (v !== m[key]) m[key] = v;
    }
    return true;
  }

  /** `at` and `base`: where the list is and the index of its first item (a chunk of apiKeys), for the paths of unset variables. */
  list(v: unknown[], at?: readonly string[], base = 0): boolean {
    const outer = this.path;
    if (outer !== null && at !== undefined) outer.splice(0, outer.length, ...at);
    for (let i = 0; i < v.length; i++) {
      outer?.push(base + i);
      const x = this.slot(v[i]);
      outer?.pop();
      if (x === DECLINED) return false;
      if (x !== v[i]) v[i] = x;
    }
    return true;
  }

  /** A map or list slot's value after substitution (the same value when there is nothing to do), or DECLINED. */
  private slot(v: unknown): unknown {
    if (typeof v === 'string') return this.nonce !== null && v.includes(this.nonce) ? this.substitute(v) : v;
    if (v !== null && typeof v === 'object') return (Array.isArray(v) ? this.list(v) : this.map(v as Record<string, unknown>)) ? v : DECLINED;
    return v;
  }

  /** As ./interpolate.ts `substitute` does to one scalar. */
  private substitute(s: string): unknown {
    const whole = this.marker!.exec(s);
    if (whole !== null) {
      const p = this.masked.placeholders[Number(whole[1])]!;
      if (p.literal !== null) return p.literal;
      const value = lookupPlaceholder(p, this.env);
      return value === undefined ? this.unsetIn(s, [p.name]) : rereadScalar(value);
    }
    const { text, missing } = replaceTokens(s, this.masked, this.env);
    return missing.length > 0 ? this.unsetIn(s, missing) : text;
  }

  /** Declines; or, when collecting, records the variables and leaves the value as it was (as the full path does). */
  private unsetIn(value: string, names: string[]): unknown {
    if (this.path === null) return DECLINED;
    this.unset.push({ path: [...this.path], names });
    return value;
  }
}
