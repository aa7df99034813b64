/**
 * The request event's JSON line: the same bytes as JSON.stringify(event), in
 * the same key order, joined from JSON segments (../observability/line-shape.ts,
 * ../observability/json-fields.ts). The line is a rope (a tree of its
 * pieces) until the lane's queue flattens or encodes it (./queue.ts). Other
 * event kinds are rare and go through JSON.stringify.
 */
import { flat, jsonNumber as num, jsonString as str } from '../observability/json-fields.js';
import { LineShape } from '../observability/line-shape.js';
import type { RequestUsageEvent } from './types.js';

/** `,"ts":…,"type":"request",` for the last `ts` seen: under load many events share a millisecond (and its string). */
const tsSegment = { ts: '', json: '' };

/**
 * The event line from JSON segments: `shape.setStatus()` has been called
 * for this request; `bytesJson` is `shape.bytesJson()`.
 */
export function requestEventLine(idJson: string, ts: string, shape: LineShape, durationJson: string, bytesJson: string, cost: number, requestIdJson: string): string {
  if (ts !== tsSegment.ts) {
    tsSegment.ts = ts;
    tsSegment.json = flat(`,"ts":${str(ts)},"type":"request",`);
  }
  return `{"id":${idJson}${tsSegment.json}${shape.usageWho}${shape.usageStatus}${durationJson}${bytesJson}${shape.costJson(cost)}${requestIdJson}${shape.planTail}`;
}

/** The same line for an event object (events recorded outside the account stage, tests). */
export function requestEventJson(e: RequestUsageEvent): string {
  const shape = new LineShape(e.tenantId, e.projectId, e.apiKeyId, e.subject, e.route, e.method, e.plan);
  shape.setStatus(e.status, e.outcome, null);
  return requestEventLine(str(e.id), e.ts, shape, num(e.durationMs), shape.bytesJson(e.bytesIn, e.bytesOut), e.cost, str(e.requestId));
}
