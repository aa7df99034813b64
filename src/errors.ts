/**
 * Every error a client can see (SPEC §4), in one table: code → status and the
 * default human message. Stages return a {@link Rejection} naming a code; only
 * {@link sendError} writes error responses, so every error is the same JSON
 * shape and never a stack trace. README's error table is checked against this
 * table by a test.
 */
import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { STATUS_CODES } from 'node:http';

export const ERRORS = {
  bad_request: { status: 400, message: 'The request is malformed.' },
  tenant_required: { status: 400, message: 'The credential may act for several tenants: the request must name one.' },
  unauthenticated: { status: 401, message: 'A valid credential is required.' },
  forbidden: { status: 403, message: 'The credential does not grant access to this route.' },
  tenant_suspended: { status: 403, message: 'The tenant is suspended.' },
  cross_tenant: { status: 403, message: 'This host belongs to another tenant.' },
  unknown_tenant: { status: 403, message: 'The credential names no known tenant.' },
  no_route: { status: 404, message: 'No route matches this request.' },
  not_found: { status: 404, message: 'No such resource.' },
  method_not_allowed: { status: 405, message: 'The route does not allow this method.' },
  request_timeout: { status: 408, message: 'The request was not received in time.' },
  conflict: { status: 409, message: 'The request conflicts with the current state.' },
  entitlement_exceeded: { status: 409, message: "The tenant's plan allows no more of these." },
  payload_too_large: { status: 413, message: 'The request body is too large.' },
  headers_too_large: { status: 431, message: 'The request headers are too large.' },
  rate_limited: { status: 429, message: 'Rate limit exceeded.' },
  quota_exceeded: { status: 429, message: 'Quota exceeded.' },
  concurrency_limited: { status: 429, message: 'Too many requests in flight.' },
  internal_error: { status: 500, message: 'The proxy failed to handle the request.' },
  upstream_unavailable: { status: 502, message: 'The upstream service is unavailable.' },
  store_unavailable: { status: 503, message: 'The limit store is unavailable.' },
  upstream_overloaded: { status: 503, message: 'The upstream service is at capacity; try again shortly.' },
  shutting_down: { status: 503, message: 'The proxy is shutting down.' },
  upstream_timeout: { status: 504, message: 'The upstream service did not answer in time.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

/** What a stage returns to stop the request: the code, an optional safer-than-default message, extra headers. */
export interface Rejection {
  readonly code: ErrorCode;
  readonly message?: string;
  /** Precise cause for logs and metrics (e.g. `expired`, `connect_refused`); never shown to the client. */
  readonly reason?: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** The limit that refused the request (SPEC §11): shown as `error.limit`. */
  readonly limit?: string;
}

export function reject(code: ErrorCode, reason?: string, message?: string): Rejection {
  return { code, reason, message };
}

/** The JSON body of an error, as bytes ready to write. */
export function errorBody(code: ErrorCode, requestId: string, message?: string, limit?: string): string {
  const error = { code, message: message ?? ERRORS[code].message, requestId };
  return JSON.stringify({ error: limit === undefined ? error : { ...error, limit } });
}

/**
 * Writes the SPEC §4 error on a normal response. If the response has already
 * started (headers sent), the only honest thing left is to cut the connection
 * so the client sees a truncated response rather than a corrupted one.
 * Returns the body's length in bytes (what the usage event counts as bytesOut).
 */
export function sendError(res: ServerResponse, rejection: Rejection, requestId: string): number {
  if (res.headersSent) {
    res.destroy();
    return 0;
  }
  const { status } = ERRORS[rejection.code];
  const body = errorBody(rejection.code, requestId, rejection.message, rejection.limit);
  const headers: Record<string, string | number> = {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-request-id': requestId,
    ...rejection.headers,
  };
  if (rejection.code === 'unauthenticated' && !('www-authenticate' in headers)) {
    headers['www-authenticate'] = 'Bearer realm="tenantgate"';
  }
  // Rejected before its body was read: close rather than let Node drain a body
  // (possibly huge) that nobody wants, just to keep the connection alive.
  const req = res.req;
  if (rejection.code === 'payload_too_large' || (!req.complete && (req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length']) > 0))) {
    headers.connection = 'close';
  }
  res.writeHead(status, headers);
  res.end(body);
  return headers['content-length'] as number;
}

/**
 * Writes an error on a raw socket: for upgrade (WebSocket) requests rejected
 * before the 101, and for requests Node's parser refused (clientError).
 */
export function writeRawError(socket: Duplex, rejection: Rejection, requestId: string): number {
  if (!socket.writable) {
    socket.destroy();
    return 0;
  }
  const { status } = ERRORS[rejection.code];
  const body = errorBody(rejection.code, requestId, rejection.message, rejection.limit);
  let head =
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
    'content-type: application/json; charset=utf-8\r\n' +
    `content-length: ${Buffer.byteLength(body)}\r\n` +
    'cache-control: no-store\r\n' +
    `x-request-id: ${requestId}\r\n`;
  if (rejection.code === 'unauthenticated') head += 'www-authenticate: Bearer realm="tenantgate"\r\n';
  for (const [name, value] of Object.entries(rejection.headers ?? {})) head += `${name}: ${value}\r\n`;
  socket.end(`${head}connection: close\r\n\r\n${body}`);
  return Buffer.byteLength(body);
}
