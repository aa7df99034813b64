/**
 * `tenantgate tenants create|list|get|update|suspend|activate|delete` — the
 * admin API's tenant calls from a shell (see ./admin-client.ts for the URL,
 * token and exit codes; ./commands.ts for the flags).
 */
import { runGroup, UsageError } from './args.js';
import { adminClient, commaList, outputs, runAdminCommand, table, type AdminIo } from './admin-client.js';
import { TENANTS, TENANTS_CREATE, TENANTS_GET, TENANTS_LIST, TENANTS_UPDATE } from './commands.js';

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
  const one = (r: Record<string, unknown>) => table([r], COLUMNS);
  const print = (json: boolean, result: unknown, human: (r: Record<string, unknown>) => string) => o.out(json ? `${JSON.stringify(result)}\n` : human(result as Record<string, unknown>));
  return runGroup(TENANTS, args, o, (sub, rest) => {
    switch (sub) {
      case TENANTS_CREATE:
        return runAdminCommand(TENANTS_CREATE, rest, o, async ({ values, positionals }) => {
          const body = { id: positionals[0], plan: values.plan, status: values.status, hosts: commaList(values.hosts), overrides: overridesOf(values.overrides) };
          const client = adminClient(values['admin-url'], o.env);
          print(values.json, await client.call('POST', '/admin/tenants', body), one);
        });
      case TENANTS_LIST:
        return runAdminCommand(TENANTS_LIST, rest, o, async ({ values }) => {
          const q = new URLSearchParams();
          if (values.plan !== undefined) q.set('plan', values.plan);
          if (values.status !== undefined) q.set('status', values.status);
          const items = await adminClient(values['admin-url'], o.env).all(`/admin/tenants${q.size > 0 ? `?${q}` : ''}`);
          o.out(values.json ? `${JSON.stringify(items)}\n` : table(items as Record<string, unknown>[], COLUMNS));
        });
      case TENANTS_UPDATE:
        return runAdminCommand(TENANTS_UPDATE, rest, o, async ({ values, positionals }) => {
          if (values.plan === undefined && values.hosts === undefined && values.overrides === undefined) throw new UsageError('update needs --plan, --hosts or --overrides');
          const body = { plan: values.plan, hosts: commaList(values.hosts), overrides: overridesOf(values.overrides) };
          const client = adminClient(values['admin-url'], o.env);
          print(values.json, await client.call('PATCH', `/admin/tenants/${encodeURIComponent(positionals[0]!)}`, body), one);
        });
      default:
        // get, suspend, activate, delete: a tenant id and nothing else.
        return runAdminCommand(sub as typeof TENANTS_GET, rest, o, async ({ values, positionals }) => {
          const client = adminClient(values['admin-url'], o.env);
          const path = `/admin/tenants/${encodeURIComponent(positionals[0]!)}`;
          const name = sub.name.split(' ')[1];
          if (name === 'get') print(values.json, await client.call('GET', path), (r) => `${one(r)}${quota(r)}`);
          else if (name === 'delete') print(values.json, await client.call('DELETE', path), one);
          else print(values.json, await client.call('POST', `${path}/${name}`), one);
        });
    }
  });
}

function quota(r: Record<string, unknown>): string {
  const usage = r.usage as Record<string, { used: number | null; limit: number | null; resetAt: string }>;
  const lines = Object.entries(usage).map(([p, u]) => `${p}: ${u.used ?? '?'} of ${u.limit ?? 'unlimited'} (resets ${u.resetAt})`);
  return `${lines.join('\n')}\n`;
}
