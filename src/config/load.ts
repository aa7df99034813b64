/**
 * Config loading: read → parse YAML → interpolate env → validate (schema) →
 * apply defaults → compile → freeze. Every problem found on the way is
 * collected and reported at once, each with the file, the YAML path and, where
 * the node exists in the file, its line.
 *
 * Two paths, because a config may hold 100,000 API keys and a YAML document
 * with positions for each costs seconds and a gigabyte. The fast one reads the text into plain values
 * (./fast-yaml.ts), validates and compiles, and keeps nothing else. Only when
 * it meets a problem, or YAML it cannot vouch for, does the full one run:
 * `parseDocument` with positions, which finds every problem and its line. A
 * valid config compiles to the same thing either way
 * (test/unit/config/fast-yaml.test.ts).
 */
import { readFile } from 'node:fs/promises';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import type { z } from 'zod';
import { dirname } from 'node:path';
import { buildAuthRuntime } from '../auth/runtime.js';
import { loadRedisTls, RedisTlsError, type RedisTls } from '../redis/tls.js';
import { loadUpstreamTls, UpstreamTlsError } from '../upstream/tls.js';
import { compile, type CompiledConfig, type CompiledCore } from './compile.js';
import { readPlain } from './fast-yaml.js';
import { maskPlaceholders, substitute } from './interpolate.js';
import { referenceProblems } from './references.js';
import { ApiKeyCompactor } from './compact.js';
import { configSchema, type Config } from './schema.js';
import { contentHash } from './watch.js';

const API_KEY = configSchema.shape.apiKeys.unwrap().element;

export interface ConfigProblem {
  file: string;
  /** YAML path, e.g. `routes[0].match.pathPrefix` (empty for the whole document). */
  path: string;
  line?: number;
  message: string;
}

