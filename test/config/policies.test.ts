import { describe, expect, it } from 'vitest';
import { compile } from '../../shared/config/compile/compile.ts';
import type { PolicyAncestorStatus } from '../../shared/config/compile/conditions.ts';
import { comparePolicyPrecedence } from '../../shared/config/compile/policies.ts';
import {
  jsonMergePatch,
  mergePolicySpecs,
  strategicMergePatch,
} from '../../shared/config/compile/policy-merge.ts';
import { formatConfigError } from '../../shared/config/errors.ts';
import { parseTexts } from '../../shared/config/parse.ts';
import type { Resource } from '../../shared/config/resource.ts';

const NOW = new Date('2026-01-01T00:00:00Z');

function compileYaml(text: string, extra: Resource[] = []) {
  const parsed = parseTexts([{ file: 'test.yaml', text }]);
  expect(parsed.errors.map(formatConfigError)).toEqual([]);
  return compile([...parsed.resources, ...extra], { now: NOW });
}

function ancestorsOf(result: ReturnType<typeof compile>, kind: string, name: string) {
  const s = result.statuses.find((x) => x.kind === kind && x.metadata.name === name);
  return (s?.status as { ancestors: PolicyAncestorStatus[] } | undefined)?.ancestors ?? [];
}

function acceptedOf(result: ReturnType<typeof compile>, kind: string, name: string) {
  return ancestorsOf(result, kind, name).map((a) => {
    const c = a.conditions.find((x) => x.type === 'Accepted');
    return `${a.ancestorRef.name}${a.ancestorRef.sectionName ? `/${a.ancestorRef.sectionName}` : ''}: ${c?.status} ${c?.reason}`;
  });
}

