/**
 * Every `tenantgate` command and subcommand, with its flags: the table the
 * parser, `--help`, the top-level usage and the help test all read. Data
 * only, so main.ts can read it without loading any command's module.
 */
import { command, synopsis, subName, type Command, type Flag, type Group } from './args.js';

export const DEFAULT_CONFIG = './config/tenantgate.yaml';

const config = {
  type: 'string',
  short: 'c',
  value: '<config.yaml>',
  description: `the config file (else $TENANTGATE_CONFIG, else ${DEFAULT_CONFIG})`,
} as const satisfies Flag;
const adminUrl = { type: 'string', value: '<url>', description: 'the admin API (else $TENANTGATE_ADMIN_URL, else http://127.0.0.1:9901)' } as const satisfies Flag;
const json = { type: 'boolean', description: 'print JSON instead of a table' } as const satisfies Flag;
const ADMIN_DETAILS = 'Calls a running proxy\'s admin API with the token in $TENANTGATE_ADMIN_TOKEN (never a flag: flags end up in shell history and ps).\nExit 0 done, 1 refused or unreachable, 2 usage error.';

const tenantId = { name: 'id', description: 'the tenant id' } as const;
const keyId = { name: 'keyId', description: 'the API key id (ak_…)' } as const;
const plan = { type: 'string', value: '<plan>', description: 'a plan of the proxy\'s config' } as const satisfies Flag;
const hosts = { type: 'string', value: 'a,b', description: 'the Hosts that belong to this tenant only (comma-separated)' } as const satisfies Flag;
const overrides = { type: 'string', value: '<JSON>', description: 'limit overrides, e.g. \'{"quota":{"daily":5000}}\'' } as const satisfies Flag;
const project = { type: 'string', value: '<id>', description: 'the project the key is attributed to' } as const satisfies Flag;
const scopes = { type: 'string', value: 'a,b', description: 'the key\'s scopes (comma-separated)' } as const satisfies Flag;
const expires = { type: 'string', value: '<ISO>', description: 'when the key stops working, e.g. 2027-01-01T00:00:00Z' } as const satisfies Flag;

export const SERVE = command({ name: 'serve', summary: 'Run the proxy. SIGTERM/SIGINT drain and exit 0; SIGHUP reloads the config.', flags: { config } });

export const VALIDATE = command({
  name: 'validate',
  summary: 'Check a config: exit 0 if valid, else print every problem (file:line path: message) and exit 1.',
  flags: { config },
});

export const KEYS_GENERATE = command({
  name: 'keys generate',
  summary: 'Print a new API key once, and its record (hash only) to add under apiKeys: in the config.',
  flags: {
    tenant: { type: 'string', value: '<id>', required: true, description: 'the tenant the key belongs to' },
    project,
    scopes,
    env: { type: 'string', value: 'live|test', default: 'live', description: 'the key\'s environment (its tg_<env>_ prefix)' },
    expires,
    id: { type: 'string', value: '<id>', description: 'the record id (default: a random ak_…)' },
    json: { type: 'boolean', description: 'print {"key", "record"} as JSON' },
  },
  details: 'With TENANTGATE_KEY_PEPPER set, the hash is HMAC-SHA256 with that pepper (run the proxy with the same one).',
});

export const KEYS_CREATE = command({
  name: 'keys create',
  summary: 'Create an API key through the admin API; its plaintext is printed once.',
  flags: {
    tenant: { type: 'string', value: '<id>', required: true, description: 'the tenant the key belongs to' },
    project,
    scopes,
    env: { type: 'string', value: 'live|test', description: 'the key\'s environment (default live)' },
    expires,
    rate: { type: 'string', value: '<perSecond>/<burst>', description: 'a per-key rate limit, checked as well as the tenant\'s, e.g. 2/4' },
    'admin-url': adminUrl,
    json,
  },
  details: ADMIN_DETAILS,
});

export const KEYS_LIST = command({
  name: 'keys list',
  summary: 'List a tenant\'s API keys (never a hash).',
  flags: { tenant: { type: 'string', value: '<id>', required: true, description: 'the tenant' }, 'admin-url': adminUrl, json },
  details: ADMIN_DETAILS,
});

export const KEYS_ROTATE = command({
  name: 'keys rotate',
  summary: 'Replace an API key with a new one; the old one keeps working for the overlap.',
  positionals: [keyId],
  flags: { overlap: { type: 'string', value: '<seconds>', description: 'how long the old key keeps working (default 0)' }, 'admin-url': adminUrl, json },
  details: ADMIN_DETAILS,
});

export const KEYS_REVOKE = command({
  name: 'keys revoke',
  summary: 'Revoke an API key, on every replica within 1 s.',
  positionals: [keyId],
  flags: { 'admin-url': adminUrl, json },
  details: ADMIN_DETAILS,
});

export const KEYS: Group = {
  name: 'keys',
  summary: 'API keys: generate one for the config file, or manage them through a running proxy\'s admin API.',
  subcommands: [KEYS_GENERATE, KEYS_CREATE, KEYS_LIST, KEYS_ROTATE, KEYS_REVOKE],
};

export const TENANTS_CREATE = command({
  name: 'tenants create',
  summary: 'Create a tenant.',
  positionals: [tenantId],
  flags: { plan: { ...plan, required: true }, status: { type: 'string', value: 'active|suspended', description: 'its status (default active)' }, hosts, overrides, 'admin-url': adminUrl, json },
  details: ADMIN_DETAILS,
});