export class ConfigError extends Error {
  readonly problems: ConfigProblem[];
  constructor(problems: ConfigProblem[]) {
    // In file order, so the list reads top to bottom next to the file.
    problems = [...problems].sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
    super(`invalid config:\n${problems.map(formatProblem).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export function formatProblem(p: ConfigProblem): string {
  const where = p.line === undefined ? p.file : `${p.file}:${p.line}`;
  return `${where} ${p.path || '(document)'}: ${p.message}`;
}

/**
 * Past this size, a config with problems is not read again with positions
 * (`parseDocument` takes ~90 MB of memory per MB of YAML: 1.1 GB peak for
 * 100,000 keys, enough to get a memory-limited sidecar killed in the middle
 * of a reload it was going to reject). Its problems are reported with their
 * paths only; `tenantgate validate` (positions: 'always') gives the lines.
 */
export const POSITIONS_MAX_CHARS = 1024 * 1024;

export interface LoadOptions {
  /** 'always': every problem with its line, whatever the file's size (the validate command). Default: up to POSITIONS_MAX_CHARS. */
  positions?: 'always' | 'bounded';
}

/** Whether this text's problems may be located by the positional parse (see POSITIONS_MAX_CHARS). */
function positionsAllowed(text: string, options: LoadOptions): boolean {
  return text.length <= POSITIONS_MAX_CHARS || options.positions === 'always';
}

/** Reads and compiles a config file; throws {@link ConfigError} listing every problem. */
export async function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env, previous?: CompiledConfig, options: LoadOptions = {}): Promise<CompiledConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError([{ file, path: '', message: `cannot read file: ${(err as NodeJS.ErrnoException).code ?? String(err)}` }]);
  }
  let core = parseConfig(text, file, env, previous, options);
  try {
    core = await loadUpstreamTls(core, dirname(file));
  } catch (err) {
    if (!(err instanceof UpstreamTlsError)) throw err;
    const line = positionsAllowed(text, options) ? lineOf(text, err.path) : undefined;
    throw new ConfigError([{ file, path: formatPath(err.path), line, message: err.message }]);
  }
  let redisTls: RedisTls | null;
  try {
    redisTls = await loadRedisTls(core.source.store.tls, dirname(file));
  } catch (err) {
    if (!(err instanceof RedisTlsError)) throw err;
    const path = ['store', 'tls', ...err.field];
    const line = positionsAllowed(text, options) ? lineOf(text, path) : undefined;
    throw new ConfigError([{ file, path: formatPath(path), line, message: err.message }]);
  }
  try {
    const auth = await buildAuthRuntime(core.source, env, dirname(file), previous?.auth);
    return Object.freeze({ ...core, auth, redisTls });
  } catch (err) {
    throw new ConfigError([{ file, path: 'jwt.issuers / identity.assertion', message: `cannot load keys: ${(err as Error).message}` }]);
  }
}

/** The line of `path` in `text` (for a problem found after parsing; the full parse runs only then). */
function lineOf(text: string, path: readonly PropertyKey[]): number | undefined {
  const lineCounter = new LineCounter();
  const doc = parseDocument(maskPlaceholders(text).text, { lineCounter, prettyErrors: false });
  const offset = nodeAt(doc, path)?.range?.[0];
  return offset === undefined ? undefined : lineCounter.linePos(offset).line;
}

/**
 * Parses, validates and compiles config text (everything but the credential
 * verifiers). `previous` (on a reload: the config in force) lends its key
 * records where they are unchanged, so the two configs share them.
 */
export function parseConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env, previous?: CompiledCore, options: LoadOptions = {}): CompiledCore {
  const fast = parseFast(text, file, env, previous);
  if (fast !== undefined) return fast;
  if (!positionsAllowed(text, options)) reportWithoutPositions(text, file, env);
  return parseFull(text, file, env, previous);
}

/**
 * A big file's problems, found by the fast reader: shape, unset variables
 * and references, each with its YAML path, no line (see POSITIONS_MAX_CHARS);
 * throws them. Returns only when it cannot tell (YAML the fast reader
 * declines, or no problem found this way): then the full path has to.
 */
function reportWithoutPositions(text: string, file: string, env: NodeJS.ProcessEnv): void {
  let plain;
  try {
    plain = readPlain(maskPlaceholders(text), env, true);
  } catch {
    return;
  }
  if (plain === undefined) return;
  const keys: unknown[] = [];
  const issues: z.core.$ZodIssue[] = [];
  const read = plain.forEachKey((k) => {
    const at = keys.push(k) - 1;
    const key = API_KEY.safeParse(k, { reportInput: true });
    if (!key.success) for (const issue of key.error.issues) issues.push({ ...issue, path: ['apiKeys', at, ...issue.path] });
    return true;
  });
  if (!read) return;
  const root = configSchema.safeParse(plain.root, { reportInput: true });
  if (!root.success) issues.unshift(...root.error.issues);

  const problems: ConfigProblem[] = [];
  const unset = new Set<string>();
  for (const u of plain.unset) {
    unset.add(formatPath(u.path));
    problems.push({ file, path: formatPath(u.path), message: `environment variable ${u.names.join(', ')} is not set (use \${NAME:-default} for an optional value)` });
  }
  for (const issue of flattenIssues(issues)) {
    if (!unset.has(formatPath(issue.path))) problems.push({ file, path: formatPath(issue.path), message: issue.message });
  }
  for (const p of referenceProblems({ ...plain.root, apiKeys: keys })) problems.push({ file, path: formatPath(p.path), message: p.message });
  if (problems.length === 0) return;
  const mb = (text.length / 1024 / 1024).toFixed(1);
  problems.push({
    file,
    path: '',
    message: `lines left out: at ${mb} MB, reading the file again with positions would take ~${Math.ceil(Number(mb) * 90)} MB of memory; \`tenantgate validate -c ${file}\` prints them`,
  });
  throw new ConfigError(problems);
}

/**
 * The fast path: the compiled config, or undefined when there is any problem
 * (or YAML ./fast-yaml.ts declines) and {@link parseFull} must tell.
 */
export function parseFast(text: string, file: string, env: NodeJS.ProcessEnv = process.env, previous?: CompiledCore): CompiledCore | undefined {
  const hash = contentHash(text);
  // In a function of its own, so the plain values are garbage before compile runs.
  const config = validFast(text, env, previous?.source.apiKeys);
  if (config === undefined) return undefined;
  const compiled = compile(config, file, hash, previous?.source.apiKeys);
  return compiled.problems.length === 0 ? compiled.config : undefined;
}

