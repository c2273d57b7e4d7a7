import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONTROL_PLANE_ERRORS } from '../../mesh/control-plane/errors.ts';
import { IDENTITY_ERRORS } from '../../shared/identity/errors.ts';
import { PROXY_ERRORS } from '../../shared/proxy/errors.ts';

// Every error registry and its table in docs/errors.md must list the same errors, in order.
const doc = readFileSync(join(import.meta.dirname, '../../docs/errors.md'), 'utf8');

/** The cells of the `| \`MG_ERR_…\` | … |` rows of the first table after `heading`. */
function tableAfter(heading: string): string[][] {
  const start = `\n${doc}`.indexOf(`\n${heading}\n`);
  if (start < 0) throw new Error(`docs/errors.md has no heading ${JSON.stringify(heading)}`);
  const lines = doc.slice(start + heading.length + 1).split('\n');
  const first = lines.findIndex((l) => l.startsWith('|'));
  const rows: string[][] = [];
  for (const line of lines.slice(first)) {
    if (!line.startsWith('|')) break;
    if (line.startsWith('| `MG_ERR_'))
      rows.push(
        line
          .slice(1, -1)
          .split(' | ')
          .map((c) => c.trim().replace(/^`|`$/g, '')),
      );
  }
  return rows;
}

describe('error registries', () => {
  it('the proxy errors match the first table of docs/errors.md', () => {
    expect(tableAfter('# Errors a client can get from meshgate')).toEqual(
      Object.entries(PROXY_ERRORS).map(([code, d]) => [code, String(d.status), d.flag, d.title]),
    );
  });

  // Regression: docs/errors.md listed only the proxy's errors; the control plane's API answered
  // codes that were documented nowhere.
  it('the control plane errors match their table', () => {
    expect(tableAfter('## Control plane')).toEqual(
      Object.entries(CONTROL_PLANE_ERRORS).map(([code, d]) => [code, String(d.status), d.title]),
    );
  });

  it('the identity errors match their table', () => {
    expect(tableAfter('## Identity')).toEqual(
      Object.entries(IDENTITY_ERRORS).map(([code, d]) => [code, String(d.status), d.title]),
    );
  });
});
