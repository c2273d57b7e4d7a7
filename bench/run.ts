// npm run bench: every bench/*.ts that exports `bench` (see bench.ts), one table at the end.
// Name files on the command line to run only those: npm run bench -- route-match
// (or in BENCH_ONLY, comma-separated: BENCH_ONLY=gateway npm run bench).

import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { formatTable, type Bench, type BenchRow } from './bench.ts';

const dir = dirname(fileURLToPath(import.meta.url));
const only = [
  ...process.argv.slice(2),
  ...(process.env.BENCH_ONLY ?? '').split(',').filter((s) => s.trim() !== ''),
].map((s) => s.trim().replace(/\.ts$/, ''));
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts' && f !== 'bench.ts')
  .filter((f) => only.length === 0 || only.includes(f.replace(/\.ts$/, '')))
  .sort();

const rows: BenchRow[] = [];
for (const file of files) {
  const mod = (await import(pathToFileURL(join(dir, file)).href)) as { bench?: Bench };
  if (!mod.bench) continue;
  process.stderr.write(`running ${mod.bench.name} ...\n`);
  rows.push(...(await mod.bench.run()));
}
console.log(formatTable(rows));
