import { describe, expect, it } from 'vitest';
import { meshgate } from '../helpers/cli.ts';

describe('meshgate validate', () => {
  it('prints statuses for a good folder and exits 0', async () => {
    const r = await meshgate(['validate', 'examples/edge-basic']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Gateway shop/edge');
    expect(r.stdout).toContain(
      '✓ Accepted=True (Accepted): attached to Gateway shop/edge listener http',
    );
    expect(r.stdout).toMatch(/0 errors, 0 conditions reporting problems/);
  });

  it('prints every error and exits 1 on a broken folder', async () => {
    const r = await meshgate(['validate', 'test/golden/cases/parse-errors/in']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(
      'broken.yaml doc 1 (11:19) spec.rules[0].matches[0].path.type: expected one of Exact, PathPrefix, RegularExpression',
    );
    expect(r.stdout).toContain('bad-yaml.yaml doc 2 (11:9) invalid YAML');
    expect(r.stdout).toMatch(/Ignored \(1\):\n.*TLSRoute\/later/);
  });

  it('exits 1 when a resource has a problem condition, naming it', async () => {
    const r = await meshgate(['validate', 'test/golden/cases/backend-refs/in']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(
      '✗ ResolvedRefs=False (BackendNotFound): rules[1].backendRefs[0]: Service web/missing not found',
    );
  });

  it('--json prints each resource with the status Kubernetes would hold, plus parse errors', async () => {
    const r = await meshgate(['validate', '--json', 'test/golden/cases/route-attachment/in']);
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout) as {
      apiVersion?: string;
      kind?: string;
      metadata?: { namespace?: string; name: string; generation: number };
      status?: Record<string, unknown>;
    }[];
    const route = out.find((x) => x.kind === 'HTTPRoute' && x.metadata?.name === 'wildcard');
    expect(route).toMatchObject({
      apiVersion: 'gateway.networking.k8s.io/v1',
      metadata: { namespace: 'team-b', name: 'wildcard', generation: 1 },
      status: {
        parents: [
          {
            parentRef: {
              group: 'gateway.networking.k8s.io',
              kind: 'Gateway',
              namespace: 'infra',
              name: 'edge',
            },
            controllerName: 'meshgate.io/gateway-controller',
            conditions: [
              { type: 'Accepted', status: 'True', reason: 'Accepted', observedGeneration: 1 },
              {
                type: 'ResolvedRefs',
                status: 'True',
                reason: 'ResolvedRefs',
                observedGeneration: 1,
              },
            ],
          },
        ],
      },
    });
    const gateway = out.find((x) => x.kind === 'Gateway' && x.metadata?.name === 'edge');
    const listeners = (
      gateway?.status as {
        listeners: { name: string; attachedRoutes: number; supportedKinds: unknown[] }[];
      }
    ).listeners;
    expect(listeners.map((l) => [l.name, l.attachedRoutes])).toEqual([
      ['same', 1],
      ['all', 1],
      ['selected', 1],
      ['none', 0],
    ]);
    expect(listeners[0]?.supportedKinds).toEqual([
      { group: 'gateway.networking.k8s.io', kind: 'HTTPRoute' },
    ]);
    // A Gateway of another controller is listed with its status untouched.
    expect(out.find((x) => x.kind === 'Gateway' && x.metadata?.name === 'other')?.status).toEqual(
      {},
    );

    const broken = JSON.parse(
      (await meshgate(['validate', '--json', 'test/golden/cases/parse-errors/in'])).stdout,
    ) as { error?: { file: string; line: number; column: number; path: string } }[];
    expect(broken.filter((x) => x.error).map((x) => x.error?.file)).toContain('broken.yaml');
  });

  it('refuses a missing folder with a clear message', async () => {
    const r = await meshgate(['validate', 'no/such/dir']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('no/such/dir');
  });
});
