import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ApiKeyVerifier } from '../../src/auth/api-key-verifier.js';
import { parseConfig } from '../../src/config/load.js';
import { MAIN } from '../helpers/servers.js';

const keys = (args: string[], env: NodeJS.ProcessEnv = {}) => spawnSync(process.execPath, [MAIN, 'keys', ...args], { encoding: 'utf8', env: { ...process.env, ...env } });

describe('tenantgate keys generate', () => {
  it('--json prints the key once and a record that validates and verifies it', () => {
    const r = keys(['generate', '--tenant', 'acme', '--project', 'web', '--scopes', 'orders:read, orders:write', '--env', 'test', '--expires', '2030-01-01T00:00:00Z', '--json']);
    expect(r.status).toBe(0);
    const { key, record } = JSON.parse(r.stdout);
    expect(key).toMatch(/^tg_test_ak_/);
    expect(JSON.stringify(record)).not.toContain(key.slice(-30, -6));
    expect(record).toMatchObject({ tenant: 'acme', project: 'web', scopes: ['orders:read', 'orders:write'], env: 'test', expiresAt: '2030-01-01T00:00:00Z', revoked: false });
    const yaml = `plans: { p: {} }\ntenants: [{ id: acme, plan: p }]\napiKeys: [${JSON.stringify(record)}]\nroutes: [{ name: a, match: {}, upstream: "http://127.0.0.1:1" }]\n`;
    const config = parseConfig(yaml, 'k.yaml', {});
    const verifier = new ApiKeyVerifier({ lookup: (id) => config.source.apiKeys.find((k) => k.id === id) });
    expect(verifier.verify(key)).toMatchObject({ ok: true });
  });

  it('prints a human format with the record to paste, and peppers when asked', () => {
    const r = keys(['generate', '--tenant', 'acme'], { TENANTGATE_KEY_PEPPER: 'pepper-123' });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/shown once/);
    expect(r.stdout).toMatch(/hash: hmac-sha256:/);
  });

  it.each([
    [['generate']],
    [['generate', '--tenant', 'bad tenant']],
    [['generate', '--tenant', 'acme', '--env', 'prod']],
    [['generate', '--tenant', 'acme', '--expires', 'tomorrow']],
    [['generate', '--tenant', 'acme', '--bogus']],
    [['rotate']],
  ])('%j exits 2 with a clear message', (args) => {
    const r = keys(args);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^tenantgate keys: /);
    expect(r.stdout).toBe('');
  });
});
