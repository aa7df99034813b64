/**
 * Redis's clock as this replica can tell it, so that a batch can carry its
 * deadline in Redis time (./limit.lua does nothing past it): every reply
 * says when Redis ran the script; Redis time now is at least that plus the
 * local time passed since the reply arrived. Replicas' and Redis's clocks
 * may differ; only Redis's own counts.
 *
 * Each reply gives a lower bound (the reply took time to arrive and to be
 * read), so the best estimate is the highest offset seen; it is let down by
 * 1 ms per second so that a Redis clock stepped back is followed.
 * In Redis Cluster each node has its own clock: one estimate per group.
 */
export class RedisClock {
  private readonly offsets = new Map<string, { offsetMs: number; atMs: number }>();

  /** `local()`: a monotonic local clock in ms (injected in tests). */
  constructor(private readonly local: () => number = () => performance.now()) {}

  /** `redisNowMs`: Redis's time in a reply from `group` that arrived just now. */
  seen(group: string, redisNowMs: number): void {
    const atMs = this.local();
    const sample = redisNowMs - atMs;
    const last = this.offsets.get(group);
    if (last === undefined) {
      // Tags come and go with tenants in a Cluster: keep the map bounded.
      if (this.offsets.size >= 10_000) this.offsets.clear();
      this.offsets.set(group, { offsetMs: sample, atMs });
      return;
    }
    last.offsetMs = Math.max(sample, last.offsetMs - (atMs - last.atMs) / 1000);
    last.atMs = atMs;
  }

  /** Redis's time now for `group` (never later than the real one, give or take a ms), or 0 before its first reply. */
  now(group: string): number {
    const o = this.offsets.get(group);
    return o === undefined ? 0 : Math.floor(this.local() + o.offsetMs);
  }
}
