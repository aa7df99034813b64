/**
 * What `tenantgate tenants …` and `tenantgate keys create|list|rotate|revoke`
 * share: talking to a running proxy's admin API (SPEC §9) with undici.
 * `--admin-url` (default $TENANTGATE_ADMIN_URL, else http://127.0.0.1:9901),
 * the token from $TENANTGATE_ADMIN_TOKEN (never a flag: flags end up in shell
 * history and `ps`), `--json` for machines. Exit codes: 0 done, 1 the API
 * refused or could not be reached, 2 usage error.
 */
import { request } from 'undici';
import { runCommand, UsageError, type Command, type Flag, type Parsed } from './args.js';

export { UsageError };

export const DEFAULT_ADMIN_URL = 'http://127.0.0.1:9901';

export interface AdminIo {
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
  env?: NodeJS.ProcessEnv;
}

export interface Out {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly env: NodeJS.ProcessEnv;
}

export function outputs(io: AdminIo): Out {
  return {
    out: io.stdout ?? ((s: string) => void process.stdout.write(s)),
    err: io.stderr ?? ((s: string) => void process.stderr.write(s)),
    env: io.env ?? process.env,
  };
}

/** A refusal by the API (or no answer at all): exit 1 with its message. */
export class AdminCallError extends Error {
  constructor(
    message: string,
    readonly status: number | null,
  ) {
    super(message);
  }
}

export interface AdminClient {
  call(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, body?: unknown): Promise<unknown>;
  /** GETs every page of a list (following nextCursor) and returns all the items. */
  all(path: string): Promise<unknown[]>;
}

export function adminClient(url: string | undefined, env: NodeJS.ProcessEnv): AdminClient {
  const base = (url ?? env.TENANTGATE_ADMIN_URL ?? DEFAULT_ADMIN_URL).replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]+/.test(base)) throw new UsageError(`--admin-url "${base}": must be an http:// or https:// URL`);
  const token = env.TENANTGATE_ADMIN_TOKEN;
  if (token === undefined || token === '') throw new UsageError('set TENANTGATE_ADMIN_TOKEN to the admin token (admin.token)');
  const call = async (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, body?: unknown): Promise<unknown> => {
    let res;
    try {
      res = await request(`${base}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        headersTimeout: 10_000,
        bodyTimeout: 30_000,
      });
    } catch (e) {
      throw new AdminCallError(`cannot reach the admin API at ${base}: ${(e as Error).message}`, null);
    }
    const text = await res.body.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* not JSON: reported below if it is an error */
    }
    if (res.statusCode >= 400) {
      const e = (parsed as { error?: { code?: string; message?: string } })?.error;
      const message = e?.code ? `${e.code}: ${e.message ?? ''}` : `HTTP ${res.statusCode}`;
      // A 404 for the path itself, or a 401, often means the URL or the token is another proxy's or port's: say where we asked.
      let hint = '';
      if (res.statusCode === 404 && (e?.code === undefined || e.code === 'no_route')) hint = `the admin API at ${base} has no endpoint ${method} ${path.split('?')[0]}: is it a tenantgate admin port, with admin.token set?`;
      if (res.statusCode === 401) hint = `${base} refused the token: is it a tenantgate admin port, and $TENANTGATE_ADMIN_TOKEN its admin token?`;
      throw new AdminCallError(hint === '' ? message : `${message}\n${hint}`, res.statusCode);
    }
    return parsed;
  };
  return {
    call,
    all: async (path) => {
      const items: unknown[] = [];
      let cursor: string | null = null;
      const sep = path.includes('?') ? '&' : '?';
      do {
        const page = (await call('GET', `${path}${sep}limit=1000${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`)) as { data: unknown[]; nextCursor: string | null };
        items.push(...page.data);
        cursor = page.nextCursor;
      } while (cursor !== null);
      return items;
    },
  };
}

/** Comma list → trimmed, non-empty, de-duplicated. */
export function commaList(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  return [...new Set(value.split(',').map((s) => s.trim()).filter((s) => s !== ''))];
}

/** A fixed-width table of the given columns, for humans. */
export function table(rows: Record<string, unknown>[], columns: string[]): string {
  const cell = (v: unknown) => (v === undefined || v === null ? '-' : Array.isArray(v) ? v.join(',') || '-' : typeof v === 'object' ? JSON.stringify(v) : String(v));
  const cells = rows.map((r) => columns.map((c) => cell(r[c])));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i]!.length)));
  const line = (values: string[]) => values.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd();
  return `${[line(columns.map((c) => c.toUpperCase())), ...cells.map(line)].join('\n')}\n`;
}

/**
 * Runs one admin command: its usage errors exit 2 (./args.ts), the API's
 * refusals and an unreachable API exit 1 with the message.
 */
export function runAdminCommand<F extends Readonly<Record<string, Flag>>>(c: Command<F>, args: string[], o: Out, body: (p: Parsed<F>) => Promise<void>): Promise<number> {
  return runCommand(c, args, o, async (p) => {
    try {
      await body(p);
      return 0;
    } catch (e) {
      if (!(e instanceof AdminCallError)) throw e;
      o.err(`tenantgate ${c.name.split(' ')[0]}: ${e.message}\n`);
      return 1;
    }
  });
}
