/**
 * This replica's concurrency slots, per tenant hash (./limit.lua counts them
 * per replica: one field each). Redis holds `held` for this replica:
 *
 *   held = inUse (admitted, not released) + spare (reserved by local credit,
 *          not used yet) + lent (spare handed to batches in flight)
 *
 * Spare slots are lent to a batch whose runs need the hash, so this
 * replica's unused credit never refuses its own requests: the script lets
 * them take lent slots first and answers what it did not take (./wire.ts).
 * While lent, a slot cannot also be admitted on locally.
 */
import { LEASE_TTL_MS } from './types.js';
import type { WireSlots } from './wire.js';

export interface SlotState {
  inUse: number;
  spare: number;
  lent: number;
  /** What the local credits of this hash have left (./credit.ts): spare beyond it goes back. */
  credited: number;
  /** Freed since the last batch, not sent yet. */
  released: number;
  /** Batches in flight with this hash. */
  batches: number;
  /** Send the exact count once no batch is in flight (a renewal, or after a failed batch). */
  sync: boolean;
  /** 0: not known yet (LEASE_TTL_MS until a check or renewal names it). */
  ttlMs: number;
}

export class SlotBook {
  private readonly byKey = new Map<string, SlotState>();

  /** `queue(key)`: send this hash with the next batch (releases, a renewal). */
  constructor(private readonly queue: (key: string) => void) {}

  state(key: string): SlotState {
    let s = this.byKey.get(key);
    if (s === undefined) this.byKey.set(key, (s = { inUse: 0, spare: 0, lent: 0, credited: 0, released: 0, batches: 0, sync: false, ttlMs: 0 }));
    return s;
  }

  /** Without creating state (the local-credit hot path). */
  spare(key: string): number {
    return this.byKey.get(key)?.spare ?? 0;
  }

  held(key: string): number {
    const s = this.byKey.get(key);
    return s === undefined ? 0 : s.inUse + s.spare + s.lent;
  }

  /** A request ended. */
  release(key: string, n = 1): void {
    const s = this.state(key);
    s.inUse = Math.max(0, s.inUse - n);
    s.released += n;
    this.queue(key);
  }

  /** A request admitted on local credit takes a spare slot. */
  take(key: string): void {
    const s = this.state(key);
    s.spare--;
    s.credited--;
    s.inUse++;
  }

  /** Credit granted `n` requests' worth: as many spare slots. */
  reserve(key: string, n: number): void {
    const s = this.state(key);
    s.spare += n;
    s.credited += n;
  }

  /** Credit gave back `n` requests' worth: spare slots beyond what credit has left go back too. */
  unreserve(key: string, n: number): void {
    const s = this.state(key);
    s.credited = Math.max(0, s.credited - n);
    this.trim(key, s);
  }

  renew(key: string, ttlMs: number): void {
    const s = this.state(key);
    s.ttlMs = ttlMs;
    s.sync = true;
    if (s.batches === 0) this.queue(key);
  }

  /**
   * This hash goes with a batch whose runs need `demand` slots of it: the
   * record to send. The exact count is safe
   * to send only when no earlier batch's outcome is still unknown here.
   */
  outgoing(key: string, demand: number, ttlMs: number): WireSlots {
    const s = this.state(key);
    s.ttlMs = Math.max(s.ttlMs, ttlMs);
    const lent = Math.min(s.spare, demand);
    s.spare -= lent;
    s.lent += lent;
    const exact = s.sync && s.batches === 0 ? s.inUse + s.spare + s.lent : -1;
    if (exact >= 0) s.sync = false;
    const released = s.released;
    s.released = 0;
    s.batches++;
    return { key, released, exact, ttlMs: s.ttlMs || LEASE_TTL_MS, lent };
  }

  /** The batch answered: `admitted` requests of it now hold slots of this hash, the runs left `lentBack` of the `lent`. */
  answered(key: string, lent: number, lentBack: number, admitted: number): void {
    const s = this.state(key);
    s.lent -= lent;
    s.spare += lentBack;
    s.inUse += admitted;
    this.settled(key, s);
  }

  /**
   * The batch failed: Redis may or may not have run it, so the exact count
   * goes with the next batch or renewal (not sooner: Redis may still be
   * down); if none comes, this replica's field expires by itself.
   */
  failed(key: string, lent: number): void {
    const s = this.state(key);
    s.lent -= lent;
    s.spare += lent;
    s.sync = true;
    s.batches--;
    this.trim(key, s);
  }

  private settled(key: string, s: SlotState): void {
    s.batches--;
    this.trim(key, s);
    if (s.batches > 0) return;
    if (s.sync) this.queue(key);
    // Idle: forgotten here, and its field is gone from Redis too.
    else if (s.inUse + s.spare + s.lent === 0 && s.released === 0 && s.credited === 0) this.byKey.delete(key);
  }

  private trim(key: string, s: SlotState): void {
    const excess = s.spare - s.credited;
    if (excess <= 0) return;
    s.spare -= excess;
    s.released += excess;
    this.queue(key);
  }
}
