/**
 * Watches the config file for changes. It watches the file's directory, not
 * the file: editors save by rename and Kubernetes swaps a ConfigMap's `..data`
 * symlink, and both would silently end a watch on the file itself. Events are
 * debounced and a reload happens only when the content actually changed.
 */
import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';

const DEBOUNCE_MS = 200;

/**
 * `loadedHash` returns the content hash of the config in force, so a change
 * made between loading and watching is not missed, and a file rewritten with
 * the same content is not a reload.
 */
export function watchConfigFile(file: string, loadedHash: () => string, onChange: () => void): () => void {
  let lastHash = loadedHash();
  let timer: NodeJS.Timeout | null = null;
  let watcher: FSWatcher | null = null;
  const check = async () => {
    timer = null;
    const text = await readFile(file, 'utf8').catch(() => null);
    if (text === null) return; // mid-rename, or deleted: keep serving, wait for the next event
    const h = contentHash(text);
    const seen = lastHash;
    lastHash = h;
    if (h === seen || h === loadedHash()) return;
    onChange();
  };
  try {
    watcher = watch(dirname(file), { persistent: false }, () => {
      if (timer !== null) clearTimeout(timer);
      timer = setTimeout(() => void check(), DEBOUNCE_MS);
    });
    watcher.on('error', () => watcher?.close());
  } catch {
    // No inotify (or too many watches): SIGHUP still reloads.
  }
  return () => {
    if (timer !== null) clearTimeout(timer);
    watcher?.close();
  };
}

export function contentHash(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
