// The benchmark's upstream: the bundled echo upstream (its /bench path answers 100 bytes of JSON).
import { createEchoUpstream } from '../../dist/demo/echo-upstream.js';

const server = createEchoUpstream();
server.keepAliveTimeout = 65_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`));
