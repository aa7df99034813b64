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
 */
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { generateApiKey } from '../auth/api-key-format.js';
import { configSchema } from '../config/schema.js';
import { adminClient, commaList, outputs, runAdminCommand, table, UsageError } from './admin-client.js';

const USAGE =
  'usage: tenantgate keys generate --tenant <id> [--project <id>] [--scopes a,b] [--env live|test] [--expires <ISO>] [--id <id>] [--json]\n' +
  '       tenantgate keys create --tenant <id> [--project <id>] [--scopes a,b] [--env live|test] [--expires <ISO>] [--rate <perSecond>/<burst>] [--admin-url <url>] [--json]\n' +
  '       tenantgate keys list --tenant <id> [--admin-url <url>] [--json]\n' +
  '       tenantgate keys rotate <keyId> [--overlap <seconds>] [--admin-url <url>] [--json]\n' +
  '       tenantgate keys revoke <keyId> [--admin-url <url>] [--json]\n' +
  '       (create, list, rotate and revoke call a running proxy\'s admin API with $TENANTGATE_ADMIN_TOKEN)\n';
const OPTIONS = {
  tenant: { type: 'string' },
  project: { type: 'string' },
  scopes: { type: 'string' },
  env: { type: 'string', default: 'live' },
  expires: { type: 'string' },
  id: { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;
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
  const out = io.stdout ?? ((s: string) => void process.stdout.write(s));
  const err = io.stderr ?? ((s: string) => void process.stderr.write(s));
  const env = io.env ?? process.env;
  const now = io.now ?? Date.now;
  const fail = (message: string): number => {
    err(`tenantgate keys: ${message}\n${USAGE}`);
    return 2;
  };

  const [sub, ...rest] = args;
  if (sub === '-h' || sub === '--help' || sub === 'help') {
    out(USAGE);
    return 0;
  }
  if (sub === 'create' || sub === 'list' || sub === 'rotate' || sub === 'revoke') return runKeysAdmin(sub, rest, io);
  if (sub !== 'generate') return fail(sub === undefined ? 'missing subcommand (generate)' : `unknown subcommand "${sub}"`);
  let values;
  try {
    ({ values } = parseArgs({ args: rest, strict: true, allowPositionals: false, options: OPTIONS }));
  } catch (e) {
    return fail((e as Error).message);
  }
  if (values.help) {
    out(USAGE);
    return 0;
  }

  if (values.tenant === undefined) return fail('--tenant <id> is required');
  for (const [flag, field, value] of [
    ['--tenant', FIELDS.tenant, values.tenant],
    ['--project', FIELDS.project, values.project],
    ['--id', FIELDS.id, values.id],
    ['--expires', FIELDS.expiresAt, values.expires],
  ] as const) {
    // Only --tenant is required (checked above); an optional flag left out has nothing to check.
    const message = value === undefined ? null : problem(field, value);
    if (message !== null) return fail(`${flag} "${value}": ${message}${flag === '--expires' ? ' (use a date-time with seconds and a zone, e.g. 2027-01-01T00:00:00Z)' : ''}`);
  }
  if (values.env !== 'live' && values.env !== 'test') return fail(`--env "${values.env}": must be live or test`);
  // The schema accepts any zone offset but only real dates; a past date would print a key that never works.
  if (values.expires !== undefined && !(Date.parse(values.expires) > now())) return fail(`--expires "${values.expires}" is in the past`);
  const scopes = [...new Set((values.scopes ?? '').split(',').map((s) => s.trim()).filter((s) => s !== ''))];
  // Scopes reach the upstream space-separated (X-Scopes), so one with a space inside would read as two.
  const spaced = scopes.find((s) => /\s/.test(s));
  if (spaced !== undefined) return fail(`--scopes "${spaced}": a scope cannot contain whitespace`);

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
    err(`tenantgate keys: internal error, the record does not pass the config schema: ${whole.error.issues.map((i) => i.message).join('; ')}\n`);
    return 1;
  }

  if (values.json) {
    out(`${JSON.stringify({ key, record })}\n`);
    return 0;
  }
  const yaml = stringify([record])
    .split('\n')
    .map((l) => (l === '' ? l : `  ${l}`))
    .join('\n');
  const hashNote = pepper === null ? '' : '(hashed with HMAC-SHA256 and TENANTGATE_KEY_PEPPER: run the proxy with the same pepper)\n';
  out(
    `API key (shown once; store it now, only its hash is kept):\n\n  ${key}\n\n` +
      `Add this record under apiKeys: in your config:\n${hashNote}\n${yaml}`,
  );
  return 0;
}

