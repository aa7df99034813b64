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

/** `,"ts":…,"type":"request",` for the last `ts` seen, and the same after a bare id (its closing quote first): under load many events share a millisecond (and its string). */
const tsSegment = { ts: '', json: '', afterBareId: '' };

/**
 * The event line from JSON segments: `shape.setStatus()` has been called
 * for this request; `bytesJson` is `shape.bytesJson()`. `id` and
 * `requestId` are JSON strings, or, when `bareId` / `bareRequestId`, the
 * text of one that needs no escaping (a UUID tenantgate made), whose quotes
 * the segments around it carry.
 */
export function requestEventLine(id: string, bareId: boolean, ts: string, shape: LineShape, durationJson: string, bytesJson: string, cost: number, requestId: string, bareRequestId: boolean): string {
  if (ts !== tsSegment.ts) {
    tsSegment.ts = ts;
    tsSegment.json = flat(`,"ts":${str(ts)},"type":"request",`);
    tsSegment.afterBareId = flat(`"${tsSegment.json}`);
  }
  // `+` rather than a template literal: no ToString per piece (../observability/access-log.ts).
  return (
    (bareId ? '{"id":"' : '{"id":') +
    id +
    (bareId ? tsSegment.afterBareId : tsSegment.json) +
    shape.usageWho +
    shape.usageStatus +
    durationJson +
    bytesJson +
    shape.costJson(cost, bareRequestId) +
    requestId +
    (bareRequestId ? shape.planTailAfterBareId : shape.planTail)
  );
}

/** The same line for an event object (events recorded outside the account stage, tests). */
export function requestEventJson(e: RequestUsageEvent): string {
  const shape = new LineShape(e.tenantId, e.projectId, e.apiKeyId, e.subject, e.route, e.method, e.plan);
  shape.setStatus(e.status, e.outcome, null);
  return requestEventLine(str(e.id), false, e.ts, shape, num(e.durationMs), shape.bytesJson(e.bytesIn, e.bytesOut), e.cost, str(e.requestId), false);
}
