/**
 * Usage events (SPEC §7): what the account stage hands to the usage recorder,
 * and the seam every sink plugs in behind. One event per request, admitted or
 * rejected, at-least-once: each carries a unique `id` consumers de-duplicate by.
 */

/** The SPEC §7 request event, in SPEC §7's key order. `type` is an addition: absent/`request`, `quota_warning`, `audit`. */
export interface RequestUsageEvent {
  readonly id: string;
  /** ISO 8601 time the request ended. */
  readonly ts: string;
  readonly type: 'request';
  readonly tenantId: string | null;
  readonly projectId: string | null;
  readonly apiKeyId: string | null;
  readonly subject: string | null;
  readonly route: string | null;
  readonly method: string;
  readonly status: number;
  /** `forwarded`, or the error code that stopped the request. */
  readonly outcome: string;
  readonly durationMs: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly cost: number;
  readonly requestId: string;
  readonly plan: string | null;
  /** SPEC §13: the request's trace (32 hex digits); null when it had none. */
  readonly traceId: string | null;
  /** The tenant the request named (`tenancy.select`, `tenantIn`), granted or not; never the credential. */
  readonly requestedTenant: string | null;
  /** SPEC §11: the name of the limit that refused the request; null when none did. */
  readonly limit: string | null;
  /** SPEC §12: the gRPC status the client got (the upstream's, or the refusal's); null for a request that is not gRPC. */
  readonly grpcStatus: number | null;
}

/** Emitted once per tenant, quota, threshold and period when usage crosses 80 % / 95 %. */
export interface QuotaWarningEvent {
  readonly id: string;
  readonly ts: string;
  readonly type: 'quota_warning';
  readonly tenantId: string;
  readonly plan: string | null;
  readonly quota: 'daily' | 'monthly';
  /** 0.8 or 0.95 */
  readonly threshold: number;
  readonly used: number;
  readonly limit: number;
  /** Period id, e.g. `2026-11-25` or `2026-11`. */
  readonly period: string;
}

export type UsageEvent = RequestUsageEvent | QuotaWarningEvent | ({ readonly id: string; readonly ts: string; readonly type: string } & Record<string, unknown>);

export type DeliveryOutcome = 'sent' | 'spooled' | 'replayed';

/**
 * What the proxy holds. `record` never throws and never waits: it only puts
 * the event on a bounded in-memory queue that feeds the sinks.
 */
export interface UsageRecorder {
  /** Serialises the event (JSON.stringify, its keys in the order given) and queues that line for every sink. */
  record(event: UsageEvent): void;
  /** Sends or spools everything queued; resolves when no event lives only in memory (SIGTERM). */
  flush(): Promise<void>;
  /** flush(), then closes the sinks' connections and files. */
  close(): Promise<void>;
}

/**
 * One destination (redis-stream, file, http, nats). It gets events as their JSON
 * lines: an event is serialised once, when recorded (one that cannot be is
 * refused there, never by a sink mid-batch), and the spool keeps the same lines.
 */
export interface UsageSink {
  /** Spool directory and metrics label. */
  readonly name: string;
  /** Delivers the lines in order, or throws: then none of them counts as delivered (some may be duplicates later). */
  send(lines: readonly string[]): Promise<void>;
  close(): Promise<void>;
}
