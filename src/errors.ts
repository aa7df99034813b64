/**
 * Every error a client can see (SPEC §4), in one table: code → status and the
 * default human message. Stages return a {@link Rejection} naming a code; only
 * {@link sendError} writes error responses, so every error is the same JSON
 * shape and never a stack trace. README's error table is checked against this
 * table by a test.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ServerHttp2Stream } from 'node:http2';
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
  if (isGrpcRequest(res.req)) return sendGrpcError(res, rejection, requestId);
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
  // (HTTP/2 has no Connection header: there the unread body ends with its stream.)
  if (req.httpVersionMajor !== 2 && (rejection.code === 'payload_too_large' || (!req.complete && (req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length']) > 0)))) {
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

/**
 * SPEC §12: the gRPC status a refusal becomes, by HTTP status. Statuses the
 * SPEC does not name follow gRPC's own HTTP mapping (500 → 13 INTERNAL,
 * anything else → 2 UNKNOWN).
 */
const GRPC_STATUS_BY_HTTP: Readonly<Record<number, number>> = {
  400: 3,
  401: 16,
  403: 7,
  404: 12,
  405: 12,
  408: 4,
  413: 3,
  429: 8,
  431: 3,
  500: 13,
  502: 14,
  503: 14,
  504: 4,
};

export function grpcStatusOf(code: ErrorCode): number {
  return GRPC_STATUS_BY_HTTP[ERRORS[code].status] ?? 2;
}

/** A gRPC client's request (`application/grpc`, `application/grpc+proto`, …): its refusals are gRPC statuses. */
export function isGrpcRequest(req: IncomingMessage): boolean {
  const type = req.headers['content-type'];
  return type !== undefined && type.startsWith('application/grpc');
}

/** gRPC's percent-encoding of grpc-message: printable ASCII but `%` as is, everything else as %XX of its UTF-8 bytes. */
export function encodeGrpcMessage(message: string): string {
  if (/^[\x20-\x24\x26-\x7e]*$/.test(message)) return message;
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  return out;
}

/**
 * A refusal of a gRPC request: HTTP 200 and a trailers-only response (one
 * HEADERS frame that ends the stream) carrying grpc-status and grpc-message,
 * which every gRPC client reads as the call's status. Returns 0 (no body).
 */
export function sendGrpcError(res: ServerResponse, rejection: Rejection, requestId: string): number {
  if (res.headersSent) {
    res.destroy();
    return 0;
  }
  const headers: Record<string, string> = {
    'content-type': 'application/grpc',
    'grpc-status': String(grpcStatusOf(rejection.code)),
    'grpc-message': encodeGrpcMessage(rejection.message ?? ERRORS[rejection.code].message),
    'x-request-id': requestId,
    ...rejection.headers,
  };
  if (rejection.code === 'unauthenticated' && !('www-authenticate' in headers)) headers['www-authenticate'] = 'Bearer realm="tenantgate"';
  const stream = (res as { stream?: ServerHttp2Stream }).stream;
  if (stream !== undefined) {
    // Through the stream itself: the compatibility API would end the stream with a DATA frame of its own.
    // A stream the client already reset cannot be answered (respond would throw).
    if (!stream.closed && !stream.destroyed) stream.respond({ ...headers, ':status': 200 }, { endStream: true });
    return 0;
  }
  // HTTP/1.1 (no gRPC client speaks it, but a curl may): the same statuses as headers.
  res.writeHead(200, { ...headers, 'content-length': 0 });
  res.end();
  return 0;
}
