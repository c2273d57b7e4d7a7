// The config source of a standalone proxy: a folder of YAML, watched. A burst of file events
// (an editor's save, a `cp -r`, a git checkout) is debounced into one reload, as Istio pilot
// debounces a push; a reload that does not parse keeps the last good config in place.

import { readdirSync, watch as watchFolder, type FSWatcher } from 'node:fs';
import { basename, join } from 'node:path';
import type { CompileOptions } from '../compile/context.ts';
import { configError, type ConfigError } from '../errors.ts';
import { loadConfig, type LoadedConfig } from '../load.ts';

export type FolderUpdate =
  /** The folder parsed: compiled as it is, problem conditions included (they are the user's data). */
  | ({ kind: 'loaded'; changed: boolean } & LoadedConfig)
  /** The folder did not parse (or could not be read): the last good config stays. */
  | { kind: 'rejected'; errors: ConfigError[] }
  /** The watcher failed (the folder was removed, inotify limits): retried every `retryWatchMs`. */
  | { kind: 'watch-error'; message: string };

/** The clock and timers a FolderSource runs on; injectable so debounce tests run in paused time. */
export interface SourceClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface FolderWatcher {
  close(): void;
}

/** Watches `dir` (recursively); `onChange` gets the changed path relative to `dir` when known. */
export type WatchFolder = (
  dir: string,
  onChange: (relativePath: string | undefined) => void,
  onError: (err: Error) => void,
) => FolderWatcher;

export interface FolderSourceOptions {
  dir: string;
  compile?: CompileOptions;
  /** Quiet time after the last event before reloading. */
  debounceMs?: number;
  /** A burst that never goes quiet still reloads this long after its first event. */
  maxDelayMs?: number;
  retryWatchMs?: number;
  onUpdate: (update: FolderUpdate) => void;
  clock?: SourceClock;
  watch?: WatchFolder;
  load?: (dir: string, options: CompileOptions) => Promise<LoadedConfig>;
}

export const DEFAULT_DEBOUNCE_MS = 100;

const realClock: SourceClock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/**
 * Watches a folder tree. On Linux, one fs.watch (inotify) per folder: Node 20's `recursive`
 * there is built on stat polling and misses a file replaced by rename after the first time (an
 * editor's or `kubectl cp`'s atomic save). Elsewhere fs.watch's native `recursive` is used.
 */
export const watchRecursively: WatchFolder = (dir, onChange, onError) => {
  if (process.platform === 'linux') return new FolderTreeWatcher(dir, onChange, onError);
  const watcher = watchFolder(dir, { recursive: true }, (_event, filename) =>
    onChange(filename === null ? undefined : String(filename)),
  );
  watcher.on('error', onError);
  return watcher;
};

class FolderTreeWatcher implements FolderWatcher {
  /** Watchers by folder path relative to the root ('' is the root). */
  private readonly watchers = new Map<string, FSWatcher>();
  private resyncPending = false;
  private closed = false;

  constructor(
    private readonly root: string,
    private readonly onChange: (relativePath: string | undefined) => void,
    private readonly onError: (err: Error) => void,
  ) {
    this.sync();
  }

  close(): void {
    this.closed = true;
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }

  /** Watches every folder of the tree that parseFolder reads, and stops watching removed ones. */
  private sync(): void {
    const folders = new Set<string>();
    const walk = (rel: string) => {
      folders.add(rel);
      for (const e of readdirSync(join(this.root, rel), { withFileTypes: true }))
        if (e.isDirectory() && !e.name.startsWith('.') && e.name !== 'node_modules')
          walk(rel ? join(rel, e.name) : e.name);
    };
    walk('');
    for (const [rel, w] of this.watchers)
      if (!folders.has(rel)) {
        w.close();
        this.watchers.delete(rel);
      }
    for (const rel of folders) if (!this.watchers.has(rel)) this.watch(rel);
  }

  private watch(rel: string): void {
    let watcher: FSWatcher;
    try {
      watcher = watchFolder(join(this.root, rel), (event, filename) => {
        const path = filename === null ? rel || undefined : join(rel, String(filename));
        // A rename may have added or removed a folder: look again once the burst has passed.
        if (event === 'rename') this.scheduleResync();
        this.onChange(path);
      });
    } catch (err) {
      if (rel === '') throw err;
      return; // a subfolder that went away between listing and watching
    }
    watcher.on('error', (err) => {
      if (rel === '') this.onError(err);
      else this.scheduleResync();
    });
    this.watchers.set(rel, watcher);
  }

  private scheduleResync(): void {
    if (this.resyncPending) return;
    this.resyncPending = true;
    setImmediate(() => {
      this.resyncPending = false;
      if (this.closed) return;
      try {
        this.sync();
      } catch (err) {
        this.onError(err as Error);
      }
    });
  }
}

const CONFIG_FILE = /\.(ya?ml|json)$/i;

