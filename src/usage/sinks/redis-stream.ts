/**
 * Redis stream sink: one pipeline of `XADD <stream> MAXLEN ~ <maxLen> * event
 * <line>` per batch. The stream name is used as given (no keyPrefix).
 *
 * It has its own connection (not the limit store's): a backlog of usage
 * writes must never queue in front of a request's limit check. With
 * `enableOfflineQueue: false` a batch sent while disconnected fails at once,
 * and the lane spools it instead of waiting for a reconnect.
 */
import { Redis } from 'ioredis';
import type { Logger } from '../../observability/logger.js';
import type { UsageSink } from '../types.js';

export interface RedisStreamSinkOptions {
  name: string;
  url: string;
  stream: string;
  maxLen: number;
  timeoutMs: number;
}

export function createRedisStreamSink(opts: RedisStreamSinkOptions, logger: Logger): UsageSink {
  const redis = new Redis(opts.url, {
    enableOfflineQueue: false,
    commandTimeout: opts.timeoutMs,
    connectTimeout: opts.timeoutMs,
    maxRetriesPerRequest: 0,
    // Keep reconnecting while the sink is down; the lane's replay probe notices when it is back.
    retryStrategy: (times) => Math.min(times * 100, 2000),
  });
  let lastError = '';
  redis.on('error', (err: Error) => {
    // ioredis repeats the same error on every reconnect attempt; log each distinct one once.
    if (err.message === lastError) return;
    lastError = err.message;
    logger.warn({ sink: opts.name, err: err.message }, 'usage redis-stream sink connection error');
  });
  redis.on('ready', () => {
    lastError = '';
  });
  const maxLen = String(opts.maxLen);

  return {
    name: opts.name,
    async send(lines) {
      const pipeline = redis.pipeline();
      for (const line of lines) pipeline.xadd(opts.stream, 'MAXLEN', '~', maxLen, '*', 'event', line);
      const results = await pipeline.exec();
      if (results === null) throw new Error('redis pipeline was discarded');
      for (const [err] of results) if (err) throw err;
    },
    async close() {
      // quit() waits for a reply that never comes from a dead server; disconnect() is immediate.
      if (redis.status === 'ready') await redis.quit().catch(() => redis.disconnect());
      else redis.disconnect();
    },
  };
}
