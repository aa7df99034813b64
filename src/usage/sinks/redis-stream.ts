/**
 * Redis stream sink: each event is one stream entry `event <line>`. A batch
 * is one EVAL of a small Lua loop that XADDs its lines in order and ends with
 * one `XTRIM MAXLEN ~ <maxLen>` (one trim per batch rather than per entry;
 * the stream may hold a batch more than maxLen until then). EVAL rather than
 * EVALSHA: Redis caches the compiled script either way, and EVAL never fails
 * with NOSCRIPT (a restarted server, a Cluster node that has not seen it).
 *
 * The stream name is used as given (no keyPrefix). With a Redis Cluster
 * (store.redis a node list) the sink has a Cluster client: the stream is
 * one key, so every batch goes to its slot's node.
 *
 * It has its own connection (not the limit store's): a backlog of usage
 * writes must never queue in front of a request's limit check. With
 * `enableOfflineQueue: false` nothing queues inside ioredis: once the sink
 * has been connected, a batch sent while disconnected fails at once and the
 * lane spools it. Only the very first connection is waited for (up to
 * `timeoutMs`), so the first batches after start-up are not spooled needlessly.
 */
import type { Logger } from '../../observability/logger.js';
import { connectRedis } from '../../redis/connect.js';
import type { RedisTls } from '../../redis/tls.js';
import { encodeBatch, type Encoded } from '../cloudevents.js';
import type { UsageSink } from '../types.js';

/** KEYS[1] stream, ARGV[1] maxLen, ARGV[2..] the events' JSON lines, in order. */
const XADD_BATCH = `
for i = 2, #ARGV do
  redis.call('XADD', KEYS[1], '*', 'event', ARGV[i])
end
redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', ARGV[1])
return #ARGV - 1`;

export interface RedisStreamSinkOptions {
  name: string;
  /** A redis:// or rediss:// URL, or a Redis Cluster's node list (the stream is one key: its slot's node takes every batch, in order). */
  target: string | readonly string[];
  stream: string;
  maxLen: number;
  timeoutMs: number;
  /** store.tls, used when `target` is rediss://. */
  tls?: RedisTls | null;
  /** `format: cloudevents`: each entry's `event` is the CloudEvent of the §7 line. */
  encode?: ((line: string) => Encoded | null) | null;
}

export function createRedisStreamSink(opts: RedisStreamSinkOptions, logger: Logger): UsageSink {
  const redis = connectRedis(opts.target, {
    enableOfflineQueue: false,
    commandTimeout: opts.timeoutMs,
    connectTimeout: opts.timeoutMs,
    maxRetriesPerRequest: 0,
    // Keep reconnecting while the sink is down; the lane's replay probe notices when it is back.
    retryStrategy: (times) => Math.min(times * 100, 2000),
  }, { enableOfflineQueue: false }, opts.tls ?? null);
  let lastError = '';
  redis.on('error', (err: Error) => {
    // ioredis repeats the same error on every reconnect attempt; log each distinct one once.
    if (err.message === lastError) return;
    lastError = err.message;
    logger.warn({ sink: opts.name, err: err.message }, 'usage redis-stream sink connection error');
  });
  let connectedOnce = false;
  redis.on('ready', () => {
    lastError = '';
    connectedOnce = true;
  });
  const maxLen = String(opts.maxLen);

  /** Resolves when connected; waits up to timeoutMs only for the first connection. */
  function connected(): Promise<void> {
    if (redis.status === 'ready') return Promise.resolve();
    if (connectedOnce || redis.status === 'end') return Promise.reject(new Error(`redis not connected (${redis.status})`));
    return new Promise((resolve, reject) => {
      const onReady = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        redis.off('ready', onReady);
        reject(new Error(`redis not connected (${redis.status})`));
      }, opts.timeoutMs);
      redis.once('ready', onReady);
    });
  }

  return {
    name: opts.name,
    async send(batch) {
      const lines = opts.encode ? encodeBatch(batch, opts.encode) : batch;
      if (lines.length === 0) return;
      await connected();
      const added = await redis.eval(XADD_BATCH, 1, opts.stream, maxLen, ...lines);
      if (added !== lines.length) throw new Error(`redis-stream: a batch of ${lines.length} events added ${String(added)}`);
    },
    async close() {
      // quit() waits for a reply that never comes from a dead server; disconnect() is immediate.
      if (redis.status === 'ready') await redis.quit().catch(() => redis.disconnect());
      else redis.disconnect();
    },
  };
}
