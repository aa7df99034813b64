/**
 * The one object a request carries through the pipeline (SPEC §1). Created
 * when the request arrives; each stage fills in its part and reads what the
 * stages before it wrote. A class with every field initialised in the
 * constructor keeps one hidden class for all requests (fast property access).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { CompiledConfig } from './config/compile.js';
import type { CompiledRoute, Lease, Principal, QuotaCrossing, Tenant } from './domain.js';
import type { ErrorCode } from './errors.js';
import type { RequestTrace } from './tracing/hooks.js';

export class RequestContext {
  /** Request id: the client's when well-formed, else a fresh one. */
  requestId = '';
  /**
   * The request id is one tenantgate made (a fresh v4 UUID), not the
   * client's. Then it is also the usage event's `id`: unique as an event id
   * must be, and one UUID fewer to make per request. A client's id can
   * repeat (retries send the same one), so its requests' events get ids of
   * their own.
   */
  requestIdGenerated = false;
  /** performance.now() at arrival. */
  readonly startedAt: number;
  route: CompiledRoute | null = null;
  /** Lower-case Host without port. */
  host = '';
  /** The Host as sent (or the absolute-form target's authority): what the upstream's Host / X-Forwarded-Host carry. */
  hostHeader: string | null = null;

  /** Normalised path (what routing matched and what is forwarded). */
  path = '/';
  search = '';
  /** Headers to send upstream, flat [name, value, …] (built by sanitize, completed by forward). */
  upstreamHeaders: string[] = [];
  principal: Principal | null = null;
  /** The active tenant (filled by the resolve-tenant stage): the credential's, or the one the request selected. */
  tenant: Tenant | null = null;
  /** The tenant the request asked to act for (`tenancy.select`, `tenantIn`), kept for the usage event; null when it named none. */
  requestedTenant: string | null = null;
  /** The client's `tenancy.header` value, read by sanitize before it strips the header; null when absent or not selected. */
  tenantHeader: string | null = null;
  /** The client sent `tenancy.header` more than once with different values. */
  tenantHeaderConflict = false;
  /** The gRPC status the client got (SPEC §12): the upstream's trailer or a refusal's; null for a request that is not gRPC. */
  grpcStatus: number | null = null;
  /** The client sent Authorization or X-API-Key more than once (seen by sanitize; refused by authenticate). */
  duplicateCredential = false;
  /** Rate-limit headers for the response (limit stage), as name, value, name, value…; null when the route is not limited for this caller. */
  limitHeaders: readonly string[] | null = null;
  /** Passed every check (stages 1–6): charged to the quotas, headed for the upstream. */
  admitted = false;
  /** The concurrency slots this request holds (one per concurrency limit, one lease id), released when it ends. */
  lease: readonly Lease[] | null = null;
  /** The name of the limit that refused the request (a shorthand's is its kind: rate, quota_daily, …). */
  limitedBy: string | null = null;
  /** Set when the request was rejected: the code (also the usage event's outcome). */
  errorCode: ErrorCode | null = null;
  /** Precise failure cause for logs and metrics. */
  reason: string | null = null;
  status = 0;
  /** performance.now() when the request was dispatched to the upstream (0: never forwarded). */
  upstreamStartedAt = 0;
  /** performance.now() when the upstream's response head arrived. */
  upstreamHeadersAt = 0;
  /** Request body bytes read from the client and forwarded (usage event `bytesIn`). */
  bytesIn = 0;
  /** Response body bytes written to the client (usage event `bytesOut`). */
  bytesOut = 0;
  /** Quota thresholds this request's charge crossed (limit stage), reported by the account stage. */
  quotaCrossings: QuotaCrossing[] | null = null;
  /** True for requests that sent `Expect: 100-continue`: answered only once admitted. */
  expectContinue = false;
  /** A WebSocket upgrade request (answered on the raw socket). */
  upgrade = false;
  /** The request has ended and was accounted (set once, by the pipeline's finish). */
  ended = false;
  /** This request's spans; null when tracing is off. */
  trace: RequestTrace<RequestContext> | null = null;

  constructor(
    readonly req: IncomingMessage,
    /** The response, or null for an upgrade request (then `socket` is set). */
    readonly res: ServerResponse | null,
    readonly socket: Duplex | null,
    readonly config: CompiledConfig,
    startedAt: number,
  ) {
    this.startedAt = startedAt;
  }
}
