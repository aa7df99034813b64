/**
 * The registry without Redis: every record in memory, persisted to one local
 * JSON state file on each change (write to a temp file, fsync, rename over the
 * old one, fsync the directory), so a crash leaves either the old file or the
 * new one, never half of one, and a restart loses nothing acknowledged. A
 * change is applied in memory only once it is on disk. One process per file.
 *
 * Invalidations are local: there is no other replica to tell.
 */
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { sameIdButCase } from './tenant-ids.js';
import type { Invalidation, InvalidationHandlers, KeyRecord, Registry, TenantRecord } from './types.js';

interface StateFile {
  version: 1;
  tenants: TenantRecord[];
  keys: KeyRecord[];
}

export class FileRegistry implements Registry {
  readonly kind = 'file';
  private tenants = new Map<string, TenantRecord>();
  private keys = new Map<string, KeyRecord>();
  private handlers: InvalidationHandlers | null = null;
  /** Writes are serialised: each waits for the one before it. */
  private chain: Promise<unknown> = Promise.resolve();

  private constructor(readonly path: string) {}

  /** Opens (or starts) the state file; a file that is not valid state is an error, never silently replaced. */
  static async open(path: string): Promise<FileRegistry> {
    const reg = new FileRegistry(path);
    let text: string | null = null;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (text !== null) {
      const state = JSON.parse(text) as StateFile;
      if (state?.version !== 1 || !Array.isArray(state.tenants) || !Array.isArray(state.keys)) throw new Error(`${path}: not a tenantgate state file`);
      for (const t of state.tenants) reg.tenants.set(t.id, Object.freeze(t));
      for (const k of state.keys) reg.keys.set(k.id, Object.freeze(k));
    }
    return reg;
  }

  async listTenants(): Promise<TenantRecord[]> {
    return [...this.tenants.values()];
  }

  async getTenant(id: string): Promise<TenantRecord | null> {
    return this.tenants.get(id) ?? null;
  }

  createTenant(t: TenantRecord): Promise<boolean> {
    return this.change(() => {
      if (this.tenants.has(t.id) || sameIdButCase(this.tenants.keys(), t.id) !== undefined) return false;
      return { tenants: withEntry(this.tenants, t), result: true };
    });
  }

  async putTenant(t: TenantRecord): Promise<void> {
    await this.change(() => ({ tenants: withEntry(this.tenants, t), result: undefined }));
  }

  getKey(id: string): KeyRecord | null {
    return this.keys.get(id) ?? null;
  }

  createKey(k: KeyRecord): Promise<boolean> {
    return this.change(() => {
      if (this.keys.has(k.id)) return false;
      return { keys: withEntry(this.keys, k), result: true };
    });
  }

  async putKey(k: KeyRecord): Promise<void> {
    await this.change(() => ({ keys: withEntry(this.keys, k), result: undefined }));
  }

  async listKeys(tenant: string): Promise<KeyRecord[]> {
    return [...this.keys.values()].filter((k) => k.tenant === tenant);
  }

  async touchKeys(times: ReadonlyMap<string, string>): Promise<void> {
    await this.change(() => {
      const keys = new Map(this.keys);
      let changed = false;
      for (const [id, at] of times) {
        const k = keys.get(id);
        if (k !== undefined) {
          keys.set(id, Object.freeze({ ...k, lastUsedAt: at }));
          changed = true;
        }
      }
      return changed ? { keys, result: undefined } : undefined;
    });
  }

  async publish(m: Invalidation): Promise<void> {
    this.handlers?.message(m);
  }

  subscribe(handlers: InvalidationHandlers): void {
    this.handlers = handlers;
    handlers.status(true);
  }

  async close(): Promise<void> {
    await this.chain.catch(() => {});
  }

  /**
   * Runs `next` after the writes before it: it returns the new maps (written,
   * then swapped in) and the result, or a bare value when nothing changes.
   */
  private change<R>(next: () => { tenants?: Map<string, TenantRecord>; keys?: Map<string, KeyRecord>; result: R } | R): Promise<R> {
    const run = this.chain.then(async () => {
      const out = next();
      if (out === null || typeof out !== 'object' || !('result' in out)) return out as R;
      const tenants = out.tenants ?? this.tenants;
      const keys = out.keys ?? this.keys;
      await this.write({ version: 1, tenants: [...tenants.values()], keys: [...keys.values()] });
      this.tenants = tenants;
      this.keys = keys;
      return out.result;
    });
    this.chain = run.catch(() => {});
    return run;
  }

  private async write(state: StateFile): Promise<void> {
    const tmp = `${this.path}.${process.pid}.tmp`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(`${JSON.stringify(state, null, 1)}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await rename(tmp, this.path);
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw err;
    }
    // The rename itself is durable only once the directory is synced.
    const dir = await open(dirname(this.path), 'r');
    try {
      await dir.sync();
    } catch {
      /* some filesystems refuse fsync on a directory; the rename is still atomic */
    } finally {
      await dir.close();
    }
  }
}

function withEntry<T extends { id: string }>(map: ReadonlyMap<string, T>, value: T): Map<string, T> {
  const next = new Map(map);
  next.set(value.id, Object.freeze(value));
  return next;
}