describe('jsonMergePatch (RFC 7386 appendix A)', () => {
  const cases: [unknown, unknown, unknown][] = [
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
    [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
    [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [
      ['a', 'b'],
      ['c', 'd'],
      ['c', 'd'],
    ],
    [{ a: 'b' }, ['c'], ['c']],
    [{ a: 'foo' }, null, null],
    [{ a: 'foo' }, 'bar', 'bar'],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [[1, 2], { a: 'b', c: null }, { a: 'b' }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ];
  it.each(cases)('%j + %j = %j', (original, patch, result) => {
    expect(jsonMergePatch(original, patch)).toEqual(result);
  });

  it('leaves its inputs alone', () => {
    const original = { a: { b: [1] }, c: 1 };
    const patch = { a: { d: 2 }, c: null };
    jsonMergePatch(original, patch);
    expect(original).toEqual({ a: { b: [1] }, c: 1 });
    expect(patch).toEqual({ a: { d: 2 }, c: null });
  });
});

describe('strategicMergePatch', () => {
  it('merges maps recursively, deletes on null and replaces lists without a strategy', () => {
    expect(
      strategicMergePatch(
        { retry: { numRetries: 5, retryOn: { triggers: ['5xx', 'reset'] } }, keep: true, drop: 1 },
        { retry: { retryOn: { triggers: ['connect-failure'] } }, drop: null },
      ),
    ).toEqual({
      retry: { numRetries: 5, retryOn: { triggers: ['connect-failure'] } },
      keep: true,
    });
  });

  it('appends where the list strategy says so: the patch items first', () => {
    expect(
      strategicMergePatch(
        { a: { rules: [1, 2] }, b: [1] },
        { a: { rules: [3] }, b: [2] },
        { 'a.rules': 'append' },
      ),
    ).toEqual({ a: { rules: [3, 1, 2] }, b: [2] });
  });

  it('replaces a scalar with a map and a map with a scalar', () => {
    expect(strategicMergePatch({ a: 1 }, { a: { b: 2 } })).toEqual({ a: { b: 2 } });
    expect(strategicMergePatch({ a: { b: 2 } }, { a: 1 })).toEqual({ a: 1 });
  });
});

describe('mergePolicySpecs', () => {
  const gateway = {
    rateLimit: { local: { rules: [{ limit: { requests: 1000, unit: 'Second' } }] } },
    timeout: { http: { requestTimeout: '10s' } },
  };
  const route = {
    rateLimit: { local: { rules: [{ limit: { requests: 10, unit: 'Minute' } }] } },
    timeout: { http: { connectionIdleTimeout: '30s' } },
  };

  it('StrategicMerge keeps both sets of rate-limit rules, the route first', () => {
    expect(mergePolicySpecs(gateway, route, 'StrategicMerge')).toEqual({
      rateLimit: {
        local: {
          rules: [
            { limit: { requests: 10, unit: 'Minute' } },
            { limit: { requests: 1000, unit: 'Second' } },
          ],
        },
      },
      timeout: { http: { requestTimeout: '10s', connectionIdleTimeout: '30s' } },
    });
  });

  it('JSONMerge replaces the rules', () => {
    expect(mergePolicySpecs(gateway, route, 'JSONMerge')).toEqual({
      rateLimit: { local: { rules: [{ limit: { requests: 10, unit: 'Minute' } }] } },
      timeout: { http: { requestTimeout: '10s', connectionIdleTimeout: '30s' } },
    });
  });

  it('StrategicMerge replaces other lists (no patchMergeKey upstream)', () => {
    expect(
      mergePolicySpecs(
        { cors: { allowOrigins: ['https://a.example'], allowMethods: ['GET'] } },
        { cors: { allowOrigins: ['https://b.example'] } },
        'StrategicMerge',
      ),
    ).toEqual({ cors: { allowOrigins: ['https://b.example'], allowMethods: ['GET'] } });
  });
});

describe('comparePolicyPrecedence', () => {
  const meta = (namespace: string, name: string, creationTimestamp?: string) => ({
    metadata: { namespace, name, ...(creationTimestamp ? { creationTimestamp } : {}) },
  });

  it('orders oldest first, undated last, then by namespace/name', () => {
    const list = [
      meta('b', 'x'),
      meta('a', 'z', '2026-02-01T00:00:00Z'),
      meta('a', 'y'),
      meta('c', 'w', '2026-01-01T00:00:00Z'),
      meta('a', 'a', '2026-02-01T00:00:00Z'),
      // The same instant as 2026-02-01T00:00:00Z, written with an offset.
      meta('0', '0', '2026-02-01T01:00:00+01:00'),
    ];
    expect(
      list.sort(comparePolicyPrecedence).map((m) => `${m.metadata.namespace}/${m.metadata.name}`),
    ).toEqual(['c/w', '0/0', 'a/a', 'a/z', 'a/y', 'b/x']);
  });
});

const GATEWAY = `
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: meshgate }
spec:
  controllerName: meshgate.io/gateway-controller
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: edge, namespace: shop }
spec:
  gatewayClassName: meshgate
  listeners: [{ name: http, port: 8080, protocol: HTTP }]
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  ports: [{ name: http, port: 80 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: store, namespace: shop, labels: { team: web } }
spec:
  parentRefs: [{ name: edge }]
  rules:
    - backendRefs: [{ name: web, port: 80 }]
`;

function btp(name: string, target: string, extra = '') {
  return `
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: { name: ${name}, namespace: shop${extra} }
spec:
  targetRefs: [${target}]
  timeout: { http: { requestTimeout: 1s } }`;
}

const STORE = '{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: store }';

describe('policy precedence in compile', () => {
  it('gives a target to the oldest policy, whatever the names', () => {
    const result = compileYaml(
      GATEWAY +
        btp('a-new', STORE, ', creationTimestamp: "2026-03-01T00:00:00Z"') +
        btp('b-old', STORE, ', creationTimestamp: "2026-01-01T00:00:00Z"') +
        btp('c-undated', STORE),
    );
    expect(acceptedOf(result, 'BackendTrafficPolicy', 'b-old')).toEqual(['edge: True Accepted']);
    expect(acceptedOf(result, 'BackendTrafficPolicy', 'a-new')).toEqual(['edge: False Conflicted']);
    expect(acceptedOf(result, 'BackendTrafficPolicy', 'c-undated')).toEqual([
      'edge: False Conflicted',
    ]);
    const rules = result.snapshot.gateways[0]?.listeners[0]?.routes[0]?.rules;
    expect(rules).toEqual([{ backendTrafficPolicy: 'BackendTrafficPolicy/shop/b-old' }]);
  });

  it('breaks equal timestamps by namespace/name', () => {
    const t = ', creationTimestamp: "2026-01-01T00:00:00Z"';
    const result = compileYaml(GATEWAY + btp('zz', STORE, t) + btp('aa', STORE, t));
    expect(acceptedOf(result, 'BackendTrafficPolicy', 'aa')).toEqual(['edge: True Accepted']);
    expect(acceptedOf(result, 'BackendTrafficPolicy', 'zz')).toEqual(['edge: False Conflicted']);
  });

  it('counts a route found by both a selector and a targetRef once', () => {
    const result = compileYaml(`${GATEWAY}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata: { name: both, namespace: shop }
spec:
  targetRefs: [${STORE}]
  targetSelectors: [{ kind: HTTPRoute, matchLabels: { team: web } }]
  cors: { allowOrigins: ["*"] }`);
    expect(result.snapshot.policies.map((p) => p.targets)).toEqual([['httproute/shop/store']]);
    expect(acceptedOf(result, 'SecurityPolicy', 'both')).toEqual(['edge: True Accepted']);
  });

  it('writes no ancestor for a Gateway of another controller', () => {
    const result = compileYaml(`${GATEWAY}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: theirs, namespace: shop }
spec:
  gatewayClassName: other
  listeners: [{ name: http, port: 8080, protocol: HTTP }]
${btp('p', '{ group: gateway.networking.k8s.io, kind: Gateway, name: theirs }')}`);
    expect(ancestorsOf(result, 'BackendTrafficPolicy', 'p')).toEqual([]);
    expect(result.snapshot.policies).toEqual([]);
  });

  it('shares one effective id between attachments with the same sources', () => {
    const result = compileYaml(
      `${GATEWAY.replace(
        'listeners: [{ name: http, port: 8080, protocol: HTTP }]',
        'listeners: [{ name: http, port: 8080, protocol: HTTP }, { name: alt, port: 8081, protocol: HTTP }]',
      )}${btp('gw', '{ group: gateway.networking.k8s.io, kind: Gateway, name: edge }')}`,
    );
    const ids = result.snapshot.gateways[0]?.listeners.flatMap((l) =>
      l.routes.flatMap((r) => r.rules.map((x) => x.backendTrafficPolicy)),
    );
    expect(ids).toEqual(['BackendTrafficPolicy/shop/gw', 'BackendTrafficPolicy/shop/gw']);
    expect(Object.keys(result.snapshot.effectivePolicies)).toEqual([
      'BackendTrafficPolicy/shop/gw',
    ]);
  });
});

describe('merging with a parent that cannot be applied', () => {
  it('fails closed and says so on the route policy, without a Merged condition', () => {
    const result = compileYaml(`${GATEWAY}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata: { name: gw, namespace: shop }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: Gateway, name: edge }]
  basicAuth: { users: { name: htpasswd } }
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata: { name: route, namespace: shop }
spec:
  targetRefs: [${STORE}]
  mergeType: StrategicMerge
  cors: { allowOrigins: ["*"] }`);
    const id = 'SecurityPolicy/shop/route+shop/gw';
    expect(result.snapshot.gateways[0]?.listeners[0]?.routes[0]?.rules).toEqual([
      { securityPolicy: id },
    ]);
    expect(result.snapshot.effectivePolicies[id]?.spec).toMatchObject({
      invalid: { reason: 'Invalid' },
    });
    expect(
      ancestorsOf(result, 'SecurityPolicy', 'route').flatMap((a) =>
        a.conditions.map((c) => `${c.type} ${c.status} ${c.reason}`),
      ),
    ).toEqual(['Accepted False Invalid']);
    expect(acceptedOf(result, 'SecurityPolicy', 'gw')).toEqual(['edge: False Invalid']);
    expect(result.snapshot.policies).toEqual([]);
  });
});

describe('BackendTrafficPolicy on a Service (mesh)', () => {
  // The schema does not let a core Service through yet, so the resource is built by hand, as
  // the parser would produce it.
  function serviceBtp(name: string, spec: Record<string, unknown>): Resource {
    return {
      apiVersion: 'gateway.envoyproxy.io/v1alpha1',
      kind: 'BackendTrafficPolicy',
      metadata: { name, namespace: 'shop', generation: 1 },
      spec,
      source: { file: 'built.yaml', doc: 1, line: 1, col: 1 },
      locate: () => ({ file: 'built.yaml', doc: 1, line: 1, col: 1 }),
      unsupported: [],
    };
  }

  it('is the parent of the mesh route policies of routes attached to that Service', () => {
    const mesh = `
apiVersion: v1
kind: Service
metadata: { name: reviews, namespace: shop }
spec:
  ports: [{ name: http, port: 9080 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: reviews, namespace: shop }
spec:
  parentRefs: [{ group: "", kind: Service, name: reviews }]
  rules:
    - name: all
      backendRefs: [{ name: reviews, port: 9080 }]
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: { name: rule, namespace: shop }
spec:
  targetRefs:
    [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: reviews, sectionName: all }]
  mergeType: JSONMerge
  timeout: { http: { requestTimeout: 1s } }`;
    const result = compileYaml(mesh, [
      serviceBtp('svc', {
        targetRefs: [{ group: '', kind: 'Service', name: 'reviews' }],
        retry: { numRetries: 4 },
      }),
    ]);
    const svc = result.snapshot.services.find((s) => s.name === 'reviews');
    expect(svc?.backendTrafficPolicy).toBe('BackendTrafficPolicy/shop/svc');
    expect(svc?.meshRoutes[0]?.rules).toEqual([
      { backendTrafficPolicy: 'BackendTrafficPolicy/shop/rule+shop/svc' },
    ]);
    expect(
      result.snapshot.effectivePolicies['BackendTrafficPolicy/shop/rule+shop/svc']?.spec,
    ).toEqual({ retry: { numRetries: 4 }, timeout: { http: { requestTimeout: '1s' } } });
    expect(ancestorsOf(result, 'BackendTrafficPolicy', 'svc').map((a) => a.ancestorRef)).toEqual([
      { group: '', kind: 'Service', namespace: 'shop', name: 'reviews' },
    ]);
    expect(
      ancestorsOf(result, 'BackendTrafficPolicy', 'rule').flatMap((a) =>
        a.conditions.map((c) => `${c.type} ${c.status} ${c.message}`),
      ),
    ).toEqual([
      'Accepted True Policy has been accepted.',
      'Merged True Merged with policy shop/svc',
    ]);
  });
});