function validFast(text: string, env: NodeJS.ProcessEnv, previousKeys: Config['apiKeys'] | undefined): Config | undefined {
  try {
    const plain = readPlain(maskPlaceholders(text), env);
    if (plain === undefined) return undefined;
    // No reportInput: it copies inputs into issues, and only the full path reports issues.
    const parsed = configSchema.safeParse(plain.root);
    if (!parsed.success) return undefined;
    const config = parsed.data;
    // The keys one by one, each plain record let go once validated and compacted, so the list
    // never exists twice. (No check in the schema spans two keys or a key and another section.)
    const compactor = new ApiKeyCompactor(config.tenants, previousKeys);
    const keys: Config['apiKeys'] = [];
    const valid = plain.forEachKey((k) => {
      const key = API_KEY.safeParse(k);
      if (key.success) keys.push(compactor.compact(key.data));
      return key.success;
    });
    if (!valid) return undefined;
    config.apiKeys = keys;
    return config;
  } catch {
    // A bug here must not cost more than the full path's time: it is the reference.
    return undefined;
  }
}

/** The full path: every problem, each with its line; or, for YAML the fast path declined, the compiled config. */
export function parseFull(text: string, file: string, env: NodeJS.ProcessEnv = process.env, previous?: CompiledCore): CompiledCore {
  const lineCounter = new LineCounter();
  const masked = maskPlaceholders(text);
  const doc = parseDocument(masked.text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const problems: ConfigProblem[] = [];
  const lineAt = (offset: number | undefined) => (offset === undefined ? undefined : lineCounter.linePos(offset).line);

  // One syntax error tends to cascade into many: report the first per line.
  const syntaxLines = new Set<number | undefined>();
  for (const e of doc.errors) {
    const line = lineAt(e.pos[0]);
    if (syntaxLines.has(line)) continue;
    syntaxLines.add(line);
    problems.push({ file, path: '', line, message: `YAML syntax: ${e.message.split('\n')[0]!}` });
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const unset = new Set<string>();
  for (const e of substitute(doc, masked, env)) {
    unset.add(formatPath(e.path));
    problems.push({ file, path: formatPath(e.path), line: lineAt(nodeAt(doc, e.path)?.range?.[0]), message: e.message });
  }

  const parsed = configSchema.safeParse(doc.toJS() ?? {}, { reportInput: true });
  if (!parsed.success) {
    for (const issue of flattenIssues(parsed.error.issues)) {
      // A value left empty by an unset variable has already been reported as such.
      if (unset.has(formatPath(issue.path))) continue;
      problems.push({ file, path: formatPath(issue.path), line: lineAt(nodeAt(doc, issue.path)?.range?.[0]), message: issue.message });
    }
  }
  if (problems.length > 0 || !parsed.success) {
    // The cross-reference checks read loosely, so they report in the same run as shape problems.
    for (const p of referenceProblems(doc.toJS() ?? {})) {
      problems.push({ file, path: formatPath(p.path), line: lineAt(nodeAt(doc, p.path)?.range?.[0]), message: p.message });
    }
    throw new ConfigError(problems);
  }

  const compiled = compile(parsed.data, file, contentHash(text), previous?.source.apiKeys);
  if (compiled.problems.length > 0) {
    throw new ConfigError(
      compiled.problems.map((p) => ({ file, path: formatPath(p.path), line: lineAt(nodeAt(doc, p.path)?.range?.[0]), message: p.message })),
    );
  }
  return compiled.config!;
}

/** zod reports an unknown key on its parent object; point at the key itself instead, one problem per key. */
function flattenIssues(issues: z.core.$ZodIssue[]): { path: PropertyKey[]; message: string }[] {
  const out: { path: PropertyKey[]; message: string }[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push({ path: [...issue.path, key], message: `unknown key "${key}"` });
    } else if (issue.code === 'invalid_type' && issue.input === undefined) {
      out.push({ path: issue.path, message: `is required (${issue.expected})` });
    } else {
      out.push({ path: issue.path, message: issue.message });
    }
  }
  return out;
}

/**
 * The node to point at for `path`: the deepest one that exists along it (for
 * a missing key, its parent); for a map entry, its KEY, so the line is the one
 * the key is written on even when its value is a block on the lines below.
 */
function nodeAt(doc: Document, path: readonly PropertyKey[]): Node | undefined {
  let node: unknown = doc.contents;
  for (const [i, key] of path.entries()) {
    if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(key));
      if (pair === undefined) break;
      if (i === path.length - 1 && isScalar(pair.key)) return pair.key;
      node = pair.value;
    } else if (isSeq(node) && typeof key === 'number') {
      const next = node.get(key, true);
      if (next === undefined) break;
      node = next;
    } else {
      break;
    }
  }
  return (node ?? undefined) as Node | undefined;
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) out += typeof key === 'number' ? `[${key}]` : out === '' ? String(key) : `.${String(key)}`;
  return out;
}
