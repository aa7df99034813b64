/**
 * `tenantgate keys generate --tenant <id> [--project <id>] [--scopes a,b]
 * [--env live|test] [--expires <ISO>] [--id <id>] [--json]`
 *
 * Prints the plaintext key ONCE and the record to add under `apiKeys:` (hash
 * only). With TENANTGATE_KEY_PEPPER set, the hash is HMAC-SHA256 with that
 * pepper (the proxy must run with the same pepper).
 *
 * Every field is checked with the config schema's own validators, so a record
 * this command prints always passes `tenantgate validate`. Bad arguments exit 2
 * with a message on stderr and nothing on stdout (no key is printed).
 *
 * `keys create|list|rotate|revoke` do the same through a running proxy's
 * admin API (./admin-client.ts). Every flag is declared in ./commands.ts.
 */
import { stringify } from 'yaml';
import { generateApiKey } from '../auth/api-key-format.js';
import { configSchema } from '../config/schema.js';
import { processIo, runCommand, runGroup, UsageError, type Command } from './args.js';
import { adminClient, commaList, outputs, runAdminCommand, table } from './admin-client.js';
import { KEYS, KEYS_CREATE, KEYS_GENERATE, KEYS_LIST, KEYS_REVOKE, KEYS_ROTATE } from './commands.js';

const apiKeys = configSchema.shape.apiKeys;
const FIELDS = apiKeys.unwrap().element.shape;

/** Where the command writes and what it reads; defaults to the process (tests inject their own). */
export interface KeysIo {
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
  env?: NodeJS.ProcessEnv;
  /** Milliseconds since the epoch, for the "--expires is in the past" check. */
  now?: () => number;
}

/** The schema's message for `value`, or null when the field accepts it. */
function problem(field: { safeParse(v: unknown): { success: boolean; error?: { issues: { message: string }[] } } }, value: unknown): string | null {
  const r = field.safeParse(value);
  return r.success ? null : (r.error?.issues[0]?.message ?? 'is invalid');
}

export async function runKeys(args: string[], io: KeysIo = {}): Promise<number> {
  return runGroup(KEYS, args, processIo(io), (sub, rest) => (sub === KEYS_GENERATE ? generate(rest, io) : runKeysAdmin(sub, rest, io)));
}

function generate(args: string[], io: KeysIo): Promise<number> {
  const o = processIo(io);
  const env = io.env ?? process.env;
  const now = io.now ?? Date.now;
  return runCommand(KEYS_GENERATE, args, o, ({ values }) => {
    for (const [flag, field, value] of [
      ['--tenant', FIELDS.tenant, values.tenant],
      ['--project', FIELDS.project, values.project],
      ['--id', FIELDS.id, values.id],
      ['--expires', FIELDS.expiresAt, values.expires],
    ] as const) {
      // An optional flag left out has nothing to check.
      const message = value === undefined ? null : problem(field, value);
      if (message !== null) throw new UsageError(`${flag} "${value}": ${message}${flag === '--expires' ? ' (use a date-time with seconds and a zone, e.g. 2027-01-01T00:00:00Z)' : ''}`);
    }
    if (values.env !== 'live' && values.env !== 'test') throw new UsageError(`--env "${values.env}": must be live or test`);
    // The schema accepts any zone offset but only real dates; a past date would print a key that never works.
    if (values.expires !== undefined && !(Date.parse(values.expires) > now())) throw new UsageError(`--expires "${values.expires}" is in the past`);
    const scopes = [...new Set((values.scopes ?? '').split(',').map((s) => s.trim()).filter((s) => s !== ''))];
    // Scopes reach the upstream space-separated (X-Scopes), so one with a space inside would read as two.
    const spaced = scopes.find((s) => /\s/.test(s));
    if (spaced !== undefined) throw new UsageError(`--scopes "${spaced}": a scope cannot contain whitespace`);

    const pepper = env.TENANTGATE_KEY_PEPPER || null;
    const { key, id, hash } = generateApiKey({ env: values.env, id: values.id, pepper });
    const record = {
      id,
      tenant: values.tenant,
      ...(values.project === undefined ? {} : { project: values.project }),
      hash,
      scopes,
      env: values.env,
      ...(values.expires === undefined ? {} : { expiresAt: values.expires }),
      revoked: false,
    };
    // Belt and braces: the fields were checked one by one above; this catches a schema that grew a rule since.
    const whole = apiKeys.safeParse([record]);
    if (!whole.success) {
      o.err(`tenantgate keys: internal error, the record does not pass the config schema: ${whole.error.issues.map((i) => i.message).join('; ')}\n`);
      return 1;
    }

    if (values.json) {
      o.out(`${JSON.stringify({ key, record })}\n`);
      return 0;
    }
    const yaml = stringify([record])
      .split('\n')
      .map((l) => (l === '' ? l : `  ${l}`))
      .join('\n');
    const hashNote = pepper === null ? '' : '(hashed with HMAC-SHA256 and TENANTGATE_KEY_PEPPER: run the proxy with the same pepper)\n';
    o.out(`API key (shown once; store it now, only its hash is kept):\n\n  ${key}\n\nAdd this record under apiKeys: in your config:\n${hashNote}\n${yaml}`);
    return 0;
  });
}

