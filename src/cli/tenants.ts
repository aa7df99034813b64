/**
 * `tenantgate tenants create|list|get|update|suspend|activate|delete` — the
 * admin API's tenant calls from a shell (see ./admin-client.ts for the URL,
 * token and exit codes).
 */
import { parseArgs } from 'node:util';
import { adminClient, commaList, outputs, runAdminCommand, table, UsageError, type AdminIo } from './admin-client.js';

export const TENANTS_USAGE = `usage: tenantgate tenants <command> [--admin-url <url>] [--json]     (token: $TENANTGATE_ADMIN_TOKEN)
  create <id> --plan <plan> [--status active|suspended] [--hosts a,b] [--overrides <JSON>]
  list [--plan <plan>] [--status active|suspended|deleted]
  get <id>                   the tenant and its quota use today and this month
  update <id> [--plan <plan>] [--hosts a,b] [--overrides <JSON>]
  suspend <id> | activate <id> | delete <id>
`;

const OPTIONS = {
  'admin-url': { type: 'string' },
  json: { type: 'boolean', default: false },
  plan: { type: 'string' },
  status: { type: 'string' },
  hosts: { type: 'string' },
  overrides: { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

const ALLOWED: Record<string, (keyof typeof OPTIONS)[]> = {
  create: ['plan', 'status', 'hosts', 'overrides'],
  list: ['plan', 'status'],
  get: [],
  update: ['plan', 'hosts', 'overrides'],
  suspend: [],
  activate: [],
  delete: [],
};

const COLUMNS = ['id', 'plan', 'status', 'hosts', 'source'];

function overridesOf(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new UsageError(`--overrides: not valid JSON (e.g. '{"quota":{"daily":5000}}')`);
  }
}

export async function runTenants(args: string[], io: AdminIo = {}): Promise<number> {
  const o = outputs(io);
  const [sub, ...rest] = args;
  if (sub === undefined || sub === '-h' || sub === '--help' || sub === 'help') {
    (sub === undefined ? o.err : o.out)(sub === undefined ? `tenantgate tenants: missing command\n${TENANTS_USAGE}` : TENANTS_USAGE);
    return sub === undefined ? 2 : 0;
  }
  return runAdminCommand('tenantgate tenants', TENANTS_USAGE, o, async () => {
    const allowed = ALLOWED[sub];
    if (allowed === undefined) throw new UsageError(`unknown command "${sub}"`);
    let parsed;
    try {
      parsed = parseArgs({ args: rest, strict: true, allowPositionals: true, options: OPTIONS });
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const { values, positionals } = parsed;
    if (values.help) {
      o.out(TENANTS_USAGE);
      return;
    }
    for (const name of ['plan', 'status', 'hosts', 'overrides'] as const) {
      if (values[name] !== undefined && !allowed.includes(name)) throw new UsageError(`${sub} does not take --${name}`);
    }
    const wantsId = sub !== 'list';
    if (positionals.length !== (wantsId ? 1 : 0)) throw new UsageError(wantsId ? `${sub} takes one tenant id` : 'list takes no positional argument');
    const client = adminClient(values['admin-url'], o.env);
    const id = encodeURIComponent(positionals[0] ?? '');
    const print = (result: unknown, human: (r: Record<string, unknown>) => string) => o.out(values.json ? `${JSON.stringify(result)}\n` : human(result as Record<string, unknown>));
    const one = (r: Record<string, unknown>) => table([r], COLUMNS);
    switch (sub) {
      case 'create':
        if (values.plan === undefined) throw new UsageError('create needs --plan <plan>');
        print(
          await client.call('POST', '/admin/tenants', { id: positionals[0], plan: values.plan, status: values.status, hosts: commaList(values.hosts), overrides: overridesOf(values.overrides) }),
          one,
        );
        return;
      case 'list': {
        const q = new URLSearchParams();
        if (values.plan !== undefined) q.set('plan', values.plan);
        if (values.status !== undefined) q.set('status', values.status);
        const items = await client.all(`/admin/tenants${q.size > 0 ? `?${q}` : ''}`);
        o.out(values.json ? `${JSON.stringify(items)}\n` : table(items as Record<string, unknown>[], COLUMNS));
        return;
      }
      case 'get':
        print(await client.call('GET', `/admin/tenants/${id}`), (r) => {
          const usage = r.usage as Record<string, { used: number | null; limit: number | null; resetAt: string }>;
          const quota = Object.entries(usage)
            .map(([p, u]) => `${p}: ${u.used ?? '?'} of ${u.limit ?? 'unlimited'} (resets ${u.resetAt})`)
            .join('\n');
          return `${one(r)}${quota}\n`;
        });
        return;
      case 'update':
        if (values.plan === undefined && values.hosts === undefined && values.overrides === undefined) throw new UsageError('update needs --plan, --hosts or --overrides');
        print(await client.call('PATCH', `/admin/tenants/${id}`, { plan: values.plan, hosts: commaList(values.hosts), overrides: overridesOf(values.overrides) }), one);
        return;
      case 'delete':
        print(await client.call('DELETE', `/admin/tenants/${id}`), one);
        return;
      default:
        print(await client.call('POST', `/admin/tenants/${id}/${sub}`), one);
    }
  });
}
