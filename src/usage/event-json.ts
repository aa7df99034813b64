/**
 * The request event's JSON line (SPEC §7): the same bytes as
 * JSON.stringify(event), in the same key order (its durationMs rounded to
 * the µs, as the account stage measures it), written from a line shape's
 * segments (../observability/line-shape.ts) straight into the bytes a sink
 * queues (../observability/line-bytes.ts: no string per event). A sink that
 * queues strings gets the same bytes as a string. Other event kinds are rare
 * and go through JSON.stringify.
 */
import { jsonString as str } from '../observability/json-fields.js';
import { jsonStringBound, MAX_NUMBER_BYTES, putBytes, putJsonString, putMillis, putNumber, Scratch, segment } from '../observability/line-bytes.js';
import { BYTES_IN, BYTES_OUT, LineShape } from '../observability/line-shape.js';
import type { RequestUsageEvent } from './types.js';

/**
 * What one request's event is written from. The account stage fills one
 * and hands it to the recorder, which writes it at once (into every sink's
 * queue) and keeps no reference: so one object serves every request.
 * `shape.setStatus()` has been called for this request.
 */
export class RequestEventParts {
  id = '';
  ts = '';
  shape: LineShape = NO_SHAPE;
  durationMs = 0;
  bytesIn = 0;
  bytesOut = 0;
  cost = 0;
  requestId = '';
}

const NO_SHAPE = new LineShape(null, null, null, null, null, '', null);
const ID_OPEN = segment('{"id":');

/** `,"ts":…,"type":"request",` for the last `ts` seen: under load many events share a millisecond (and its string). */
let lastTs = '';
let lastTsBytes = segment(`,"ts":"","type":"request",`);

function tsSegment(ts: string): Buffer {
  if (ts !== lastTs) {
    lastTs = ts;
    lastTsBytes = segment(`,"ts":${str(ts)},"type":"request",`);
  }
  return lastTsBytes;
}

/** The most bytes writeRequestEvent writes for `e`. */
export function requestEventBound(e: RequestEventParts): number {
  const shape = e.shape;
  return (
    ID_OPEN.length +
    jsonStringBound(e.id) +
    tsSegment(e.ts).length +
    shape.usageWhoStatus.length +
    3 * MAX_NUMBER_BYTES +
    BYTES_IN.length +
    BYTES_OUT.length +
    shape.costJson(e.cost).length +
    jsonStringBound(e.requestId) +
    shape.planTail.length
  );
}

/** Writes the event's line at `at` (room: requestEventBound(e)); returns where it ends. */
export function writeRequestEvent(out: Buffer, at: number, e: RequestEventParts): number {
  const shape = e.shape;
  at = putBytes(out, at, ID_OPEN);
  at = putJsonString(out, at, e.id);
  at = putBytes(out, at, tsSegment(e.ts));
  at = putBytes(out, at, shape.usageWhoStatus);
  at = putMillis(out, at, e.durationMs);
  at = putBytes(out, at, BYTES_IN);
  at = putNumber(out, at, e.bytesIn);
  at = putBytes(out, at, BYTES_OUT);
  at = putNumber(out, at, e.bytesOut);
  at = putBytes(out, at, shape.costJson(e.cost));
  at = putJsonString(out, at, e.requestId);
  return putBytes(out, at, shape.planTail);
}

const scratch = new Scratch();

/** The event's line as a string (a sink that queues strings, the spool). */
export function requestEventLine(e: RequestEventParts): string {
  const out = scratch.room(requestEventBound(e));
  return scratch.text(writeRequestEvent(out, 0, e));
}

/**
 * The line for an event object (events recorded outside the account stage,
 * tests): JSON.stringify in SPEC §7's key order, its numbers as they are
 * (the account stage's are rounded to the µs first).
 */
export function requestEventJson(e: RequestUsageEvent): string {
  const { id, ts, tenantId, projectId, apiKeyId, subject, route, method, status, outcome, durationMs, bytesIn, bytesOut, cost, requestId, plan } = e;
  return JSON.stringify({ id, ts, type: 'request', tenantId, projectId, apiKeyId, subject, route, method, status, outcome, durationMs, bytesIn, bytesOut, cost, requestId, plan });
}
