import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROXY_ERRORS } from '../../shared/proxy/errors.ts';

// docs/errors.md and the registry in shared/proxy/errors.ts must list the same errors.
describe('error registry', () => {
  it('matches the table in docs/errors.md', () => {
    const doc = readFileSync(join(import.meta.dirname, '../../docs/errors.md'), 'utf8');
    const rows = [
      ...doc.matchAll(/^\| `(MG_ERR_[A-Z_]+)` \| (\d{3}) \| `([A-Z]+)` \| (.+) \|$/gm),
    ].map((m) => [m[1], Number(m[2]), m[3], m[4]]);
    const registry = Object.entries(PROXY_ERRORS).map(([code, d]) => [
      code,
      d.status,
      d.flag,
      d.title,
    ]);
    expect(rows).toEqual(registry);
  });
});
