/**
 * `npm start`: the bundled echo upstream plus tenantgate (config/demo.yaml),
 * then a curl line that works. Ctrl-C stops both.
 */
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { startTenantgate } from './app.js';
import { createEchoUpstream } from './demo/echo-upstream.js';

const echo = createEchoUpstream();
await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
const echoPort = (echo.address() as AddressInfo).port;

const configFile = fileURLToPath(new URL('../config/demo.yaml', import.meta.url));
const gate = await startTenantgate({ configFile, env: { ...process.env, ECHO_PORT: String(echoPort) } });
const { port } = gate.dataAddress;
process.stdout.write(`
tenantgate demo: proxy on http://127.0.0.1:${port} -> echo upstream on :${echoPort}
admin: http://127.0.0.1:${gate.adminAddress.port}/healthz /readyz /metrics

Try it (the spoofed X-Tenant-ID never reaches the upstream):
  curl -s -H 'X-Tenant-ID: evil' http://127.0.0.1:${port}/hello

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
