// What every bench file exports, and the table bench/run.ts prints.

export interface BenchRow {
  bench: string;
  case: string;
  /** NaN when the case could not be measured (the note says why); printed as "-". */
  value: number;
  unit: string;
  note?: string;
}

export interface Bench {
  name: string;
  run(): Promise<BenchRow[]> | BenchRow[];
}

/** Time `iterations` calls of `fn(i)` after `warmup` calls; returns ns per call. */
export function nsPerOp(fn: (i: number) => unknown, iterations: number, warmup: number): number {
  let sink = 0;
  for (let i = 0; i < warmup; i++) if (fn(i) !== undefined) sink++;
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) if (fn(i) !== undefined) sink++;
  const elapsed = process.hrtime.bigint() - start;
  // keep the results alive so the calls cannot be optimized away
  if (sink === -1) console.log(sink);
  return Number(elapsed) / iterations;
}

export function formatTable(rows: BenchRow[]): string {
  const header = ['bench', 'case', 'value', 'unit', 'note'];
  const cells = rows.map((r) => [
    r.bench,
    r.case,
    !Number.isFinite(r.value) ? '-' : r.value >= 100 ? r.value.toFixed(0) : r.value.toFixed(2),
    r.unit,
    r.note ?? '',
  ]);
  const widths = header.map((h, i) =>
    Math.max(h.length, ...cells.map((c) => (c[i] as string).length)),
  );
  const line = (c: string[]) =>
    c
      .map((s, i) => (i === 2 ? s.padStart(widths[i] as number) : s.padEnd(widths[i] as number)))
      .join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)].join('\n');
}
