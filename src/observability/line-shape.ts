/**
 * The parts of the two lines written per request — the access line and the
 * usage event — that depend only on who called what: tenant, API key,
 * project, subject, route, method and plan. A key sends the same shape
 * request after request, so those fields' JSON is built once, as a few
 * segments of UTF-8 bytes (./line-bytes.ts copies them into the line);
 * beside them, memoised one deep, the segments that follow the status and
 * outcome, and the cost. A line is then ~10 copies and a few numbers and
 * ids written byte by byte, with no escaping check on its repeated values.
 *
 * Shapes are cached per key object (the account stage passes the principal,
 * else the route), in a WeakMap, so they die with the config or key record
 * they came from; each key keeps up to MAX_PER_KEY shapes. A shape is reused
 * only when all seven inputs are the same strings: the key spreads the
 * cache, it never decides what is written.
 */
import { jsonNumber as num, jsonToken as tok } from './json-fields.js';
import { segment } from './line-bytes.js';

const MAX_PER_KEY = 8;
/** Segments both lines have, after their durations. */
export const BYTES_IN = segment(',"bytesIn":');
export const BYTES_OUT = segment(',"bytesOut":');
/** A memo's bytes before its first build. */
const EMPTY = Buffer.alloc(0);

export class LineShape {
  /** `,"tenant":…,"apiKeyId":…,"route":…,"method":…,"path":` (the access line, after its requestId). */
  readonly accessWho: Buffer;
  /** `,"plan":…}` (the usage event's end). */
  readonly planTail: Buffer;
  /** `"tenantId":…,"projectId":…,"apiKeyId":…,"subject":…,"route":…,"method":…` (the usage event, after its type). */
  private readonly usageWho: string;

  // The memos start at NaN, which equals nothing: the first call always builds.
  private status = NaN;
  private outcome = '';
  private reason: string | null = null;
  /** `,"status":…,"outcome":…,"reason":…,"durationMs":` for the last status seen. */
  accessStatus: Buffer = EMPTY;
  /** usageWho, then `,"status":…,"outcome":…,"durationMs":`, for the last status seen. */
  usageWhoStatus: Buffer = EMPTY;
  private lastCost = NaN;
  private lastCostJson: Buffer = EMPTY;

  constructor(
    readonly tenantId: string | null,
    readonly projectId: string | null,
    readonly apiKeyId: string | null,
    readonly subject: string | null,
    readonly route: string | null,
    readonly method: string,
    readonly plan: string | null,
  ) {
    const tenant = tok(tenantId);
    const key = tok(apiKeyId);
    const routeJson = tok(route);
    const methodJson = tok(method);
    this.accessWho = segment(`,"tenant":${tenant},"apiKeyId":${key},"route":${routeJson},"method":${methodJson},"path":`);
    this.usageWho = `"tenantId":${tenant},"projectId":${tok(projectId)},"apiKeyId":${key},"subject":${tok(subject)},"route":${routeJson},"method":${methodJson}`;
    this.planTail = segment(`,"plan":${tok(plan)}}`);
  }

  /** Sets accessStatus and usageWhoStatus for this status, outcome and reason. */
  setStatus(status: number, outcome: string, reason: string | null): void {
    if (status === this.status && outcome === this.outcome && reason === this.reason) return;
    this.status = status;
    this.outcome = outcome;
    this.reason = reason;
    const statusAndOutcome = `,"status":${num(status)},"outcome":${tok(outcome)}`;
    this.accessStatus = segment(`${statusAndOutcome},"reason":${tok(reason)},"durationMs":`);
    this.usageWhoStatus = segment(`${this.usageWho}${statusAndOutcome},"durationMs":`);
  }

  /** `,"cost":…,"requestId":` (the usage event, before its requestId). */
  costJson(cost: number): Buffer {
    if (cost !== this.lastCost) {
      this.lastCost = cost;
      this.lastCostJson = segment(`,"cost":${num(cost)},"requestId":`);
    }
    return this.lastCostJson;
  }

  matches(tenantId: string | null, projectId: string | null, apiKeyId: string | null, subject: string | null, route: string | null, method: string, plan: string | null): boolean {
    return (
      tenantId === this.tenantId &&
      apiKeyId === this.apiKeyId &&
      route === this.route &&
      method === this.method &&
      plan === this.plan &&
      projectId === this.projectId &&
      subject === this.subject
    );
  }
}

const byKey = new WeakMap<object, LineShape[]>();

/** The shape for these values, from `key`'s cache (built and kept when new). */
export function lineShape(
  key: object,
  tenantId: string | null,
  projectId: string | null,
  apiKeyId: string | null,
  subject: string | null,
  route: string | null,
  method: string,
  plan: string | null,
): LineShape {
  let shapes = byKey.get(key);
  if (shapes === undefined) byKey.set(key, (shapes = []));
  for (let i = 0; i < shapes.length; i++) {
    const s = shapes[i]!;
    if (s.matches(tenantId, projectId, apiKeyId, subject, route, method, plan)) return s;
  }
  const shape = new LineShape(tenantId, projectId, apiKeyId, subject, route, method, plan);
  // The newest first; past the bound the oldest goes (a key seldom calls more than a few routes × methods).
  shapes.unshift(shape);
  if (shapes.length > MAX_PER_KEY) shapes.pop();
  return shape;
}
