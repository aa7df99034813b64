/**
 * A test receiver for the OpenMeter ingest contract (`POST /api/v1/events`):
 * a batch is `application/cloudevents-batch+json`, answered 204; a wrong
 * content type or an invalid event 400; a missing or wrong bearer token 401;
 * `mode: fail` answers 503. Each event is parsed and validated by the CNCF
 * `cloudevents` SDK; accepted events are de-duplicated by id, as OpenMeter does.
 * It can stop listening (connections refused) and start again on its port.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CloudEvent, HTTP } from 'cloudevents';
import { RestartableServer } from './restartable-server.js';

export const INGEST_PATH = '/api/v1/events';

export class OpenMeterReceiver extends RestartableServer {
  mode: 'ok' | 'fail' = 'ok';
  /** Accepted events by id (first arrival kept). */
  readonly events = new Map<string, CloudEvent<Record<string, unknown>>>();
  /** Every id in every accepted batch, repeats included. */
  readonly received: string[] = [];
  /** Ids of the batches answered 503 (what the sink tried to send). */
  readonly refused: string[] = [];
  /** Problems that made a batch 400/401: a test expects none. */
  readonly problems: string[] = [];
  batches = 0;

  constructor(private readonly token: string | null = null) {
    super();
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}${INGEST_PATH}`;
  }

  /** Accepted events per subject: requests counted once each, whatever was resent. */
  perSubject(type = 'tenantgate.request'): Map<string, number> {
    const totals = new Map<string, number>();
    for (const e of this.events.values()) if (e.type === type) totals.set(e.subject!, (totals.get(e.subject!) ?? 0) + 1);
    return totals;
  }

  private answer(res: ServerResponse, status: number, problem?: string): void {
    if (problem !== undefined) this.problems.push(problem);
    res.statusCode = status;
    res.setHeader('content-type', 'application/problem+json');
    res.end(status === 204 ? undefined : JSON.stringify({ status, detail: problem ?? 'unavailable' }));
  }

  protected handle(req: IncomingMessage, body: string, res: ServerResponse): void {
    if (req.method !== 'POST' || req.url !== INGEST_PATH) return this.answer(res, 404, `${req.method} ${req.url}`);
    if (this.token !== null && req.headers.authorization !== `Bearer ${this.token}`) return this.answer(res, 401, `authorization: ${req.headers.authorization}`);
    const type = req.headers['content-type'] ?? '';
    if (type !== 'application/cloudevents-batch+json') return this.answer(res, 400, `content-type ${type}`);
    if (this.mode === 'fail') {
      for (const e of JSON.parse(body) as { id: string }[]) this.refused.push(e.id);
      return this.answer(res, 503);
    }
    let batch: CloudEvent<Record<string, unknown>>[];
    try {
      // The SDK parses the batch mode and validates every event (strict): spec version, required attributes, types.
      const parsed = HTTP.toEvent({ headers: req.headers as Record<string, string>, body });
      batch = (Array.isArray(parsed) ? parsed : [parsed]) as CloudEvent<Record<string, unknown>>[];
      for (const e of batch) {
        e.validate();
        if (typeof e.subject !== 'string' || e.subject === '') throw new Error(`event ${e.id} has no subject`);
        if (e.datacontenttype !== 'application/json' || typeof e.data !== 'object') throw new Error(`event ${e.id}: data is not JSON`);
      }
    } catch (err) {
      return this.answer(res, 400, (err as Error).message);
    }
    this.batches++;
    for (const e of batch) {
      this.received.push(e.id);
      if (!this.events.has(e.id)) this.events.set(e.id, e);
    }
    this.answer(res, 204);
  }
}
