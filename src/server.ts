/**
 * The data port's HTTP server, hardened: bounded header size (431), a
 * deadline for the request head (slowloris) and the whole request, a
 * keep-alive above common load-balancer idle timeouts, the strict parser only
 * (smuggling attempts — CL+TE, duplicate Content-Length, obs-fold — are
 * refused by llhttp before any stage runs) and a JSON answer for every
 * request the parser refuses (answered and accounted by the pipeline).
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Config } from './config/schema.js';
import { reject, sendError } from './errors.js';
import type { Pipeline } from './pipeline.js';

const UNSUPPORTED_EXPECT = reject('bad_request', 'unsupported_expect', 'Only "Expect: 100-continue" is supported.');

/** Any Expect other than 100-continue: answered here (Node would send an empty 417) and never forwarded. */
function refuseExpectation(_req: IncomingMessage, res: ServerResponse): void {
  sendError(res, UNSUPPORTED_EXPECT, randomUUID());
}

export function createDataServer(listen: Config['listen'], pipeline: Pipeline): Server {
  const server = createServer(
    {
      maxHeaderSize: listen.maxHeaderBytes,
      headersTimeout: listen.headersTimeoutMs,
      requestTimeout: listen.requestTimeoutMs,
      keepAliveTimeout: listen.keepAliveTimeoutMs,
      // How often Node checks the two deadlines above; its default (30 s) lets a slowloris linger.
      connectionsCheckingInterval: Math.min(1000, listen.headersTimeoutMs),
      insecureHTTPParser: false,
      // Checked by the route stage instead, so the answer is our JSON 400, not Node's empty one.
      requireHostHeader: false,
      noDelay: true,
    },
    pipeline.handleRequest,
  );
  server.on('checkContinue', pipeline.handleContinue);
  server.on('checkExpectation', refuseExpectation);
  server.on('upgrade', pipeline.handleUpgrade);
  server.on('connect', pipeline.handleConnect);
  server.on('clientError', pipeline.handleClientError);
  return server;
}
