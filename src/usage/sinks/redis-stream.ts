/**
 * Redis stream sink: each event is one stream entry `event <line>`, added by
 * `XADD <stream> * event <line>` in a tiny Lua loop that ends with one
 * `XTRIM MAXLEN ~ <maxLen>` (one trim per command rather than per entry:
 * ~10 % less Redis CPU per event, measured here; the stream may hold one
 * command's worth more than maxLen until then). Measured here, a pipeline
 * of one XADD per event cost ~4 µs of proxy CPU per event in ioredis
 * Command objects and argument encoding; one command per ~32 KB of events
 * costs a fraction of that, and Redis runs the same XADDs.
 *
 * The lane's queue is this sink's own (./redis-stream-queue.ts): it writes
 * each new line into the bytes of its EVAL command as it is queued, and a
 * batch is a few such commands of ~32 KB, sent together. The spool's replay
 * (send(lines)) encodes its lines the same way, all at once.
 *
 * The stream name is used as given (no keyPrefix). With a Redis Cluster
 * (store.redis a node list) the sink has a Cluster client: the stream is
 * one key, so every command goes to its slot's node, in order (a MOVED in
 * the middle of a batch, while the slot migrates, may reorder entries;
 * consumers go by the events' ids and timestamps anyway).
 *
 * It has its own connection (not the limit store's): a backlog of usage
 * writes must never queue in front of a request's limit check. With
 * `enableOfflineQueue: false` nothing queues inside ioredis: once the sink
 * has been connected, a batch sent while disconnected fails at once and the
 * lane spools it. Only the very first connection is waited for (up to
 * `timeoutMs`), so the first batches after start-up are not spooled needlessly.
 */
import { Command } from 'ioredis';
import type { Logger } from '../../observability/logger.js';
import { connectRedis } from '../../redis/connect.js';
import type { RedisTls } from '../../redis/tls.js';
import type { UsageSink } from '../types.js';
import { CommandFrame, StreamCommandQueue, type Piece } from './redis-stream-queue.js';

/** KEYS[1] stream, ARGV[1] maxLen, ARGV[2..] the events' JSON lines, in order. */
const XADD_BATCH = `
for i = 2, #ARGV do
  redis.call('XADD', KEYS[1], '*', 'event', ARGV[i])
end
redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', ARGV[1])
return #ARGV - 1`;

/**
 * A piece of the queue's (./redis-stream-queue.ts) as an ioredis command:
 * its bytes are the whole command, written as they are. ioredis still
 * tracks it like any other (its reply, its timeout, a Cluster's MOVED), and
 * sees its arguments (the script, the key count, the stream) only to find
 * the stream's slot. EVAL rather than EVALSHA: Redis keeps the compiled
 * script by its hash either way, and EVAL never fails with NOSCRIPT (a
 * restarted server, a Cluster node that has not seen it yet) — for the
 * ~150 bytes of script per ~80 events.
 */
class PieceCommand extends Command {
  constructor(
    private readonly piece: Piece,
    stream: string,
  ) {
    super('eval', [XADD_BATCH, '1', stream]);
  }

  override toWritable(): Buffer {
    return this.piece.bytes();
  }
}

export interface RedisStreamSinkOptions {
  name: string;
  /** A redis:// or rediss:// URL, or a Redis Cluster's node list (the stream is one key: its slot's node takes every piece, in order). */
  target: string | readonly string[];
  stream: string;
  maxLen: number;
  timeoutMs: number;
  /** store.tls, used when `target` is rediss://. */
  tls?: RedisTls | null;
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
  const frame = new CommandFrame(['EVAL', XADD_BATCH, '1', opts.stream, maxLen]);

  /** A batch from the queue: its pieces go out together on the one connection, so Redis adds them in order. */
  async function deliver(pieces: readonly Piece[]): Promise<void> {
    await connected();
    const sends: Promise<unknown>[] = [];
    for (const piece of pieces) {
      const command = new PieceCommand(piece, opts.stream);
      redis.sendCommand(command);
      sends.push(command.promise);
    }
    const added = await Promise.all(sends);
    for (let i = 0; i < pieces.length; i++) {
      if (added[i] !== pieces[i]!.count) throw new Error(`redis-stream: a piece of ${pieces[i]!.count} events added ${String(added[i])}`);
    }
  }

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
    createQueue: (batchSize) => new StreamCommandQueue(frame, batchSize, deliver),
    // The spool's replay: the lines as one batch, encoded now. All-or-nothing for the lane: on an error it
    // stays in the spool whole (a partial add means duplicates, never losses).
    async send(lines) {
      if (lines.length === 0) return;
      const queue = new StreamCommandQueue(frame, lines.length, deliver);
      for (const line of lines) queue.push(line);
      await queue.take().send();
    },
    async close() {
      // quit() waits for a reply that never comes from a dead server; disconnect() is immediate.
      if (redis.status === 'ready') await redis.quit().catch(() => redis.disconnect());
      else redis.disconnect();
    },
  };
}