// ── keys create | list | rotate | revoke: through a running proxy's admin API (issue #8) ──

const KEY_COLUMNS = ['id', 'tenant', 'project', 'env', 'scopes', 'expiresAt', 'revoked', 'lastUsedAt', 'source'];

function parseRate(text: string | undefined): { perSecond: number; burst: number } | undefined {
  if (text === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)\/(\d+)$/.exec(text);
  if (m === null) throw new UsageError(`--rate "${text}": use <perSecond>/<burst>, e.g. 2/4`);
  return { perSecond: Number(m[1]), burst: Number(m[2]) };
}

function parseOverlap(text: string | undefined): number {
  if (text === undefined) return 0;
  const sec = Number(text);
  if (text.trim() === '' || !Number.isInteger(sec) || sec < 0) throw new UsageError(`--overlap "${text}": a whole number of seconds`);
  return sec;
}

function runKeysAdmin(sub: Command, args: string[], io: KeysIo): Promise<number> {
  const o = outputs(io);
  const withKey = (r: Record<string, unknown>) => `API key (shown once; store it now, only its hash is kept):\n\n  ${String(r.key)}\n\n${table([r.record as Record<string, unknown>], KEY_COLUMNS)}`;
  const print = (json: boolean, result: unknown, human: (r: Record<string, unknown>) => string) => o.out(json ? `${JSON.stringify(result)}\n` : human(result as Record<string, unknown>));
  switch (sub) {
    case KEYS_CREATE:
      return runAdminCommand(KEYS_CREATE, args, o, async ({ values }) => {
        const rate = parseRate(values.rate);
        const client = adminClient(values['admin-url'], o.env);
        const body = { project: values.project, scopes: commaList(values.scopes), env: values.env, expiresAt: values.expires, rate };
        print(values.json, await client.call('POST', `/admin/tenants/${encodeURIComponent(values.tenant)}/keys`, body), withKey);
      });
    case KEYS_LIST:
      return runAdminCommand(KEYS_LIST, args, o, async ({ values }) => {
        const items = await adminClient(values['admin-url'], o.env).all(`/admin/tenants/${encodeURIComponent(values.tenant)}/keys`);
        o.out(values.json ? `${JSON.stringify(items)}\n` : table(items as Record<string, unknown>[], KEY_COLUMNS));
      });
    case KEYS_ROTATE:
      return runAdminCommand(KEYS_ROTATE, args, o, async ({ values, positionals }) => {
        const overlapSec = parseOverlap(values.overlap);
        const client = adminClient(values['admin-url'], o.env);
        print(values.json, await client.call('POST', `/admin/keys/${encodeURIComponent(positionals[0]!)}/rotate`, { overlapSec }), (r) => {
          const previous = r.previous as { id: string; expiresAt: string };
          return `${withKey(r)}The old key ${previous.id} keeps working until ${previous.expiresAt}.\n`;
        });
      });
    default:
      return runAdminCommand(KEYS_REVOKE, args, o, async ({ values, positionals }) => {
        const client = adminClient(values['admin-url'], o.env);
        print(values.json, await client.call('DELETE', `/admin/keys/${encodeURIComponent(positionals[0]!)}`), (r) => table([r], KEY_COLUMNS));
      });
  }
}
