/**
 * The Redis store's batcher (src/limits/batcher.ts): what one event-loop
 * turn adds goes out together, one group per Cluster hash tag; work nobody
 * waits on rides with the next turn's checks or goes alone after the hold.
 * Timers are faked: no test here waits real time.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { hashTag, TurnBatcher } from '../../../src/limits/batcher.js';

interface Group {
  items: string[];
}

function batcher(cluster: boolean) {
  const sent: { tag: string; items: string[] }[] = [];
  const b = new TurnBatcher<Group>(() => ({ items: [] }), (group, tag) => sent.push({ tag, items: group.items }), cluster, 10);
  const add = (key: string, waited: boolean) => b.join(key, waited).items.push(`${waited ? 'check' : 'release'} ${key}`);
  return { b, sent, add };
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setImmediate', 'setTimeout', 'clearTimeout'] });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('hashTag: the part of a key Redis Cluster hashes', () => {
  it('is the first {…}, or the whole key when there is none or it is empty', () => {
    expect(hashTag('tg:{acme}:b:t')).toBe('acme');
    expect(hashTag('tg:{acme}:q:d:20260601')).toBe(hashTag('tg:{acme}:cr'));
    expect(hashTag('tg:{}:x')).toBe('tg:{}:x');
    expect(hashTag('plain')).toBe('plain');
    expect(hashTag('a{b}{c}')).toBe('b');
  });
});

describe('TurnBatcher', () => {
  it("a turn's checks go out together when the turn ends: one group on a single Redis", () => {
    const { sent, add } = batcher(false);
    add('tg:{a}:b', true);
    add('tg:{b}:b', true);
    add('tg:{a}:q', true);
    expect(sent).toEqual([]);
    vi.runOnlyPendingTimers();
    expect(sent).toEqual([{ tag: '', items: ['check tg:{a}:b', 'check tg:{b}:b', 'check tg:{a}:q'] }]);
  });

  it('in Cluster mode, one group per hash tag (a script names keys of one slot)', () => {
    const { sent, add } = batcher(true);
    add('tg:{a}:b', true);
    add('tg:{b}:b', true);
    add('tg:{a}:q', true);
    vi.runOnlyPendingTimers();
    expect(sent).toEqual([
      { tag: 'a', items: ['check tg:{a}:b', 'check tg:{a}:q'] },
      { tag: 'b', items: ['check tg:{b}:b'] },
    ]);
  });

  it('a release rides with the next checks of its group, and does not hold them up', () => {
    const { sent, add } = batcher(true);
    add('tg:{a}:cr', false);
    add('tg:{b}:cr', false);
    add('tg:{a}:b', true);
    vi.advanceTimersToNextTimer(); // the end of the turn (setImmediate)
    expect(sent).toEqual([{ tag: 'a', items: ['release tg:{a}:cr', 'check tg:{a}:b'] }]);
    // The other tenant's release waits for the hold, then goes alone.
    vi.advanceTimersByTime(10);
    expect(sent.slice(1)).toEqual([{ tag: 'b', items: ['release tg:{b}:cr'] }]);
  });

  it('flushAll sends everything now (the store closing)', () => {
    const { b, sent, add } = batcher(false);
    add('tg:{a}:cr', false);
    add('tg:{a}:b', true);
    b.flushAll();
    expect(sent).toEqual([{ tag: '', items: ['release tg:{a}:cr', 'check tg:{a}:b'] }]);
    vi.runAllTimers();
    expect(sent).toHaveLength(1);
  });

  it('what a send adds (a check sent again) goes with the next turn', () => {
    const sent: string[][] = [];
    let again = true;
    const b: TurnBatcher<Group> = new TurnBatcher<Group>(
      () => ({ items: [] }),
      (group) => {
        sent.push(group.items);
        if (again) {
          again = false;
          b.join('k', true).items.push('again');
        }
      },
      false,
      10,
    );
    b.join('k', true).items.push('first');
    vi.advanceTimersToNextTimer();
    expect(sent).toEqual([['first']]);
    vi.advanceTimersToNextTimer();
    expect(sent).toEqual([['first'], ['again']]);
  });
});
