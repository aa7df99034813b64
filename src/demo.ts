/**
 * `npm start`: the bundled echo upstream plus tenantgate (config/demo.yaml),
 * then shell lines that work as printed (a test runs them): a fresh API key
 * for tenant acme, a random admin token for the admin API, the CLI calls that
 * use it. PORT and ADMIN_PORT choose the ports (0: any free one). Ctrl-C stops both.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTenantgate } from './app.js';
import { generateApiKey } from './auth/api-key-format.js';
import { createEchoUpstream } from './demo/echo-upstream.js';

const echo = createEchoUpstream();
await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
const echoPort = (echo.address() as AddressInfo).port;

const configFile = fileURLToPath(new URL('../config/demo.yaml', import.meta.url));
const demoKey = generateApiKey({ env: 'live', id: 'ak_demo' });
// A new token per run: a demo left running on a shared machine hands out no well-known admin secret.
const adminToken = randomBytes(24).toString('base64url');
// Usage events and admin API changes go to a fresh temp directory, so the demo writes nothing into the checkout.
const demoDir = mkdtempSync(join(tmpdir(), 'tenantgate-demo-'));
const usageFile = join(demoDir, 'usage.ndjson');
const stateFile = join(demoDir, 'state.json');
const gate = await startTenantgate({
  configFile,
  env: {
    ...process.env,
    ECHO_PORT: String(echoPort),
    DEMO_KEY_HASH: demoKey.hash,
    DEMO_ADMIN_TOKEN: adminToken,
    DEMO_STATE_FILE: stateFile,
    DEMO_USAGE_FILE: usageFile,
    DEMO_SPOOL_DIR: join(demoDir, 'spool'),
  },
});
const { port } = gate.dataAddress;
const adminUrl = `http://127.0.0.1:${gate.adminAddress.port}`;
process.stdout.write(`
tenantgate demo: proxy on http://127.0.0.1:${port} -> echo upstream on :${echoPort}
admin: ${adminUrl}/healthz /readyz /metrics, admin API /admin/… (token below)

In another shell, from this directory:
  export TG=http://127.0.0.1:${port} KEY='${demoKey.key}' USAGE_FILE='${usageFile}'
  export TENANTGATE_ADMIN_URL=${adminUrl} TENANTGATE_ADMIN_TOKEN='${adminToken}'
  export TENANTGATE_CONFIG=config/demo.yaml DEMO_STATE_FILE='${stateFile}'

The echo upstream shows what it received: the spoofed X-Tenant-ID is gone,
the verified one (tenant acme, from the key) is injected:
  curl -si -H "X-API-Key: $KEY" -H 'X-Tenant-ID: evil' $TG/orders/42
  curl -si $TG/orders/42                 # no key: 401
  curl -si $TG/public/hello              # public route: no identity at all

A burst of 10, refilled at 5/s: twenty quick requests meet the rate limit (429):
  for i in $(seq 20); do curl -s -o /dev/null -w '%{http_code} ' -H "X-API-Key: $KEY" $TG/orders/1; done; echo

A new tenant and a key for it, through the admin API (no restart):
  node dist/main.js tenants create globex --plan starter
  GLOBEX_KEY=$(node dist/main.js keys create --tenant globex --scopes orders:read --json | node -p 'JSON.parse(require("fs").readFileSync(0, "utf8")).key')
  curl -s -H "X-API-Key: $GLOBEX_KEY" $TG/orders/7 | grep x-tenant

A backup of the tenants and keys made that way (hashes only; docs/cli.md has the restore):
  node dist/main.js registry export > '${join(demoDir, 'registry.ndjson')}'

Metrics, and the usage events (one per request, admitted or refused):
  curl -s $TENANTGATE_ADMIN_URL/metrics | grep -E '^tenantgate_(requests|limited)_total'
  node dist/main.js usage report --from $(date -u +%F) --to $(date -u +%F) --file $USAGE_FILE

Ctrl-C to stop.
`);

const stop = () => {
  void gate.shutdown().then(() => {
    echo.close();
    process.exit(0);
  });
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
