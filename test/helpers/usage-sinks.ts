/**
 * Usage-delivery test parts: events with predictable ids, the usage config as
 * the schema fills it in, a capturing logger, a real HTTP collector on
 * loopback that can answer 500 or stop listening (connections refused), and
 * readers for what each sink delivered.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { configSchema, type Config } from '../../src/config/schema.js';
import { createLogger, type Logger } from '../../src/observability/logger.js';
import type { DeliveryOutcome, RequestUsageEvent } from '../../src/usage/types.js';
import { RestartableServer } from './restartable-server.js';

export function usageConfig(input: Record<string, unknown>): Config['usage'] {
  return configSchema.shape.usage.parse(input);
}

export function makeEvents(n: number, prefix = 'e', fields: Partial<RequestUsageEvent> = {}): RequestUsageEvent[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `${prefix}-${String(i).padStart(6, '0')}`,
    ts: '2026-11-25T12:00:00.000Z',
    type: 'request',
    tenantId: 'acme',
    projectId: null,
    apiKeyId: 'ak_1',
    subject: null,
    route: 'api',
    method: 'GET',
    status: 200,
    outcome: 'forwarded',
    durationMs: 3,
    bytesIn: 10,
    bytesOut: 100,
    cost: 1,
    requestId: `req-${i}`,
    plan: 'pro',
    traceId: null,
    requestedTenant: null,
    limit: null,
    grpcStatus: null,
    ...fields,
  }));
}

/** A debug-level logger whose lines the test can read (parsed JSON). */
export function captureLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger('debug', { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { logger, lines };
}

/** The onDelivery callback, summing counts per `sink/outcome`. */
export function deliveryCounter(): { onDelivery: (sink: string, outcome: DeliveryOutcome, n: number) => void; counts: Map<string, number>; get(key: string): number } {
  const counts = new Map<string, number>();
  return {
    counts,
    onDelivery: (sink, outcome, n) => void counts.set(`${sink}/${outcome}`, (counts.get(`${sink}/${outcome}`) ?? 0) + n),
    get: (key) => counts.get(key) ?? 0,
  };
}

/** Polls an async check until it is true; throws with `what` after `timeoutMs`. */
export async function eventually(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The ids of `ids` with later repeats removed (what a de-duplicating consumer keeps). */
export const dedupe = (ids: readonly string[]): string[] => [...new Set(ids)];

/**
 * Checks at-least-once delivery of `sent` in order: after removing repeats,
 * the ids are exactly `sent`. A repeat is a batch sent again, so first
 * occurrences keep the original order.
 */
export function assertDeliveredInOrder(received: readonly string[], sent: readonly string[]): void {
  const got = dedupe(received);
  if (got.length !== sent.length || got.some((id, i) => id !== sent[i])) {
    const missing = sent.filter((id) => !got.includes(id));
    throw new Error(`delivered ${got.length} distinct of ${sent.length} sent; missing ${missing.length} (${missing.slice(0, 5).join(', ')}); first out of order at ${got.findIndex((id, i) => id !== sent[i])}`);
  }
}

/** A real HTTP endpoint collecting POSTed usage batches (JSON array or NDJSON). */
export class HttpCollector extends RestartableServer {
  /** `ok`: 204; `fail`: 500 (the batch is not kept). */
  mode: 'ok' | 'fail' = 'ok';
  readonly ids: string[] = [];
  readonly contentTypes: string[] = [];
  posts = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}/usage`;
  }

  protected handle(req: IncomingMessage, body: string, res: ServerResponse): void {
    this.receive(req.headers['content-type'] ?? '', body, res);
  }

  private receive(contentType: string, body: string, res: ServerResponse): void {
    this.posts++;
    if (this.mode === 'fail') {
      res.statusCode = 500;
      res.end('down for maintenance');
      return;
    }
    this.contentTypes.push(contentType);
    const events = (contentType.startsWith('application/json') ? JSON.parse(body) : body.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l))) as { id: string }[];
    for (const e of events) this.ids.push(e.id);
    res.statusCode = 204;
    res.end();
  }
}

/** The ids in an NDJSON file, in file order (empty if it does not exist). */
export async function fileIds(path: string): Promise<string[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => (JSON.parse(l) as { id: string }).id);
}

/** The ids in every spool segment of one sink, oldest segment first. */
export async function spoolIds(dir: string): Promise<string[]> {
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.ndjson')).sort();
  const ids: string[] = [];
  for (const n of names) ids.push(...(await fileIds(join(dir, n))));
  return ids;
}

/** The ids in a Redis stream, in stream order (empty if Redis is unreachable). */
export async function streamIds(url: string, stream: string): Promise<string[]> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    const entries = await redis.xrange(stream, '-', '+');
    return entries.map(([, fields]) => (JSON.parse(fields[fields.indexOf('event') + 1]!) as { id: string }).id);
  } catch {
    return [];
  } finally {
    redis.disconnect();
  }
}
