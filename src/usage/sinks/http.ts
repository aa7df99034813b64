/**
 * HTTP sink: one POST per batch (undici `request`), as a JSON array, as
 * NDJSON, or as a CloudEvents batch (`application/cloudevents-batch+json`,
 * encoded here, in the batch, never on the request path). A non-2xx answer, a
 * refused connection or a timeout is a failure; the batch is retried
 * `retries` times with doubling backoff, then the lane spools it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import { BATCH_CONTENT_TYPE, encodeBatch, type Encoded } from '../cloudevents.js';
import type { UsageSink } from '../types.js';

export interface HttpSinkOptions {
  name: string;
  url: string;
  format: 'json' | 'ndjson' | 'cloudevents';
  /** With `format: cloudevents`: one §7 line to its CloudEvent. */
  encode?: ((line: string) => Encoded | null) | null;
  headers: Record<string, string>;
  timeoutMs: number;
  retries: number;
  backoffMs: number;
}

export function createHttpSink(opts: HttpSinkOptions): UsageSink {
  // Its own pool, so close() ends this sink's sockets and nothing else's.
  const agent = new Agent({ connectTimeout: opts.timeoutMs });
  const contentType = { json: 'application/json', ndjson: 'application/x-ndjson', cloudevents: BATCH_CONTENT_TYPE }[opts.format];
  const encode = opts.format === 'cloudevents' ? (opts.encode ?? null) : null;
  if (opts.format === 'cloudevents' && encode === null) throw new Error('http sink: format cloudevents needs an encoder');
  let closed = false;
  // For messages (they reach the log): without any user:password in the URL.
  const where = ((u) => `${u.origin}${u.pathname}`)(new URL(opts.url));

  async function post(body: string): Promise<void> {
    const res = await request(opts.url, {
      method: 'POST',
      dispatcher: agent,
      headers: { ...opts.headers, 'content-type': contentType },
      body,
      signal: AbortSignal.timeout(opts.timeoutMs),
    });
    // Read the body either way so the connection goes back to the pool.
    await res.body.dump();
    if (res.statusCode < 200 || res.statusCode > 299) throw new Error(`${where} answered ${res.statusCode}`);
  }

  return {
    name: opts.name,
    async send(lines) {
      const body = encode !== null ? `[${encodeBatch(lines, encode).join(',')}]` : opts.format === 'json' ? `[${lines.join(',')}]` : `${lines.join('\n')}\n`;
      for (let attempt = 0; ; attempt++) {
        try {
          return await post(body);
        } catch (err) {
          if (attempt >= opts.retries || closed) throw err;
          await sleep(opts.backoffMs * 2 ** attempt);
        }
      }
    },
    async close() {
      closed = true;
      // destroy, not close: whatever is in flight now is spooled already, so cut it off rather than wait.
      await agent.destroy();
    },
  };
}
