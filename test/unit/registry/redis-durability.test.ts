/**
 * Whether a Redis can keep the registry: the policy and persistence
 * classification, INFO parsing, the epoch marker's state, and the check
 * against real redis-servers — CONFIG allowed, and CONFIG renamed away (as on
 * managed Redis), where INFO answers for the policy.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkDurability, classifyPersistence, classifyPolicy, evictingMessage, parseInfo, redactTarget } from '../../../src/registry/redis-durability.js';
import { EpochMarker } from '../../../src/registry/redis-epoch.js';
import { RedisServer } from '../../helpers/redis.js';

describe('classifyPolicy', () => {
  it('noeviction is safe; volatile-* is safe (registry keys never carry a TTL); allkeys-* evicts', () => {
    expect(classifyPolicy('noeviction')).toBe('safe');
    for (const p of ['volatile-lru', 'volatile-lfu', 'volatile-random', 'volatile-ttl']) expect(classifyPolicy(p)).toBe('safe');
    for (const p of ['allkeys-lru', 'allkeys-lfu', 'allkeys-random', 'ALLKEYS-LRU ']) expect(classifyPolicy(p)).toBe('evicting');
  });

  it('a name it does not know is unknown (warned about), neither safe nor refused', () => {
    expect(classifyPolicy('')).toBe('unknown');
    expect(classifyPolicy('something-new')).toBe('unknown');
  });
});

describe('classifyPersistence', () => {
  it('from CONFIG: appendonly and save', () => {
    expect(classifyPersistence('yes', '', null)).toBe('aof');
    expect(classifyPersistence('yes', '3600 1', null)).toBe('aof+rdb');
    expect(classifyPersistence('no', '3600 1 300 100', null)).toBe('rdb');
    expect(classifyPersistence('no', '', null)).toBe('none');
  });

  it('without CONFIG: INFO tells AOF only, so AOF off is unknown (snapshots unseen), never "none"', () => {
    expect(classifyPersistence(null, null, '1')).toBe('aof');
    expect(classifyPersistence(null, null, '0')).toBe('unknown');
    expect(classifyPersistence(null, null, null)).toBe('unknown');
  });
});

describe('parseInfo', () => {
  it('reads field:value lines, skipping section headers and blank lines', () => {
    const info = parseInfo('# Memory\r\nused_memory:1024\r\nmaxmemory_policy:allkeys-lru\r\n\r\n# Persistence\r\naof_enabled:0\r\n');
    expect(info.get('maxmemory_policy')).toBe('allkeys-lru');
    expect(info.get('aof_enabled')).toBe('0');
    expect(info.has('# Memory')).toBe(false);
  });
});

describe('messages', () => {
  it('the refusal names the setting and the fix; credentials never appear', () => {
    const target = redactTarget('redis://user:s3cret@registry.internal:6380/0');
    expect(target).toBe('redis://registry.internal:6380/0');
    const msg = evictingMessage(target, 'allkeys-lru');
    expect(msg).toMatch(/maxmemory-policy allkeys-lru/);
    expect(msg).toMatch(/noeviction/);
    expect(msg).not.toMatch(/s3cret/);
    expect(redactTarget(['rediss://:pw@a:1', 'rediss://:pw@b:2'])).toBe('rediss://a:1,rediss://b:2');
  });
});

describe('EpochMarker', () => {
  it('a registry never marked is not emptied; the first marker seen is adopted', () => {
    const m = new EpochMarker();
    expect(m.observe(null)).toBeNull();
    expect(m.emptied).toBe(false);
    expect(m.observe('e1')).toBeNull();
    expect(m.epoch).toBe('e1');
    expect(m.observe('e1')).toBeNull();
  });

  it('the marker it knew gone: emptied, until it comes back with the same value (a restore of that Redis)', () => {
    const m = new EpochMarker();
    m.observe('e1');
    expect(m.observe(null)).toBe('emptied');
    expect(m.emptied).toBe(true);
    expect(m.observe(null)).toBeNull();
    expect(m.observe('e1')).toBe('restored');
    expect(m.emptied).toBe(false);
  });

  it('a new unconfirmed marker (written by a process that did not know) keeps it emptied, reported once', () => {
    const m = new EpochMarker();
    m.observe('e1');
    m.observe(null);
    expect(m.observe('e2')).toBe('reinitialised');
    expect(m.observe('e2')).toBeNull();
    expect(m.emptied).toBe(true);
    expect(m.observe('confirmed:e3')).toBe('restored');
    expect(m.epoch).toBe('confirmed:e3');
  });

  it('a different marker between two readings (emptied and re-written unseen) is emptied; a confirmed one replaces', () => {
    const m = new EpochMarker();
    m.observe('e1');
    expect(m.observe('e2')).toBe('emptied');
    expect(m.observe('e2')).toBeNull();
    const n = new EpochMarker();
    n.observe('e1');
    expect(n.observe('confirmed:x')).toBe('replaced');
    expect(n.emptied).toBe(false);
  });

  it('confirmed() clears the emptied state under the new value', () => {
    const m = new EpochMarker();
    m.observe('e1');
    m.observe(null);
    m.confirmed('confirmed:y');
    expect(m.emptied).toBe(false);
    expect(m.observe('confirmed:y')).toBeNull();
  });
});

describe('checkDurability against a real redis-server', () => {
  // Its own folder: the test turns AOF on, and redis-server writes the file in its working directory.
  const plain = new RedisServer(null, ['--maxmemory-policy', 'allkeys-lfu', '--dir', mkdtempSync(join(tmpdir(), 'tg-dur-'))]);
  // CONFIG renamed away, as managed Redis does: INFO must answer for the policy.
  const managed = new RedisServer(null, ['--rename-command', 'CONFIG', '""', '--maxmemory-policy', 'volatile-ttl']);
  beforeAll(async () => {
    await plain.start();
    await managed.start();
  });
  afterAll(async () => {
    await plain.kill();
    await managed.kill();
  });

  it('reads policy and persistence with CONFIG GET', async () => {
    const c = new Redis(plain.url);
    try {
      expect(await checkDurability(c)).toEqual({ policy: 'allkeys-lfu', verdict: 'evicting', persistence: 'none' });
      await c.config('SET', 'appendonly', 'yes');
      expect((await checkDurability(c)).persistence).toBe('aof');
    } finally {
      c.disconnect();
    }
  });

  it('falls back to INFO where CONFIG is refused: the policy is still read, persistence is unknown', async () => {
    const c = new Redis(managed.url);
    try {
      await expect(c.config('GET', 'maxmemory-policy')).rejects.toThrow(/unknown command/i);
      expect(await checkDurability(c)).toEqual({ policy: 'volatile-ttl', verdict: 'safe', persistence: 'unknown' });
    } finally {
      c.disconnect();
    }
  });

  it('a Redis that cannot answer makes the check throw (not a false "CONFIG refused")', async () => {
    const c = new Redis(plain.url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
    await expect(checkDurability(c)).rejects.toThrow();
    c.disconnect();
  });
});
