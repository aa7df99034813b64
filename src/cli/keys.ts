/**
 * `tenantgate keys generate --tenant <id> [--project <id>] [--scopes a,b]
 * [--env live|test] [--expires <ISO>] [--id <id>] [--json]`
 *
 * Prints the plaintext key ONCE and the record to add under `apiKeys:` (hash
 * only). With TENANTGATE_KEY_PEPPER set, the hash is HMAC-SHA256 with that
 * pepper (the proxy must run with the same pepper).
 */
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { generateApiKey } from '../auth/api-key-format.js';

const ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const USAGE = 'usage: tenantgate keys generate --tenant <id> [--project <id>] [--scopes a,b] [--env live|test] [--expires <ISO>] [--id <id>] [--json]\n';

function fail(message: string): number {
  process.stderr.write(`tenantgate keys: ${message}\n${USAGE}`);
  return 2;
}

export async function runKeys(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'generate') return fail(sub === undefined ? 'missing subcommand' : `unknown subcommand "${sub}"`);
  let values;
  try {
    ({ values } = parseArgs({
      args: rest,
      strict: true,
      options: {
        tenant: { type: 'string' },
        project: { type: 'string' },
        scopes: { type: 'string' },
        env: { type: 'string', default: 'live' },
        expires: { type: 'string' },
        id: { type: 'string' },
        json: { type: 'boolean', default: false },
      },
    }));
  } catch (err) {
    return fail((err as Error).message);
  }
  if (values.tenant === undefined || !ID.test(values.tenant)) return fail('--tenant <id> is required (letters, digits, . _ : -)');
  if (values.project !== undefined && !ID.test(values.project)) return fail('--project must be letters, digits, . _ : -');
  if (values.id !== undefined && !ID.test(values.id)) return fail('--id must be letters, digits, . _ : -');
  if (values.env !== 'live' && values.env !== 'test') return fail('--env must be live or test');
  if (values.expires !== undefined && !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(values.expires)) {
    return fail('--expires must be an ISO 8601 date-time with a zone, e.g. 2027-01-01T00:00:00Z');
  }
  const scopes = values.scopes === undefined ? [] : values.scopes.split(',').map((s) => s.trim()).filter((s) => s !== '');

  const { key, id, hash } = generateApiKey({ env: values.env, id: values.id, pepper: process.env.TENANTGATE_KEY_PEPPER || null });
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
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ key, record })}\n`);
  } else {
    process.stdout.write(
      `API key (shown once; store it now, only its hash is kept):\n\n  ${key}\n\nAdd this record under apiKeys: in your config:\n\n${stringify([record])
        .split('\n')
        .map((l) => (l === '' ? l : `  ${l}`))
        .join('\n')}`,
    );
  }
  return 0;
}
