// The watched folder source in-process: debounce and coalescing in paused time (an injected clock
// and watcher), last-good on errors, and one pass over the real file system.

import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { compile } from '../../../shared/config/compile/compile.ts';
import { configError } from '../../../shared/config/errors.ts';
import type { LoadedConfig } from '../../../shared/config/load.ts';
import { parseTexts } from '../../../shared/config/parse.ts';
import {
  FolderSource,
  isIgnoredChange,
  type FolderUpdate,
  type SourceClock,
} from '../../../shared/config/sources/folder-source.ts';
import { ConfigFolder, httpRouteYaml } from '../../helpers/config-folder.ts';
import { docs, GATEWAY_CLASS, gatewayYaml, serviceYaml } from '../../helpers/gateway-config.ts';
import { poll } from '../../helpers/gateway-process.ts';

/** Timers that fire only when the test advances the clock. */
class ManualClock implements SourceClock {
  private t = 0;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  get pending(): number {
    return this.timers.size;
  }

  /** Moves time forward, firing due timers in order (and timers they set, if due). */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const next = [...this.timers.entries()]
        .filter(([, timer]) => timer.at <= end)
        .sort(([a, x], [b, y]) => x.at - y.at || a - b)[0];
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
  }
}

function loaded(backend: string): LoadedConfig {
  const parse = parseTexts([
    {
      file: 'config.yaml',
      text: docs(
        GATEWAY_CLASS,
        gatewayYaml('default', 'edge', '    - { name: http, port: 8080, protocol: HTTP }'),
        serviceYaml('default', backend, 9000),
        httpRouteYaml({ name: 'web', gateway: 'edge', backend }),
      ),
    },
  ]);
  return { ...compile(parse.resources, { now: new Date(0) }), parse };
}

function broken(): LoadedConfig {
  const good = loaded('a');
  const error = configError({ file: 'routes.yaml', doc: 1, line: 3, col: 1 }, '', 'invalid YAML');
  return { ...good, parse: { ...good.parse, errors: [error] } };
}

/** A source on a manual clock, a fake watcher and a scripted load; loads resolve when released. */
function harness() {
  const clock = new ManualClock();
  const updates: FolderUpdate[] = [];
  const results: LoadedConfig[] = [];
  let loads = 0;
  const gates: (() => void)[] = [];
  let hold = false;
  let change: (path: string | undefined) => void = () => {};
  let watcherClosed = false;
  const source = new FolderSource({
    dir: '/config',
    clock,
    debounceMs: 100,
    maxDelayMs: 1000,
    onUpdate: (u) => updates.push(u),
    watch: (_dir, onChange) => {
      change = onChange;
      return { close: () => (watcherClosed = true) };
    },
    load: async () => {
      loads++;
      if (hold) await new Promise<void>((resolve) => gates.push(resolve));
      const next = results.shift();
      if (!next) throw new Error('no scripted result');
      return next;
    },
  });
  return {
    clock,
    source,
    updates,
    results,
    get loads() {
      return loads;
    },
    change: (path?: string) => change(path),
    holdLoads: (on: boolean) => (hold = on),
    release: () => gates.shift()?.(),
    get watcherClosed() {
      return watcherClosed;
    },
  };
}

