import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { meshgate, REPO } from '../helpers/cli.ts';

// The demo's manifests pass `meshgate validate` as they are: no error, no problem condition. The
// products API's OpenAPI document sits beside them (the ApiDefinition's source.file), and is
// listed as an ignored document, not reported as a resource without apiVersion (regression: it
// was, and the control plane refused the whole folder).

const EXAMPLE = join(REPO, 'examples/bookinfo');

describe('examples/bookinfo', () => {
  it('validates cleanly, with the OpenAPI document listed as ignored', async () => {
    const r = await meshgate(['validate', EXAMPLE]);
    expect(r.stdout).toContain('0 errors, 0 conditions reporting problems');
    expect(r.stdout).toMatch(
      /Ignored \(1\):\n {2}apis\/products\.openapi\.yaml doc 1 \(1:1\) OpenAPI document: OpenAPI 3\.0\.3/,
    );
    expect(r.stdout).toContain('ApiDefinition bookinfo/products');
    expect(r.code).toBe(0);
  });

  it('explains why the gateway may not call ratings', async () => {
    const r = await meshgate([
      'explain',
      EXAMPLE,
      '--service',
      'bookinfo/ratings',
      '--port',
      '9080',
      '--from-principal',
      'cluster.local/ns/meshgate-system/sa/meshgate-gateway',
      '--method',
      'GET',
      '--path',
      '/ratings/0',
    ]);
    expect(r.stdout).toContain(
      'decision: DENY (403): denied: no ALLOW policy matches (bookinfo/ratings-from-reviews)',
    );
  });
});
