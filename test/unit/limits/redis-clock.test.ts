/** Redis's clock as a replica tells it (src/limits/redis-clock.ts), on an injected local clock. */
import { describe, expect, it } from 'vitest';
import { RedisClock } from '../../../src/limits/redis-clock.js';

describe('RedisClock', () => {
  it('knows nothing before a reply (0: no deadline), then Redis time at the reply plus local time since', () => {
    let local = 1000;
    const clock = new RedisClock(() => local);
    expect(clock.now('')).toBe(0);
    clock.seen('', 5_000_000);
    local += 40;
    expect(clock.now('')).toBe(5_000_040);
  });

  it('keeps the highest offset: a reply read late (a busy event loop) does not pull the estimate back', () => {
    let local = 0;
    const clock = new RedisClock(() => local);
    clock.seen('', 1_000_000);
    local = 100;
    clock.seen('', 1_000_070); // read 30 ms after Redis ran it
    expect(clock.now('')).toBe(1_000_099); // 1_000_100, less 0.1 ms of letting down
  });

  it('follows a Redis clock stepped back, 1 ms per second', () => {
    let local = 0;
    const clock = new RedisClock(() => local);
    clock.seen('', 1_000_000);
    local = 10_000;
    clock.seen('', 1_000_000); // Redis is 10 s behind the estimate
    expect(clock.now('')).toBe(1_000_000 + 10_000 - 10);
  });

  it('one estimate per group (a Cluster node has its own clock)', () => {
    const clock = new RedisClock(() => 0);
    clock.seen('a', 1_000);
    clock.seen('b', 9_000);
    expect([clock.now('a'), clock.now('b'), clock.now('c')]).toEqual([1_000, 9_000, 0]);
  });
});