/**
 * Events that cannot change what parseFolder reads: dot-files and dot-folders (editor swap files,
 * `.git`), node_modules, and files of other types. A name without an extension may be a folder.
 */
export function isIgnoredChange(relativePath: string): boolean {
  const parts = relativePath.split(/[\\/]/).filter((p) => p !== '');
  if (parts.some((p) => p.startsWith('.') || p === 'node_modules')) return true;
  const name = basename(relativePath);
  return name.includes('.') && !CONFIG_FILE.test(name);
}

export class FolderSource {
  private readonly clock: SourceClock;
  private readonly debounceMs: number;
  private readonly maxDelayMs: number;
  private readonly retryWatchMs: number;
  private readonly load: (dir: string, options: CompileOptions) => Promise<LoadedConfig>;
  private watcher: FolderWatcher | undefined;
  private timer: unknown;
  private retryTimer: unknown;
  private burstStartedAt: number | undefined;
  private loading: Promise<void> | undefined;
  /** Events came in while a load was reading the folder: it may have read a half-old folder. */
  private dirty = false;
  private closed = false;
  private good: LoadedConfig | undefined;

  constructor(private readonly options: FolderSourceOptions) {
    this.clock = options.clock ?? realClock;
    this.debounceMs = options.debounceMs ?? DEFAULT_DEBOUNCE_MS;
    this.maxDelayMs = options.maxDelayMs ?? 10 * this.debounceMs;
    this.retryWatchMs = options.retryWatchMs ?? 1_000;
    this.load = options.load ?? loadConfig;
  }

  /** The config being served: the last load that parsed. */
  get lastGood(): LoadedConfig | undefined {
    return this.good;
  }

  /**
   * Watches the folder, then loads it once. The first result is returned, not passed to onUpdate;
   * every later reload goes to onUpdate. Watching starts first so that no change is missed.
   */
  async start(): Promise<FolderUpdate> {
    this.startWatching();
    let first: FolderUpdate | undefined;
    this.loading = (async () => {
      first = await this.loadOnce();
    })();
    await this.loading;
    this.loading = undefined;
    // Changes during the first load: one more reload, after the caller has taken the first result.
    if (this.dirty && !this.closed) {
      this.dirty = false;
      this.notify();
    }
    return first as FolderUpdate;
  }

  close(): void {
    this.closed = true;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    if (this.retryTimer !== undefined) this.clock.clearTimeout(this.retryTimer);
    this.timer = this.retryTimer = undefined;
    this.watcher?.close();
    this.watcher = undefined;
  }

  /** Something in the folder changed: (re)start the debounce timer. */
  notify(relativePath?: string): void {
    if (this.closed || (relativePath !== undefined && isIgnoredChange(relativePath))) return;
    const now = this.clock.now();
    this.burstStartedAt ??= now;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    const wait = Math.max(
      0,
      Math.min(this.debounceMs, this.burstStartedAt + this.maxDelayMs - now),
    );
    this.timer = this.clock.setTimeout(() => this.fire(), wait);
  }

  private fire(): void {
    this.timer = undefined;
    this.burstStartedAt = undefined;
    if (this.closed) return;
    if (this.loading) {
      this.dirty = true;
      return;
    }
    this.dirty = false;
    this.loading = this.reload().finally(() => {
      this.loading = undefined;
      if (this.dirty && !this.closed) this.fire();
    });
  }

  private async reload(): Promise<void> {
    const update = await this.loadOnce();
    if (!this.closed) this.options.onUpdate(update);
  }

  private async loadOnce(): Promise<FolderUpdate> {
    let loaded: LoadedConfig;
    try {
      loaded = await this.load(this.options.dir, this.options.compile ?? {});
    } catch (err) {
      // The folder vanished or a file went away between listing and reading: a system error.
      return {
        kind: 'rejected',
        errors: [
          configError(
            { file: '.', doc: 0, line: 0, col: 0 },
            '',
            `cannot load: ${(err as Error).message}`,
          ),
        ],
      };
    }
    if (loaded.parse.errors.length > 0) return { kind: 'rejected', errors: loaded.parse.errors };
    const changed = loaded.snapshot.version !== this.good?.snapshot.version;
    this.good = loaded;
    return { kind: 'loaded', changed, ...loaded };
  }

  private startWatching(): void {
    const watch = this.options.watch ?? watchRecursively;
    try {
      this.watcher = watch(
        this.options.dir,
        (path) => this.notify(path),
        (err) => this.watchFailed(err),
      );
    } catch (err) {
      this.watchFailed(err as Error);
    }
  }

  private watchFailed(err: Error): void {
    this.watcher?.close();
    this.watcher = undefined;
    if (this.closed) return;
    this.options.onUpdate({ kind: 'watch-error', message: err.message });
    this.retryTimer = this.clock.setTimeout(() => {
      this.retryTimer = undefined;
      if (this.closed) return;
      this.startWatching();
      // Whatever changed while nobody watched is picked up by one reload.
      if (this.watcher) this.notify();
    }, this.retryWatchMs);
  }
}
