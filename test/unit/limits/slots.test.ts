/**
 * A replica's concurrency slots (src/limits/slots.ts): held = in use + spare
 * (reserved by local credit) + lent (spare handed to a batch in flight). The
 * numbers a batch sends, and what its answer or failure does to them.
 */
import { describe, expect, it } from 'vitest';
import { SlotBook } from '../../../src/limits/slots.js';
import { LEASE_TTL_MS } from '../../../src/limits/types.js';

function book() {
  const queued: string[] = [];
  const slots = new SlotBook((key) => queued.push(key));
  return { slots, queued, state: (key = 'k') => ({ ...slots.state(key) }) };
}

describe('SlotBook', () => {
  it('spare slots are lent to a batch that needs the hash, at most its demand, and not admitted on locally meanwhile', () => {
    const { slots, state } = book();
    slots.reserve('k', 6);
    expect(slots.outgoing('k', 4, 30_000)).toEqual({ key: 'k', released: 0, exact: -1, ttlMs: 30_000, lent: 4 });
    expect(state()).toMatchObject({ spare: 2, lent: 4, credited: 6, batches: 1 });
    expect(slots.spare('k')).toBe(2);
    expect(slots.held('k')).toBe(6);
    // The batch admitted 5: 4 on lent slots, 1 new; it gave none back.
    slots.answered('k', 4, 0, 5);
    expect(state()).toMatchObject({ inUse: 5, spare: 2, lent: 0, batches: 0 });
    expect(slots.held('k')).toBe(7);
  });

  it('lent slots the batch did not take come back as spare; spare beyond what credit has left goes back as a release', () => {
    const { slots, state, queued } = book();
    slots.reserve('k', 4);
    slots.outgoing('k', 4, 30_000);
    slots.unreserve('k', 3); // the credit gave back 3 while the slots were lent
    slots.answered('k', 4, 4, 0);
    expect(state()).toMatchObject({ spare: 1, credited: 1, released: 3 });
    expect(queued).toEqual(['k']);
  });

  it('a local admission takes a spare slot; its release frees it', () => {
    const { slots, state, queued } = book();
    slots.reserve('k', 2);
    slots.take('k');
    expect(state()).toMatchObject({ inUse: 1, spare: 1, credited: 1 });
    slots.release('k');
    expect(state()).toMatchObject({ inUse: 0, released: 1 });
    expect(queued).toEqual(['k']);
    expect(slots.outgoing('k', 0, 0)).toEqual({ key: 'k', released: 1, exact: -1, ttlMs: LEASE_TTL_MS, lent: 0 });
  });

  it('after a failed batch its lent slots are spare again, and the exact count goes with the next batch, not at once', () => {
    const { slots, state, queued } = book();
    slots.reserve('k', 3);
    slots.take('k');
    slots.outgoing('k', 2, 30_000);
    slots.failed('k', 2);
    expect(state()).toMatchObject({ inUse: 1, spare: 2, lent: 0, sync: true, batches: 0 });
    expect(queued).toEqual([]); // Redis may still be down: no batch of its own
    expect(slots.outgoing('k', 0, 30_000)).toMatchObject({ exact: 3, lent: 0 });
    expect(state().sync).toBe(false);
  });

  it('the exact count waits while a batch is in flight (its grants are not known yet); a renewal sends it after', () => {
    const { slots, queued } = book();
    slots.outgoing('k', 1, 30_000);
    slots.renew('k', 30_000);
    expect(queued).toEqual([]);
    expect(slots.outgoing('k', 0, 30_000).exact).toBe(-1);
    slots.answered('k', 0, 0, 1);
    expect(queued).toEqual([]);
    slots.answered('k', 0, 0, 0);
    expect(queued).toEqual(['k']);
    expect(slots.outgoing('k', 0, 30_000).exact).toBe(1);
  });

  it('an idle hash is forgotten', () => {
    const { slots } = book();
    slots.outgoing('k', 1, 30_000);
    slots.answered('k', 0, 0, 1);
    slots.release('k');
    slots.outgoing('k', 0, 30_000);
    slots.answered('k', 0, 0, 0);
    expect(slots.held('k')).toBe(0);
    expect(slots.state('k')).toEqual({ inUse: 0, spare: 0, lent: 0, credited: 0, released: 0, batches: 0, sync: false, ttlMs: 0 });
  });
});