export const TENANTS_LIST = command({
  name: 'tenants list',
  summary: 'List the tenants (the config\'s and the admin API\'s).',
  flags: {
    plan: { type: 'string', value: '<plan>', description: 'only this plan\'s tenants' },
    status: { type: 'string', value: 'active|suspended|deleted', description: 'only tenants with this status' },
    'admin-url': adminUrl,
    json,
  },
  details: ADMIN_DETAILS,
});

const byId = (name: string, summary: string) => command({ name: `tenants ${name}`, summary, positionals: [tenantId], flags: { 'admin-url': adminUrl, json }, details: ADMIN_DETAILS });

export const TENANTS_GET = byId('get', 'Show a tenant and its quota use today and this month.');

export const TENANTS_UPDATE = command({
  name: 'tenants update',
  summary: 'Change a tenant\'s plan, hosts or overrides.',
  positionals: [tenantId],
  flags: { plan, hosts, overrides, 'admin-url': adminUrl, json },
  details: ADMIN_DETAILS,
});

export const TENANTS: Group = {
  name: 'tenants',
  summary: 'Tenants, through a running proxy\'s admin API.',
  subcommands: [
    TENANTS_CREATE,
    TENANTS_LIST,
    TENANTS_GET,
    TENANTS_UPDATE,
    byId('suspend', 'Suspend a tenant: its requests get 403 tenant_suspended.'),
    byId('activate', 'Activate a suspended tenant.'),
    byId('delete', 'Delete a tenant (its id stays reserved).'),
  ],
};

export const USAGE_REPORT = command({
  name: 'usage report',
  summary: 'Per-tenant totals (requests, cost, bytes, rejections) of the usage events between two dates, read from a usage sink.',
  flags: {
    from: { type: 'string', value: '<YYYY-MM-DD>', required: true, description: 'the first day (UTC)' },
    to: { type: 'string', value: '<YYYY-MM-DD>', required: true, description: 'the last day (UTC), included' },
    tenant: { type: 'string', value: '<id>', description: 'only this tenant' },
    json,
    file: { type: 'string', value: '<path>', description: 'read a file sink\'s output (and its rotated path.N files)' },
    redis: { type: 'string', value: '<url>', description: 'read a redis-stream sink at this Redis (with --stream)' },
    stream: { type: 'string', value: '<name>', description: 'the stream to read (with --redis)' },
    config: { type: 'string', short: 'c', value: '<config.yaml>', description: 'read the sink this config names' },
    sink: { type: 'string', value: '<name>', description: 'with -c: the sink to read (default its first file or redis-stream sink)' },
  },
  details: 'Give one source: --file, --redis with --stream, or -c.',
});

export const USAGE: Group = { name: 'usage', summary: 'Usage reports from the usage events.', subcommands: [USAGE_REPORT] };

export const REGISTRY_EXPORT = command({
  name: 'registry export',
  summary: 'Write every tenant and API key record of the registry to stdout as NDJSON (hashes only: a backup).',
  flags: { config },
  details: 'The registry is the one the proxy with this config uses. Exit 0 done, 1 the config or the registry cannot be read.',
});

export const REGISTRY_IMPORT = command({
  name: 'registry import',
  summary: 'Read an export (stdin, or --file) back into the registry. Idempotent: importing twice changes nothing.',
  flags: { config, file: { type: 'string', value: '<path>', description: 'read this file instead of stdin' }, json: { type: 'boolean', description: 'print the counts as JSON' } },
  details:
    'Every line is checked before anything is written: a malformed file changes nothing (exit 1, naming the line).\n' +
    'A record the registry holds with a newer updatedAt is kept, so a restore never un-revokes a key.\n' +
    'Exit 0 done, 1 a bad line, a key whose tenant exists nowhere, or a registry that cannot be written.',
});

export const REGISTRY: Group = { name: 'registry', summary: 'Back up and restore the registry of admin-API tenants and keys.', subcommands: [REGISTRY_EXPORT, REGISTRY_IMPORT] };

/** Every top-level command, in the order `tenantgate --help` lists them. */
export const COMMANDS: readonly (Command | Group)[] = [SERVE, VALIDATE, KEYS, TENANTS, USAGE, REGISTRY];

export function isGroup(c: Command | Group): c is Group {
  return 'subcommands' in c;
}

/** `tenantgate --help`. */
export function topUsage(): string {
  const rows = COMMANDS.map((c): [string, string] => (isGroup(c) ? [`tenantgate ${c.name} ${c.subcommands.map(subName).join('|')}`, c.summary] : [synopsis(c), c.summary]));
  const width = Math.max(...rows.map(([l]) => l.length));
  return (
    'usage: tenantgate <command> [<subcommand>] [flags]\n\n' +
    `${rows.map(([l, r]) => `  ${l.padEnd(width)}  ${r}`).join('\n')}\n\n` +
    'tenantgate <command> [<subcommand>] --help (or tenantgate help <command> [<subcommand>]) shows its flags;\n' +
    'tenantgate --version prints the version. Exit codes: 0 done, 1 failed, 2 usage error.\n'
  );
}

/** The command `words` name (`["keys", "create"]`), or undefined. */
export function find(words: readonly string[]): Command | Group | undefined {
  const top = COMMANDS.find((c) => c.name === words[0]);
  if (top === undefined || words.length === 1) return top;
  if (!isGroup(top) || words.length > 2) return undefined;
  return top.subcommands.find((c) => subName(c) === words[1]);
}