// ── keys create | list | rotate | revoke: through a running proxy's admin API (issue #8) ──

const ADMIN_OPTIONS = {
  'admin-url': { type: 'string' },
  json: { type: 'boolean', default: false },
  tenant: { type: 'string' },
  project: { type: 'string' },
  scopes: { type: 'string' },
  env: { type: 'string' },
  expires: { type: 'string' },
  rate: { type: 'string' },
  overlap: { type: 'string' },
} as const;

const ADMIN_ALLOWED: Record<string, (keyof typeof ADMIN_OPTIONS)[]> = {
  create: ['tenant', 'project', 'scopes', 'env', 'expires', 'rate'],
  list: ['tenant'],
  rotate: ['overlap'],
  revoke: [],
};

const KEY_COLUMNS = ['id', 'tenant', 'project', 'env', 'scopes', 'expiresAt', 'revoked', 'lastUsedAt', 'source'];

async function runKeysAdmin(sub: 'create' | 'list' | 'rotate' | 'revoke', args: string[], io: KeysIo): Promise<number> {
  const o = outputs(io);
  return runAdminCommand('tenantgate keys', USAGE, o, async () => {
    let parsed;
    try {
      parsed = parseArgs({ args, strict: true, allowPositionals: true, options: ADMIN_OPTIONS });
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const { values, positionals } = parsed;
    for (const name of Object.keys(values) as (keyof typeof ADMIN_OPTIONS)[]) {
      if (name !== 'admin-url' && name !== 'json' && !ADMIN_ALLOWED[sub]!.includes(name)) throw new UsageError(`${sub} does not take --${name}`);
    }
    const byId = sub === 'rotate' || sub === 'revoke';
    if (positionals.length !== (byId ? 1 : 0)) throw new UsageError(byId ? `${sub} takes one key id` : `${sub} takes no positional argument`);
    if (!byId && values.tenant === undefined) throw new UsageError(`${sub} needs --tenant <id>`);
    let rate: { perSecond: number; burst: number } | undefined;
    if (values.rate !== undefined) {
      const m = /^(\d+(?:\.\d+)?)\/(\d+)$/.exec(values.rate);
      if (m === null) throw new UsageError(`--rate "${values.rate}": use <perSecond>/<burst>, e.g. 2/4`);
      rate = { perSecond: Number(m[1]), burst: Number(m[2]) };
    }
    let overlapSec: number | undefined;
    if (values.overlap !== undefined) {
      overlapSec = Number(values.overlap);
      if (!Number.isInteger(overlapSec) || overlapSec < 0) throw new UsageError(`--overlap "${values.overlap}": a whole number of seconds`);
    }
    const client = adminClient(values['admin-url'], o.env);
    const tenant = encodeURIComponent(values.tenant ?? '');
    const keyId = encodeURIComponent(positionals[0] ?? '');
    const print = (result: unknown, human: (r: Record<string, unknown>) => string) => o.out(values.json ? `${JSON.stringify(result)}\n` : human(result as Record<string, unknown>));
    const withKey = (r: Record<string, unknown>) => `API key (shown once; store it now, only its hash is kept):\n\n  ${String(r.key)}\n\n${table([r.record as Record<string, unknown>], KEY_COLUMNS)}`;
    switch (sub) {
      case 'create':
        print(
          await client.call('POST', `/admin/tenants/${tenant}/keys`, { project: values.project, scopes: commaList(values.scopes), env: values.env, expiresAt: values.expires, rate }),
          withKey,
        );
        return;
      case 'list': {
        const items = await client.all(`/admin/tenants/${tenant}/keys`);
        o.out(values.json ? `${JSON.stringify(items)}\n` : table(items as Record<string, unknown>[], KEY_COLUMNS));
        return;
      }
      case 'rotate':
        print(await client.call('POST', `/admin/keys/${keyId}/rotate`, { overlapSec: overlapSec ?? 0 }), (r) => {
          const previous = r.previous as { id: string; expiresAt: string };
          return `${withKey(r)}The old key ${previous.id} keeps working until ${previous.expiresAt}.\n`;
        });
        return;
      case 'revoke':
        print(await client.call('DELETE', `/admin/keys/${keyId}`), (r) => table([r], KEY_COLUMNS));
    }
  });
}
