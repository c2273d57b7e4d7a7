import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { meshgate } from '../helpers/cli.ts';

const EXAMPLE = 'examples/edge-basic';

describe('meshgate explain', () => {
  let tmp: string;
  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'meshgate-explain-'));
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it('traces a request to its rule, with the rules ahead of it and the backends', async () => {
    const r = await meshgate([
      'explain',
      EXAMPLE,
      '--gateway',
      'shop/edge',
      '--host',
      'shop.example.com',
      '--path',
      '/catalog/items?page=2',
      '--json',
    ]);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(out).toMatchObject({
      matched: true,
      gateway: 'shop/edge',
      listener: 'http',
      port: 8080,
      route: 'shop/store',
      rule: 1,
      ruleName: 'catalog',
      request: { method: 'GET', path: '/catalog/items', query: 'page=2' },
      backends: [
        {
          namespace: 'shop',
          name: 'catalog-v1',
          port: 80,
          weight: 90,
          percent: 90,
          endpoints: [{ address: '127.0.0.1', port: 9101 }],
        },
        {
          namespace: 'shop',
          name: 'catalog-v2',
          port: 80,
          weight: 10,
          percent: 10,
          endpoints: [{ address: '127.0.0.1', port: 9102 }],
        },
      ],
    });
    const skipped = out.skipped as { rule: number; reasons: string[] }[];
    expect(skipped.find((s) => s.rule === 0)?.reasons).toEqual([
      'header "x-beta" = "true" required, absent',
    ]);
  });

  it('normalizes the path before matching and applies header matches', async () => {
    const r = await meshgate([
      'explain',
      EXAMPLE,
      '--gateway',
      'shop/edge',
      '--host',
      'shop.example.com',
      '--path',
      '/x/../catalog//beta',
      '--header',
      'X-Beta=true',
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('GET shop.example.com /catalog/beta');
    expect(r.stdout).toContain('matched shop/store rule 0 (catalog-beta) match 0 on listener http');
  });

  it('says why nothing matched', async () => {
    const r = await meshgate([
      'explain',
      EXAMPLE,
      '--gateway',
      'shop/edge',
      '--host',
      'shop.example.com',
      '--path',
      '/cart',
      '--method',
      'DELETE',
      '--json',
    ]);
    const out = JSON.parse(r.stdout) as {
      matched: boolean;
      reasons: string[];
      response: { status: number };
      skipped: { reasons: string[] }[];
    };
    expect(out.matched).toBe(false);
    expect(out.response.status).toBe(404);
    expect(out.reasons).toEqual(['routes for host shop.example.com exist, but none matches']);
    expect(out.skipped.some((s) => s.reasons.includes('method POST required, got DELETE'))).toBe(
      true,
    );
  });

  it('traces a mesh route of a Service', async () => {
    const r = await meshgate([
      'explain',
      'test/golden/cases/gamma-mesh/in',
      '--service',
      'bookinfo/reviews',
      '--host',
      'reviews',
      '--path',
      '/reviews/1',
      '--header',
      'end-user=jason',
      '--json',
    ]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      matched: true,
      service: 'bookinfo/reviews',
      port: 9080,
      route: 'bookinfo/reviews-canary',
      rule: 0,
      backends: [{ name: 'reviews-v2', port: 9080, weight: 1 }],
      policies: { backendTrafficPolicy: { sources: ['bookinfo/reviews-retries'] } },
    });
  });

  it('checks a --requests file against its expectations and exits 1 on a mismatch', async () => {
    const ok = await meshgate(['explain', EXAMPLE, '--requests', `${EXAMPLE}/route-checks.jsonl`]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('7 requests, 0 failed');

    const file = join(tmp, 'checks.jsonl');
    await writeFile(
      file,
      [
        JSON.stringify({
          gateway: 'shop/edge',
          host: 'shop.example.com',
          path: '/cart',
          method: 'GET',
          expect: { route: 'shop/store', rule: 2 },
        }),
        JSON.stringify({
          gateway: 'shop/edge',
          host: 'shop.example.com',
          path: '/cart',
          method: 'GET',
          expect: { rule: 3 },
        }),
        '{not json',
        JSON.stringify({ gateway: 'shop/nope', host: 'a', path: '/' }),
      ].join('\n'),
    );
    const bad = await meshgate(['explain', EXAMPLE, '--requests', file, '--json']);
    expect(bad.code).toBe(1);
    const lines = bad.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).toMatchObject({ line: 1, matched: true, expectation: { ok: true } });
    expect(lines[1]).toMatchObject({
      line: 2,
      expectation: { ok: false, mismatches: ['expected rule 3, got 2'] },
    });
    expect(lines[2]).toMatchObject({ line: 3 });
    expect(String(lines[2]?.error)).toMatch(/^invalid JSON/);
    expect(String(lines[3]?.error)).toMatch(/Gateway shop\/nope is not in the snapshot/);
  });

  it('refuses incomplete command lines with exit code 2', async () => {
    const r = await meshgate(['explain', EXAMPLE, '--host', 'a', '--path', '/']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('name exactly one of --gateway NS/NAME or --service NS/NAME');
  });
});
