/**
 * One usage event → its JSON line. Request events — one per request, the hot
 * case — are written field by field in SPEC §7 order: numbers as they are,
 * strings through JSON.stringify (escaping), which measured ~3× faster than
 * JSON.stringify of the whole object. Anything else (quota warnings, audit
 * events) goes through JSON.stringify as is.
 */
import type { RequestUsageEvent, UsageEvent } from './types.js';

/** A missing field is written as null, so even an incomplete event makes a valid line. */
const str = (v: string | null | undefined): string => (v == null ? 'null' : JSON.stringify(v));
/** Non-finite numbers are not JSON; JSON.stringify writes them as null, and so do we. */
const num = (v: number | undefined): string => (typeof v === 'number' && Number.isFinite(v) ? String(v) : 'null');

function requestLine(e: RequestUsageEvent): string {
  return (
    `{"id":${str(e.id)},"ts":${str(e.ts)},"type":"request","tenantId":${str(e.tenantId)},"projectId":${str(e.projectId)},` +
    `"apiKeyId":${str(e.apiKeyId)},"subject":${str(e.subject)},"route":${str(e.route)},"method":${str(e.method)},` +
    `"status":${num(e.status)},"outcome":${str(e.outcome)},"durationMs":${num(e.durationMs)},"bytesIn":${num(e.bytesIn)},` +
    `"bytesOut":${num(e.bytesOut)},"cost":${num(e.cost)},"requestId":${str(e.requestId)},"plan":${str(e.plan)}}`
  );
}

export function serializeEvent(event: UsageEvent): string {
  return event.type === 'request' ? requestLine(event as RequestUsageEvent) : JSON.stringify(event);
}