/** Lets the promise callbacks of a finished load run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('FolderSource', () => {
  it('debounces a burst of events into one reload, 100 ms after the last', async () => {
    const h = harness();
    h.results.push(loaded('a'), loaded('b'));
    const first = await h.source.start();
    expect(first).toMatchObject({ kind: 'loaded', changed: true });
    for (let i = 0; i < 5; i++) {
      h.change('routes.yaml');
      h.clock.advance(50);
    }
    expect(h.loads).toBe(1);
    h.clock.advance(49);
    expect(h.loads).toBe(1);
    h.clock.advance(1);
    await settle();
    expect(h.loads).toBe(2);
    expect(h.updates).toEqual([expect.objectContaining({ kind: 'loaded', changed: true })]);
    h.source.close();
  });

  it('reloads a stream of events that never goes quiet once maxDelay has passed', async () => {
    const h = harness();
    h.results.push(loaded('a'), loaded('b'));
    await h.source.start();
    for (let i = 0; i < 20; i++) {
      h.change('routes.yaml');
      h.clock.advance(60);
    }
    await settle();
    // Events every 60 ms for 1.2 s: the burst is cut at 1 s, then a new one starts.
    expect(h.loads).toBe(2);
    h.source.close();
  });

  it('keeps the last good config when a reload has errors, and reports them', async () => {
    const h = harness();
    const good = loaded('a');
    h.results.push(good, broken(), loaded('b'));
    await h.source.start();
    h.change('routes.yaml');
    h.clock.advance(100);
    await settle();
    expect(h.updates[0]).toMatchObject({
      kind: 'rejected',
      errors: [{ location: { file: 'routes.yaml', line: 3 } }],
    });
    expect(h.source.lastGood?.snapshot.version).toBe(good.snapshot.version);
    h.change('routes.yaml');
    h.clock.advance(100);
    await settle();
    expect(h.updates[1]).toMatchObject({ kind: 'loaded', changed: true });
    expect(h.source.lastGood?.snapshot.version).not.toBe(good.snapshot.version);
    h.source.close();
  });

  it('reports a load that throws as rejected, without touching the last good config', async () => {
    const h = harness();
    const good = loaded('a');
    h.results.push(good); // the second load has no result: it throws
    await h.source.start();
    h.change();
    h.clock.advance(100);
    await settle();
    expect(h.updates[0]).toMatchObject({ kind: 'rejected' });
    expect(
      String((h.updates[0] as { errors: { message: string }[] }).errors[0]?.message),
    ).toContain('no scripted result');
    expect(h.source.lastGood).toBe(good);
    h.source.close();
  });

  it('says when a reload compiles to the same version', async () => {
    const h = harness();
    h.results.push(loaded('a'), loaded('a'));
    await h.source.start();
    h.change('routes.yaml');
    h.clock.advance(100);
    await settle();
    expect(h.updates).toEqual([expect.objectContaining({ kind: 'loaded', changed: false })]);
    h.source.close();
  });

  it('runs one more reload for events during a load, never two loads at once', async () => {
    const h = harness();
    h.results.push(loaded('a'), loaded('b'), loaded('a'));
    await h.source.start();
    h.holdLoads(true);
    h.change('routes.yaml');
    h.clock.advance(100);
    expect(h.loads).toBe(2);
    // Changes while the folder is being read: debounced, then queued behind the load.
    h.change('routes.yaml');
    h.clock.advance(100);
    h.change('services.yaml');
    h.clock.advance(100);
    expect(h.loads).toBe(2);
    h.release();
    await settle();
    expect(h.loads).toBe(3);
    h.release();
    await settle();
    expect(h.loads).toBe(3);
    expect(h.updates.map((u) => u.kind)).toEqual(['loaded', 'loaded']);
    h.source.close();
  });

  it('ignores dot-files, editor swap files and other file types', async () => {
    expect(isIgnoredChange('.routes.yaml.swp')).toBe(true);
    expect(isIgnoredChange('sub/.routes.yaml.tmp')).toBe(true);
    expect(isIgnoredChange('.git/index')).toBe(true);
    expect(isIgnoredChange('node_modules/x/a.yaml')).toBe(true);
    expect(isIgnoredChange('notes.txt')).toBe(true);
    expect(isIgnoredChange('routes.yaml')).toBe(false);
    expect(isIgnoredChange('sub/routes.YML')).toBe(false);
    expect(isIgnoredChange('sub')).toBe(false);
    const h = harness();
    h.results.push(loaded('a'));
    await h.source.start();
    h.change('.routes.yaml.swp');
    h.change('README.md');
    expect(h.clock.pending).toBe(0);
    h.source.close();
  });

  it('cancels a pending reload and closes the watcher on close', async () => {
    const h = harness();
    h.results.push(loaded('a'), loaded('b'));
    await h.source.start();
    h.change('routes.yaml');
    h.source.close();
    expect(h.clock.pending).toBe(0);
    expect(h.watcherClosed).toBe(true);
    h.clock.advance(1000);
    await settle();
    expect(h.loads).toBe(1);
    expect(h.updates).toEqual([]);
  });
});

describe('FolderSource on the file system', () => {
  let folder: ConfigFolder | undefined;
  let source: FolderSource | undefined;

  afterEach(async () => {
    source?.close();
    await folder?.remove();
    folder = source = undefined;
  });

  it('sees files replaced by rename, again and again, and files in new subfolders', async () => {
    folder = await ConfigFolder.create({
      'gateway.yaml': docs(
        GATEWAY_CLASS,
        gatewayYaml('default', 'edge', '    - { name: http, port: 8080, protocol: HTTP }'),
      ),
      'services.yaml': docs(serviceYaml('default', 'a', 9001), serviceYaml('default', 'b', 9002)),
      'routes.yaml': httpRouteYaml({ name: 'web', gateway: 'edge', backend: 'a' }),
    });
    const versions: string[] = [];
    let loads = 0;
    source = new FolderSource({
      dir: folder.dir,
      debounceMs: 20,
      onUpdate: (u) => {
        if (u.kind !== 'loaded') return;
        loads++;
        if (u.changed) versions.push(u.snapshot.version);
      },
    });
    const first = await source.start();
    expect(first.kind).toBe('loaded');
    const dir = folder;
    // Node 20's own recursive watcher on Linux misses the second rename onto the same name.
    for (let i = 1; i <= 3; i++) {
      const backend = i % 2 ? 'b' : 'a';
      await dir.write('routes.yaml', httpRouteYaml({ name: 'web', gateway: 'edge', backend }));
      await poll(async () => (versions.length === i ? true : undefined), `reload ${i}`);
    }
    // The new folder is watched before the reload its creation causes (debounced) runs.
    const before = loads;
    await mkdir(join(dir.dir, 'more'));
    await poll(async () => (loads > before ? true : undefined), 'the reload for the new folder');
    const extra = httpRouteYaml({ name: 'extra', gateway: 'edge', backend: 'b' });
    await dir.write('more/extra.yaml', extra);
    await poll(
      async () => (versions.length === 4 ? true : undefined),
      'the file in the new folder',
    );
    expect(source.lastGood?.snapshot.routes.map((r) => r.name)).toEqual(['extra', 'web']);
  });
});
