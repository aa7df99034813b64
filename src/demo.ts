/**
 * `npm start`: the bundled echo upstream plus tenantgate (config/demo.yaml),
 * then a curl line that works. Ctrl-C stops both.
 */
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
// Usage events go to a fresh temp directory, so the demo writes nothing into the checkout.
const usageDir = mkdtempSync(join(tmpdir(), 'tenantgate-demo-'));
const usageFile = join(usageDir, 'usage.ndjson');
const gate = await startTenantgate({
  configFile,
  env: { ...process.env, ECHO_PORT: String(echoPort), DEMO_KEY_HASH: demoKey.hash, DEMO_USAGE_FILE: usageFile, DEMO_SPOOL_DIR: join(usageDir, 'spool') },
});
const { port } = gate.dataAddress;
process.stdout.write(`
tenantgate demo: proxy on http://127.0.0.1:${port} -> echo upstream on :${echoPort}
admin: http://127.0.0.1:${gate.adminAddress.port}/healthz /readyz /metrics

Try it — the echo upstream shows what it received. The spoofed X-Tenant-ID
is gone; the verified one (tenant acme, from the key) is injected:
  curl -si -H 'X-API-Key: ${demoKey.key}' -H 'X-Tenant-ID: evil' http://127.0.0.1:${port}/orders/42

Without a key (401), and a public route (no identity at all):
  curl -si http://127.0.0.1:${port}/orders/42
  curl -si http://127.0.0.1:${port}/public/hello

Send 11 quick requests with the key to meet the rate limit (429, RateLimit-* headers).

Every request, admitted or refused, is one usage event (and one access log line):
  tail -f ${usageFile}
  node dist/main.js usage report --from ${new Date().toISOString().slice(0, 10)} --to ${new Date().toISOString().slice(0, 10)} --file ${usageFile}

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
