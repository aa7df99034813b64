/**
 * The usage recorder (SPEC §7): `record()` serialises an event once and puts
 * the same line on every sink's lane (./lane.ts). The lanes batch, deliver,
 * spool (./spool.ts) and replay on their own, so `record()` never waits and a
 * sink that is down delays no other. This file is the only switch on sink type.
 *
 * Spool layout: `<spoolDir>/<sink name>/<seq>.ndjson`; a spool left by a crash
 * is found here at start-up and replayed. A sink with `format: cloudevents`
 * encodes in its own send: the spool keeps §7 lines, so a replay re-encodes
 * them into the same CloudEvents (same ids).
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { RedisTls } from '../redis/tls.js';
import { createCloudEventEncoder, defaultSource, type Encoded } from './cloudevents.js';
import { Lane } from './lane.js';
import { createFileSink } from './sinks/file.js';
import { createHttpSink } from './sinks/http.js';
import { createNatsSink } from './sinks/nats.js';
import { createRedisStreamSink } from './sinks/redis-stream.js';
import { Spool } from './spool.js';
import type { DeliveryOutcome, UsageEvent, UsageRecorder, UsageSink } from './types.js';

export type * from './types.js';

export interface UsageDeps {
  /** store.redis (a URL or a Cluster's node list): the redis-stream sinks' default server (each opens its own connection). */
  redis: string | readonly string[] | null;
  /** store.tls, for the sinks' rediss:// URLs. */
  redisTls?: RedisTls | null;
  logger: Logger;
  /** Counts events per sink and outcome (tenantgate_usage_events_total). */
  onDelivery(sink: string, outcome: DeliveryOutcome, count: number): void;
}

type SinkConfig = Config['usage']['sinks'][number];

const NOOP: UsageRecorder = { record() {}, async flush() {}, async close() {} };

/** A sink with nowhere to send: every batch fails, so the lane spools it (nothing is dropped). */
function unconfiguredSink(name: string): UsageSink {
  return {
    name,
    send: () => Promise.reject(new Error('no Redis configured for this redis-stream sink')),
    close: async () => {},
  };
}

function createSink(config: SinkConfig, deps: UsageDeps): UsageSink {
  // The encoder runs in the sink's send (off the request path); the lines and the spool stay §7 JSON.
  const ce = config.cloudevents;
  const encode: ((line: string) => Encoded | null) | null = ce === null ? null : createCloudEventEncoder({ ...ce, source: ce.source ?? defaultSource() });
  switch (config.type) {
    case 'redis-stream': {
      const target = config.url ?? deps.redis;
      return target === null ? unconfiguredSink(config.name) : createRedisStreamSink({ ...config, target, tls: deps.redisTls ?? null, encode }, deps.logger);
    }
    case 'file':
      return createFileSink({ ...config, encode });
    case 'http':
      return createHttpSink({ ...config, encode });
    case 'nats':
      return createNatsSink({ ...config, encode }, deps.logger);
  }
}

export async function createUsageRecorder(config: Config['usage'], deps: UsageDeps): Promise<UsageRecorder> {
  if (config.sinks.length === 0) return NOOP;
  const { logger } = deps;
  // A redis-stream sink with no Redis to write to (SPEC §3's example with REDIS_URL unset) keeps its
  // events in its spool — replayed once a restart gives it a Redis — rather than refusing to start.
  for (const s of config.sinks) {
    if (s.type === 'redis-stream' && s.url === null && deps.redis === null) {
      logger.warn({ sink: s.name, spoolDir: config.spoolDir }, 'usage redis-stream sink has no Redis (store.redis is empty and the sink sets no url): its events are spooled until one is configured');
    }
  }
  // Spools first: opening one can fail (permissions), and nothing holds a connection yet.
  const spools: Spool[] = [];
  for (const { name } of config.sinks) {
    spools.push(await Spool.open(join(config.spoolDir, name), config.spool, (n) => deps.onDelivery(name, 'spooled', n), logger));
  }
  const lanes = config.sinks.map((sinkConfig, i) => {
    const options = { batchSize: sinkConfig.batchSize, flushMs: sinkConfig.flushMs, queueSize: config.queueSize, ...config.replay };
    return new Lane(createSink(sinkConfig, deps), spools[i]!, options, deps.onDelivery, logger);
  });
  // Not replayed: the sink they were for is gone, and guessing another destination could double-bill.
  const known = new Set(config.sinks.map((s) => s.name));
  for (const dir of (await readdir(config.spoolDir)).filter((d) => !known.has(d))) {
    const left = (await readdir(join(config.spoolDir, dir)).catch(() => [] as string[])).filter((f) => f.endsWith('.ndjson'));
    if (left.length > 0) logger.warn({ spool: join(config.spoolDir, dir), segments: left.length }, 'usage spool of a sink no longer configured; not replayed');
  }

  return {
    record(event: UsageEvent): void {
      let line: string;
      try {
        line = JSON.stringify(event);
      } catch (err) {
        logger.error({ err: (err as Error).message, id: event.id }, 'usage event cannot be serialised; dropped');
        return;
      }
      for (const lane of lanes) lane.push(line);
    },
    async flush(): Promise<void> {
      const deadline = Date.now() + config.flushTimeoutMs;
      await Promise.all(lanes.map((lane) => lane.flush(deadline)));
    },
    async close(): Promise<void> {
      const deadline = Date.now() + config.flushTimeoutMs;
      await Promise.all(lanes.map((lane) => lane.close(deadline)));
    },
  };
}
