/**
 * What a failed limit-store call says about the store (src/limits/failover-store.ts):
 * only a connection-level failure means the store is down (store_up,
 * /readyz, the outage log); Redis answering with an error does not.
 */
import { ReplyError } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { failureKind } from '../../../src/limits/failover-store.js';
import { LimitCheckError } from '../../../src/limits/types.js';

describe('failureKind', () => {
  it.each([
    [new Error('Command timed out'), 'timeout'],
    [new Error('Command timed out: the batch reached Redis after its deadline and did nothing'), 'timeout'],
    [new Error('Connection is closed.'), 'down'],
    [new Error("Stream isn't writeable and enableOfflineQueue options is false"), 'down'],
    [new ReplyError('LOADING Redis is loading the dataset in memory'), 'down'],
    [new ReplyError('BUSY Redis is busy running a script.'), 'down'],
    [new ReplyError("OOM command not allowed when used memory > 'maxmemory'."), 'down'],
    [new ReplyError('CLUSTERDOWN The cluster is down'), 'down'],
    [new ReplyError('ERR user_script:1: Script attempted to access nonexistent global variable'), 'script'],
    [new ReplyError('WRONGTYPE Operation against a key holding the wrong kind of value'), 'script'],
    [new LimitCheckError('invalid_limits', 'bucket b'), 'invalid_limits'],
    [new LimitCheckError('unreadable_key', 'tg:{a}:cr'), 'unreadable_key'],
  ])('%s → %s', (err, kind) => {
    expect(failureKind(err)).toBe(kind);
  });
});
