/**
 * The registry's epoch marker, `<p>registry:epoch`: how a process tells a
 * registry Redis that came back empty (restarted without persistence,
 * FLUSHALL) from one whose tenants and keys were really removed.
 *
 * The first write to a registry sets the marker (a random value, SET NX); a
 * registry holding records from before the marker existed gets one at start.
 * A process that has seen a marker and then finds it missing — or replaced by
 * a value it never saw, written by a process that did not know — takes the
 * registry as emptied. It stays so until the marker comes back with the value
 * it knew (the Redis was restored from its own backup) or with a value an
 * operator confirmed (`confirmed:…`, written by POST /admin/registry/confirm).
 *
 * This class is only the state; the registry reads and writes the key.
 */
export const CONFIRMED_PREFIX = 'confirmed:';

/**
 * What one reading changed:
 * - emptied: the marker this process knew is gone;
 * - restored: emptied before, now back (same value, or confirmed);
 * - replaced: trusted, and an operator confirmed a new registry meanwhile (caches must go);
 * - reinitialised: emptied, and a process that did not know wrote a new marker (still emptied).
 */
export type EpochChange = 'emptied' | 'restored' | 'replaced' | 'reinitialised' | null;

export class EpochMarker {
  /** The marker value this process trusts, or null before it has seen one. */
  epoch: string | null = null;
  emptied = false;
  /** A new unconfirmed marker seen while emptied, so it is reported once. */
  private reinitialisedSeen: string | null = null;

  observe(value: string | null): EpochChange {
    if (this.emptied) {
      if (value !== null && (value === this.epoch || value.startsWith(CONFIRMED_PREFIX))) {
        this.emptied = false;
        this.epoch = value;
        this.reinitialisedSeen = null;
        return 'restored';
      }
      if (value !== null && value !== this.reinitialisedSeen) {
        this.reinitialisedSeen = value;
        return 'reinitialised';
      }
      return null;
    }
    if (value === this.epoch) return null;
    if (this.epoch === null) {
      this.epoch = value;
      return null;
    }
    if (value !== null && value.startsWith(CONFIRMED_PREFIX)) {
      this.epoch = value;
      return 'replaced';
    }
    this.emptied = true;
    if (value !== null) this.reinitialisedSeen = value;
    return 'emptied';
  }

  /** An operator confirmed the registry as it stands, under this new value. */
  confirmed(value: string): void {
    this.epoch = value;
    this.emptied = false;
    this.reinitialisedSeen = null;
  }
}
