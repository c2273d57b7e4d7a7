#!/usr/bin/env node
// The meshgate CLI. Runs the compiled build (dist/, from `npm run build`) when it is at least as
// new as every source file; otherwise runs the TypeScript sources through tsx, so an edit never
// meets a stale build.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const built = `${root}dist/bin/cli.js`;

function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(path));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

function buildIsFresh() {
  if (!existsSync(built)) return false;
  const builtAt = statSync(built).mtimeMs;
  return ['bin', 'shared', 'gateway', 'mesh'].every(
    (d) => !existsSync(`${root}${d}`) || newestSource(`${root}${d}`) <= builtAt,
  );
}

let main;
if (process.env.MESHGATE_FROM_SOURCE !== '1' && buildIsFresh()) {
  ({ main } = await import(built));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('./cli.ts'));
}
process.exitCode = await main(process.argv.slice(2));
