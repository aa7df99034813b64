/**
 * Groups what the Redis store sends by event-loop turn: everything one turn
 * adds for one group goes out together when the turn ends (setImmediate),
 * as ONE script call. Under load that is one write and one script call for
 * many requests; alone, a check waits for nothing but the end of its turn.
 *
 * Work that is not waited on (releases, refunds) is `deferred`: it rides
 * with the next turn's checks of its group, or goes alone after `holdMs`.
 *
 * In Redis Cluster a script's keys must share a slot, so a group is one
 * `{tenant}` hash tag (every key of a tenant carries it); a single Redis
 * takes everything in one group.
 */

/** The `{…}` part Redis Cluster hashes (the whole key when there is none, or it is empty). */
export function hashTag(key: string): string {
  const open = key.indexOf('{');
  if (open === -1) return key;
  const close = key.indexOf('}', open + 1);
  return close <= open + 1 ? key : key.slice(open + 1, close);
}

export class TurnBatcher<G> {
  /** Per tag: its group, and whether something in it is waited on (then it goes when the turn ends). */
  private readonly groups = new Map<string, { readonly group: G; waited: boolean }>();
  private flushScheduled = false;
  private holdTimer: NodeJS.Timeout | null = null;

  /**
   * `create()`: an empty group. `send(group, tag)`: send what it holds.
   * `cluster`: one group per hash tag, else one group.
   */
  constructor(
    private readonly create: () => G,
    private readonly send: (group: G, tag: string) => void,
    private readonly cluster: boolean,
    private readonly holdMs: number,
  ) {}

  /** The group `key` goes out with; `waited`: something waits for this turn's answer. */
  join(key: string, waited: boolean): G {
    const tag = this.cluster ? hashTag(key) : '';
    let entry = this.groups.get(tag);
    if (entry === undefined) this.groups.set(tag, (entry = { group: this.create(), waited: false }));
    if (waited) {
      entry.waited = true;
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(this.flushTurn);
      }
    } else if (this.holdTimer === null) {
      this.holdTimer = setTimeout(this.flushAll, this.holdMs);
      this.holdTimer.unref();
    }
    return entry.group;
  }

  /** Sends every group now (the hold timer, or the store closing). */
  readonly flushAll = (): void => {
    if (this.holdTimer !== null) clearTimeout(this.holdTimer);
    this.holdTimer = null;
    const entries = [...this.groups];
    this.groups.clear();
    for (const [tag, { group }] of entries) this.send(group, tag);
  };

  private readonly flushTurn = (): void => {
    this.flushScheduled = false;
    const due: [string, G][] = [];
    for (const [tag, entry] of this.groups) {
      if (!entry.waited) continue;
      this.groups.delete(tag);
      due.push([tag, entry.group]);
    }
    for (const [tag, group] of due) this.send(group, tag);
  };
}
