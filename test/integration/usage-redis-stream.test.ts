/**
 * The redis-stream sink's connection to one server, against real
 * redis-servers: AUTH (password, ACL user) and SELECT from the URL, a wrong
 * password failing batches (nothing added), the first connection waited for,
 * a lost Redis failing batches at once and used again when back, and a
 * server that never answers failing the batch within timeoutMs.
 */
import { createServer, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.js';
import { createRedisStreamSink } from '../../src/usage/sinks/redis-stream.js';
import type { UsageSink } from '../../src/usage/types.js';
import { freePort, RedisServer } from '../helpers/redis.js';

const logger = createLogger('silent');
const PASSWORD = 'xadd-test-password';
const secured = new RedisServer(null, ['--requirepass', PASSWORD, '--user', 'billing', 'on', '>billing-secret', '~*', '&*', '+@all']);

beforeAll(async () => {
  await secured.start();
});
afterAll(async () => {
  await secured.kill();
});

function sink(url: string, stream: string, timeoutMs = 1000): UsageSink {
  return createRedisStreamSink({ name: 'stream', target: url, stream, maxLen: 1000, timeoutMs }, logger);
}

async function entries(db: number, stream: string): Promise<string[]> {
  const client = new Redis(secured.port, '127.0.0.1', { password: PASSWORD, db });
  try {
    return (await client.xrange(stream, '-', '+')).map(([, f]) => f[1]!);
  } finally {
    client.disconnect();
  }
}

describe('redis-stream sink, one server', () => {
  it.each([
    ['a password', `redis://:${PASSWORD}@127.0.0.1`, 0],
    ['an ACL user and a database', 'redis://billing:billing-secret@127.0.0.1', 3],
  ])('AUTH with %s from the URL, SELECT from its path', async (_name, base, db) => {
    const s = sink(`${base}:${secured.port}/${db}`, `stream:auth-${db}`);
    try {
      await s.send(['{"n":1}', '{"n":2,"t":"é💡"}']);
      await s.send(['{"n":3}']);
      await s.send(['{"n":4}', '{"n":5,"t":"ß中💡"}', '{"n":6}']);
      expect(await entries(db, `stream:auth-${db}`)).toEqual(['{"n":1}', '{"n":2,"t":"é💡"}', '{"n":3}', '{"n":4}', '{"n":5,"t":"ß中💡"}', '{"n":6}']);
    } finally {
      await s.close();
    }
  });

  it('into a stream whose name is not ASCII, 900 lines of all sizes in one batch: the stream holds exactly them, in order', async () => {
    const stream = 'stream:ünïcode-流';
    const s = sink(`redis://:${PASSWORD}@127.0.0.1:${secured.port}/1`, stream);
    try {
      const lines = Array.from({ length: 900 }, (_, i) => JSON.stringify({ n: i, t: ['', 'é', '💡', 'x'.repeat(i * 3)][i % 4] })); // under maxLen (1000): none trimmed
      await s.send(lines);
      expect(await entries(1, stream)).toEqual(lines);
    } finally {
      await s.close();
    }
  });

  it('a wrong password: batches fail, nothing is added', async () => {
    const s = sink(`redis://:wrong@127.0.0.1:${secured.port}`, 'stream:wrong', 500);
    try {
      await expect(s.send(['{"n":1}'])).rejects.toThrow();
      await expect(s.send(['{"n":2}'])).rejects.toThrow();
      await expect(s.send(['{"n":3}', '{"n":4,"t":"é"}'])).rejects.toThrow();
      expect(await entries(0, 'stream:wrong')).toEqual([]);
    } finally {
      await s.close();
    }
  });

  it('the first connection is waited for (up to timeoutMs); later, a lost Redis fails batches at once and is used again when back', async () => {
    const redis = new RedisServer();
    redis.port = await freePort();
    const s = sink(redis.url, 'stream:late', 3000);
    try {
      const first = s.send(['{"n":1}']);
      await new Promise((r) => setTimeout(r, 300));
      await redis.start();
      await first;
      await redis.kill();
      const started = Date.now();
      await expect(s.send(['{"n":2}'])).rejects.toThrow();
      expect(Date.now() - started).toBeLessThan(1000);
      await redis.start();
      const until = Date.now() + 5000;
      let sent = false;
      while (!sent && Date.now() < until) {
        sent = await s.send(['{"n":3}']).then(
          () => true,
          () => new Promise<boolean>((r) => setTimeout(() => r(false), 100)),
        );
      }
      expect(sent).toBe(true);
    } finally {
      await s.close();
      await redis.kill();
    }
  });

  it('a server that never answers: the batch fails within timeoutMs', async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => {
      sockets.add(socket);
      socket.resume(); // reads everything, answers nothing
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as { port: number }).port;
    const s = sink(`redis://127.0.0.1:${port}`, 'stream:silent', 300);
    try {
      const started = Date.now();
      await expect(s.send(['{"n":1}'])).rejects.toThrow();
      expect(Date.now() - started).toBeLessThan(2000);
      const again = Date.now();
      await expect(s.send(['{"n":2}', '{"n":3}'])).rejects.toThrow();
      expect(Date.now() - again).toBeLessThan(2000);
    } finally {
      await s.close();
      for (const socket of sockets) socket.destroy();
      await new Promise((r) => silent.close(r));
    }
  });
});
