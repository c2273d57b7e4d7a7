import { describe, expect, it } from 'vitest';
import { SidecarView, ViewRejected, type Workload } from '../../../mesh/sidecar/sidecar-view.ts';
import { viewOf } from '../../helpers/fake-discovery.ts';
import { endpointSliceYaml, joinYaml, serviceYaml } from '../../helpers/mesh-config.ts';

// The sidecar's compiled view, in-process: which Service a name means, which endpoints are
// sidecars (mTLS, with their identity) and which are plain, and what is refused.

const WORKLOAD: Workload = {
  service: 'productpage',
  namespace: 'bookinfo',
  serviceAccount: 'productpage',
  labels: { app: 'productpage' },
  appPort: 9080,
};

const YAML = joinYaml(
  serviceYaml({ name: 'reviews', namespace: 'bookinfo', targetPort: 9080 }),
  `apiVersion: v1
kind: Service
metadata: { name: multi, namespace: bookinfo }
spec:
  selector: { app: multi }
  ports: [{ name: http, port: 80, targetPort: 8080 }, { name: admin, port: 9000, targetPort: 9000 }]`,
  serviceYaml({ name: 'ratings', namespace: 'other', targetPort: 9080 }),
  serviceYaml({ name: 'legacy', namespace: 'bookinfo', selector: null, targetPort: 7000 }),
  endpointSliceYaml({ service: 'legacy', namespace: 'bookinfo', port: 7000, address: '10.0.0.9' }),
);

function view(yaml = YAML) {
  const v = structuredClone(viewOf('v1', yaml));
  v.meshEndpoints = {
    'bookinfo/reviews:9080': [
      {
        address: '10.0.0.1',
        port: 15006,
        spiffeId: 'spiffe://cluster.local/ns/bookinfo/sa/reviews',
      },
    ],
  };
  return v;
}

describe('SidecarView', () => {
  it('resolves svc, svc.ns, svc.ns.svc and the cluster-local name; short names in its own namespace', () => {
    const v = new SidecarView(view(), { workload: WORKLOAD });
    for (const name of [
      'reviews',
      'reviews.bookinfo',
      'reviews.bookinfo.svc',
      'reviews.bookinfo.svc.cluster.local',
    ])
      expect(v.resolve(name, 9080), name).toMatchObject({ key: 'bookinfo/reviews:9080' });
    expect(v.resolve('ratings', 9080)).toBeUndefined();
    expect(v.resolve('ratings.other', undefined)).toMatchObject({ key: 'other/ratings:9080' });
    // No port: the only one, else 80; a port the Service does not have is named as such.
    expect(v.resolve('reviews', undefined)).toMatchObject({ port: 9080 });
    expect(v.resolve('multi', undefined)).toMatchObject({ port: 80 });
    expect(v.resolve('multi', 1234)).toMatchObject({ unknownPort: { name: 'multi' } });
    v.close();
  });

  it('calls sidecar endpoints over mTLS with their identity, others in plain HTTP', () => {
    const v = new SidecarView(view(), { workload: WORKLOAD });
    const reviews = v.destinations.get('bookinfo/reviews:9080');
    const backend = reviews?.rules.get('bookinfo/reviews')?.[0]?.backends.pick(() => 0);
    expect(backend?.endpoints).toEqual([
      {
        address: '10.0.0.1',
        port: 15006,
        origin: 'https://10.0.0.1:15006',
        spiffeId: 'spiffe://cluster.local/ns/bookinfo/sa/reviews',
      },
    ]);
    expect(backend?.servername).toBe('outbound_.9080_._.reviews.bookinfo.svc.cluster.local');
    // Istio's default retries apply without a BackendTrafficPolicy.
    expect(backend?.policy?.retry).toBeDefined();
    const legacy = v.destinations.get('bookinfo/legacy:9080');
    const plain = legacy?.rules.get('bookinfo/legacy')?.[0]?.backends.pick(() => 0);
    expect(plain?.endpoints).toEqual([
      { address: '10.0.0.9', port: 7000, origin: 'http://10.0.0.9:7000' },
    ]);
    expect([...v.meshPeers]).toEqual([
      'https://10.0.0.1:15006|spiffe://cluster.local/ns/bookinfo/sa/reviews',
    ]);
    v.close();
  });

  it('refuses a view with a mesh route whose regular expression does not compile', () => {
    const v = view(
      joinYaml(
        YAML,
        `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: r, namespace: bookinfo }
spec:
  parentRefs: [{ group: "", kind: Service, name: reviews, port: 9080 }]
  rules: [{ matches: [{ path: { type: RegularExpression, value: "/a.*" } }], backendRefs: [{ name: reviews, port: 9080 }] }]`,
      ),
    );
    (v.routes[0]?.rules[0]?.matches[0] as { path: { value: string } }).path.value = '/a(';
    expect(() => new SidecarView(v, { workload: WORKLOAD })).toThrow(ViewRejected);
    expect(() => new SidecarView(v, { workload: WORKLOAD })).toThrow(
      /bookinfo\/reviews:9080: route bookinfo\/r rule 0 match 0: path regular expression "\/a\("/,
    );
  });
});
