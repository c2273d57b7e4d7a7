// Which code a benchmark's meshgate processes run: bin/meshgate.js runs the compiled dist/ when it
// is at least as new as every source file, else the TypeScript sources through tsx (slower to
// start, and tsx's loader adds to every process's memory). The same test as bin/meshgate.js, so
// the report can say which one was measured.

import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(path));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

export type MeshgateBuild = 'dist' | 'sources' | 'custom';

/**
 * "dist" when `bin` (a bin/meshgate.js) will run the fresh build, "sources" when it will run
 * the sources; "custom" for another entry script (MESHGATE_BIN), which this cannot tell.
 */
export function meshgateRunsFrom(bin: string): MeshgateBuild {
  if (basename(bin) !== 'meshgate.js') return 'custom';
  if (process.env.MESHGATE_FROM_SOURCE === '1') return 'sources';
  const root = join(dirname(bin), '..');
  const built = join(root, 'dist', 'bin', 'cli.js');
  if (!existsSync(built)) return 'sources';
  const builtAt = statSync(built).mtimeMs;
  const fresh = ['bin', 'shared', 'gateway', 'mesh'].every(
    (d) => !existsSync(join(root, d)) || newestSource(join(root, d)) <= builtAt,
  );
  return fresh ? 'dist' : 'sources';
}
