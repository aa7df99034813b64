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
  private readonly groups = new Map<string, G>();
  /** Groups with something waited on: they go when the turn ends. */
  private readonly urgent = new Set<string>();
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
    let group = this.groups.get(tag);
    if (group === undefined) this.groups.set(tag, (group = this.create()));
    if (waited) {
      this.urgent.add(tag);
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(this.flushTurn);
      }
    } else if (this.holdTimer === null) {
      this.holdTimer = setTimeout(this.flushAll, this.holdMs);
      this.holdTimer.unref();
    }
    return group;
  }

  /** Sends every group now (the hold timer, or the store closing). */
  readonly flushAll = (): void => {
    if (this.holdTimer !== null) clearTimeout(this.holdTimer);
    this.holdTimer = null;
    this.urgent.clear();
    const groups = [...this.groups];
    this.groups.clear();
    for (const [tag, group] of groups) this.send(group, tag);
  };

  private readonly flushTurn = (): void => {
    this.flushScheduled = false;
    const tags = [...this.urgent];
    this.urgent.clear();
    for (const tag of tags) {
      const group = this.groups.get(tag);
      if (group === undefined) continue;
      this.groups.delete(tag);
      this.send(group, tag);
    }
  };
}
