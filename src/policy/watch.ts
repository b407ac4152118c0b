/**
 * `serve --watch`: reload when the policy file or any file it refers to
 * changes (issue 16.8). The list comes from one function, `referencedFiles`,
 * over the loaded policy (policy.files, filled by files.ts `referencedPaths`),
 * so a new key that names a file (TLS cert/key/ca, ...) is watched as soon as
 * files.ts lists it.
 *
 * Folders are watched, not files: editors and secret managers replace a file
 * (write a temp file, rename over), which a watch on the file itself would
 * miss after the first time. Kubernetes ConfigMap/Secret volumes swap a
 * `..data` symlink in the same folder, which shows up as an event there too,
 * so any event naming `..data` also counts.
 *
 * Events are debounced (default 150 ms): an editor's several writes make one
 * reload. After each reload the watched set is recomputed from the new policy.
 * A failed reload keeps the old policy (and its watch list) and logs the errors.
 */
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import type { Policy } from './types.js';

/** Every file whose change reloads `policy`: the policy file itself and what it refers to. Absolute paths. */
export function referencedFiles(policy: Policy): string[] {
  return [...new Set([resolve(policy.source), ...policy.files])];
}

export interface WatchTarget {
  /** The policy in force now. */
  currentPolicy(): Policy;
  /** Re-reads the policy file. */
  reload(): Promise<unknown>;
}

export interface WatchOptions {
  /** Quiet time after the last event before reloading. Default 150 ms. */
  debounceMs?: number;
  /** Called after each reload the watcher triggered (tests, logs). */
  onReload?(files: readonly string[]): void;
}

export class PolicyWatcher {
  private readonly watchers = new Map<string, FSWatcher>();
  /** folder → names in it that matter */
  private names = new Map<string, Set<string>>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly debounceMs: number;

  constructor(
    private readonly target: WatchTarget,
    private readonly opts: WatchOptions = {},
  ) {
    this.debounceMs = opts.debounceMs ?? 150;
    this.arm();
  }

  /** Files watched now. */
  get files(): string[] {
    const out: string[] = [];
    for (const [dir, names] of this.names) for (const n of names) out.push(resolve(dir, n));
    return out;
  }

  private arm(): void {
    if (this.closed) return;
    const next = new Map<string, Set<string>>();
    for (const f of referencedFiles(this.target.currentPolicy())) {
      const dir = dirname(f);
      let set = next.get(dir);
      if (!set) next.set(dir, (set = new Set()));
      set.add(basename(f));
    }
    this.names = next;
    for (const [dir, w] of this.watchers) {
      if (!next.has(dir)) {
        w.close();
        this.watchers.delete(dir);
      }
    }
    for (const dir of next.keys()) {
      if (this.watchers.has(dir)) continue;
      try {
        const w = watch(dir, (_event, changed) => this.onEvent(dir, changed));
        w.on('error', () => undefined);
        w.unref();
        this.watchers.set(dir, w);
      } catch {
        // A folder that does not exist (yet): the policy's own reload reports the missing file.
      }
    }
  }

  private onEvent(dir: string, changed: string | Buffer | null): void {
    const names = this.names.get(dir);
    if (!names) return;
    const name = changed === null ? null : String(changed);
    if (name !== null && !names.has(name) && name !== '..data') return;
    clearTimeout(this.timer);
    this.timer = setTimeout(this.fire, this.debounceMs);
    this.timer.unref();
  }

  private readonly fire = (): void => {
    this.timer = undefined;
    void this.target.reload().finally(() => {
      this.arm();
      this.opts.onReload?.(this.files);
    });
  };

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }
}
