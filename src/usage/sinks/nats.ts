/**
 * NATS JetStream sink (SPEC §16): each event is one message on
 * `<subjectPrefix>.<tenant>` with the `Nats-Msg-Id` header set to the event's
 * id, so a batch sent again (a retry, a replay after a crash) is dropped by
 * the stream as a duplicate within its `duplicate_window`. A batch counts as
 * delivered once JetStream has acknowledged every message of it; one missing
 * ack fails the batch and the lane spools it, like every sink.
 *
 * The messages of a batch are published together on one connection, so the
 * stream stores them in order; their acks are awaited together. The payload
 * is the §7 line, or its CloudEvent with `format: cloudevents`.
 *
 * The connection is opened on the first batch and re-opened on a later one
 * if it failed or closed; while it is up the client reconnects on its own.
 */
import { connect, type JetStreamClient, type NatsConnection } from 'nats';
import type { Logger } from '../../observability/logger.js';
import { eventTenant, NO_TENANT, type Encoded } from '../cloudevents.js';
import type { UsageSink } from '../types.js';

export interface NatsSinkOptions {
  name: string;
  /** nats://host:port (credentials in the URL are passed to the server, never logged). */
  url: string;
  /** The stream that must capture the subjects: a publish another stream acknowledges is a failure. */
  stream: string;
  subjectPrefix: string;
  timeoutMs: number;
  /** `format: cloudevents`: one §7 line to its CloudEvent. */
  encode?: ((line: string) => Encoded | null) | null;
}

/**
 * A tenant id as one subject token: `.` separates tokens, `*` and `>` are
 * wildcards and whitespace ends a subject, so anything but letters, digits,
 * `_`, `-` and `:` is percent-encoded (`%` too, so two ids never share a token).
 */
export function subjectToken(tenant: string | null): string {
  if (tenant === null || tenant === '') return NO_TENANT;
  return /^[A-Za-z0-9_:-]+$/.test(tenant) ? tenant : tenant.replace(/[^A-Za-z0-9_:-]/gu, (c) => [...Buffer.from(c)].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join(''));
}

const encoder = new TextEncoder();

export function createNatsSink(opts: NatsSinkOptions, logger: Logger): UsageSink {
  const where = ((u) => `${u.protocol}//${u.host}`)(new URL(opts.url));
  let conn: Promise<{ nc: NatsConnection; js: JetStreamClient }> | null = null;
  let closed = false;

  function connection(): Promise<{ nc: NatsConnection; js: JetStreamClient }> {
    if (conn !== null) return conn;
    const p = connect({ servers: opts.url, timeout: opts.timeoutMs, reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 500, name: `tenantgate ${opts.name}` }).then(
      (nc) => {
        logger.info({ sink: opts.name, server: where }, 'usage nats sink connected');
        // A connection that ends for good is replaced on the next batch.
        void nc.closed().then(() => {
          if (conn === p) conn = null;
        });
        return { nc, js: nc.jetstream({ timeout: opts.timeoutMs }) };
      },
      (err: Error) => {
        if (conn === p) conn = null;
        throw new Error(`nats ${where}: ${err.message}`);
      },
    );
    conn = p;
    return p;
  }

  return {
    name: opts.name,
    async send(lines) {
      if (closed) throw new Error('nats sink closed');
      const { js } = await connection();
      const acks: Promise<unknown>[] = [];
      for (const line of lines) {
        let id: string;
        let tenant: string | null;
        let payload = line;
        if (opts.encode) {
          const ce = opts.encode(line);
          if (ce === null) continue; // a spool line cut short by a crash (see encodeBatch)
          ({ id } = ce);
          tenant = eventTenant(ce.fields);
          payload = ce.json;
        } else {
          let e: { id?: unknown; type?: unknown; tenantId?: unknown; target?: { id?: unknown; type?: unknown; tenant?: unknown } };
          try {
            e = JSON.parse(line) as typeof e;
          } catch {
            continue;
          }
          if (typeof e?.id !== 'string') continue;
          id = e.id;
          tenant = eventTenant(e);
        }
        const subject = `${opts.subjectPrefix}.${subjectToken(tenant)}`;
        acks.push(js.publish(subject, encoder.encode(payload), { msgID: id, expect: { streamName: opts.stream }, timeout: opts.timeoutMs }));
      }
      // Every publish is awaited (none left unhandled); the first failure fails the batch.
      const results = await Promise.allSettled(acks);
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed !== undefined) throw new Error(`nats ${where} stream ${opts.stream}: ${(failed.reason as Error).message}`);
    },
    async close() {
      closed = true;
      const c = conn;
      conn = null;
      if (c === null) return;
      const { nc } = await c.catch(() => ({ nc: null }));
      // close, not drain: whatever is unacknowledged now is spooled already.
      await nc?.close();
    },
  };
}
