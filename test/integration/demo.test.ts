/**
 * `npm start`'s demo (SPEC §2, §14): the shell lines it prints work exactly
 * as printed. The demo runs as users run it (`node dist/demo.js`, on free
 * ports); its export lines, its admin-API walk-through (a tenant, a key, a
 * curl with that key) and its registry backup line run through bash, from
 * the checkout, in an environment that has nothing else of ours.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/servers.js';

let demo: ChildProcess;
let printed = '';
let exited: Promise<number | null>;

beforeAll(async () => {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, PORT: '0', ADMIN_PORT: '0', LOG_LEVEL: 'warn' };
  demo = spawn(process.execPath, [join(ROOT, 'dist/demo.js')], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  exited = new Promise((resolve) => demo.once('exit', resolve));
  await new Promise<void>((resolve, reject) => {
    demo.stdout!.on('data', (c: Buffer) => {
      printed += c.toString();
      if (printed.includes('Ctrl-C to stop.')) resolve();
    });
    void exited.then((code) => reject(new Error(`the demo exited with ${code}: ${printed}`)));
  });
});

afterAll(async () => {
  demo.kill('SIGTERM');
  expect(await exited).toBe(0);
});

/** The printed lines (indented by two spaces) after the paragraph that starts with `heading`, up to the next blank line. */
function block(heading: string): string[] {
  const lines = printed.split('\n');
  const start = lines.findIndex((l) => l.startsWith(heading));
  expect(start, `"${heading}" in:\n${printed}`).toBeGreaterThanOrEqual(0);
  const out: string[] = [];
  for (let i = start + 1; i < lines.length && lines[i] !== ''; i++) if (lines[i]!.startsWith('  ')) out.push(lines[i]!.slice(2));
  return out;
}

function bash(script: string) {
  return spawnSync('bash', ['-c', `set -euo pipefail\n${script}`], { cwd: ROOT, env: { PATH: process.env.PATH, HOME: process.env.HOME }, encoding: 'utf8', timeout: 60_000 });
}

describe('the demo', () => {
  it('prints the admin token export and CLI lines that work as printed: a new tenant, its key, a curl with it', () => {
    const exports = block('In another shell');
    expect(exports.some((l) => /^export .*TENANTGATE_ADMIN_TOKEN='[A-Za-z0-9_-]{32}'/.test(l))).toBe(true);
    const walkThrough = block('A new tenant and a key for it');
    expect(walkThrough[0]).toBe('node dist/main.js tenants create globex --plan starter');
    expect(walkThrough[1]).toMatch(/^GLOBEX_KEY=\$\(node dist\/main\.js keys create --tenant globex /);
    const backup = block('A backup of the tenants and keys');

    const r = bash([...exports, ...walkThrough, ...backup, 'curl -s -o /dev/null -w "status=%{http_code}\\n" -H "X-API-Key: $GLOBEX_KEY" $TG/orders/7'].join('\n'));
    expect(r.stderr).toMatch(/^tenantgate registry: exported 1 tenant\(s\) and 1 key\(s\) from the file registry \/.*\/state\.json\n$/);
    expect(r.status).toBe(0);
    // The echo upstream answered with what it received: the tenant the new key belongs to.
    expect(r.stdout).toContain('"x-tenant-id": "globex"');
    expect(r.stdout).toMatch(/globex\s+starter\s+active/);
    expect(r.stdout.trimEnd().split('\n').at(-1)).toBe('status=200');

    const file = /> '([^']+)'$/.exec(backup[0]!)![1]!;
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => `${l.type}:${l.type === 'key' ? l.tenant : (l.id ?? l.format)}`)).toEqual(['header:tenantgate-registry', 'tenant:globex', 'key:globex']);
  });

  it('an admin call to an endpoint that does not exist says which ones do', () => {
    const exports = block('In another shell');
    const r = bash([...exports, 'curl -s -H "Authorization: Bearer $TENANTGATE_ADMIN_TOKEN" $TENANTGATE_ADMIN_URL/admin/nope'].join('\n'));
    expect(r.status).toBe(0);
    const { error } = JSON.parse(r.stdout) as { error: { code: string; message: string } };
    expect(error.code).toBe('no_route');
    expect(error.message).toContain('POST|GET /admin/tenants/{id}/keys');
  });
});
