// Views, cut from a compiled snapshot and the registry, without sockets: registered endpoints
// merged by selector and target port, versions that depend on content only, and each sidecar's
// inbound policies (mesh-wide, namespace, selector, targetRefs).

import { describe, expect, it } from 'vitest';
import { mergeRegisteredEndpoints } from '../../../mesh/control-plane/endpoints.ts';
import { cutView, type ViewContext } from '../../../mesh/control-plane/views.ts';
import { compile } from '../../../shared/config/compile/compile.ts';
import { parseTexts } from '../../../shared/config/parse.ts';
import type { ProxyHello, RegisteredEndpoint } from '../../../shared/discovery/protocol.ts';

function snapshotOf(text: string) {
  const parsed = parseTexts([{ file: 'config.yaml', text }]);
  expect(parsed.errors).toEqual([]);
  return compile(parsed.resources, { now: new Date(0) }).snapshot;
}

const SERVICES = `apiVersion: v1
kind: Service
metadata: { name: reviews, namespace: bookinfo }
spec:
  selector: { app: reviews }
  ports:
    - { name: http, port: 9080 }
    - { name: grpc, port: 9090, targetPort: grpc-port }
---
apiVersion: v1
kind: Service
metadata: { name: reviews-v3, namespace: bookinfo }
spec:
  selector: { app: reviews, version: v3 }
  ports: [{ name: http, port: 80, targetPort: 9080 }]
---
apiVersion: v1
kind: Service
metadata: { name: legacy, namespace: bookinfo }
spec:
  ports: [{ name: http, port: 9080 }]
---
apiVersion: v1
kind: Service
metadata: { name: reviews, namespace: other }
spec:
  selector: { app: reviews }
  ports: [{ name: http, port: 9080 }]
`;

const endpoint = (
  proxyId: string,
  version: string,
  port: number,
  extra: Partial<RegisteredEndpoint> = {},
): RegisteredEndpoint => ({
  proxyId,
  namespace: 'bookinfo',
  serviceAccount: 'reviews',
  labels: { app: 'reviews', version },
  address: '127.0.0.1',
  port,
  appPort: 9080,
  ...extra,
});

const hello = (labels: Record<string, string>, extra: Partial<ProxyHello> = {}): ProxyHello => ({
  proxyId: 'sidecar~bookinfo~x',
  kind: 'sidecar',
  namespace: 'bookinfo',
  serviceAccount: 'reviews',
  labels,
  ...extra,
});

describe('mergeRegisteredEndpoints', () => {
  const snapshot = snapshotOf(SERVICES);
  const services = (r: RegisteredEndpoint[]) =>
    mergeRegisteredEndpoints(snapshot.services, r, 'cluster.local');
  const endpointsOf = (m: ReturnType<typeof services>, ns: string, name: string, port: number) =>
    m.services
      .find((s) => s.namespace === ns && s.name === name)
      ?.ports.find((p) => p.port === port)
      ?.endpoints.map((e) => e.port);

  it('adds a sidecar to the Services of its namespace whose selector matches, on the ports whose numeric targetPort is its app port', () => {
    const m = services([endpoint('a', 'v3', 16003), endpoint('b', 'v1', 16001)]);
    expect(endpointsOf(m, 'bookinfo', 'reviews', 9080)).toEqual([16001, 16003]);
    expect(endpointsOf(m, 'bookinfo', 'reviews-v3', 80)).toEqual([16003]);
    // A named targetPort matches no sidecar; a Service without a selector gets none.
    expect(endpointsOf(m, 'bookinfo', 'reviews', 9090)).toEqual([]);
    expect(endpointsOf(m, 'bookinfo', 'legacy', 9080)).toEqual([]);
    // Another namespace's Service with the same selector does not take it.
    expect(endpointsOf(m, 'other', 'reviews', 9080)).toEqual([]);
    expect(m.meshEndpoints['bookinfo/reviews-v3:80']).toEqual([
      {
        address: '127.0.0.1',
        port: 16003,
        spiffeId: 'spiffe://cluster.local/ns/bookinfo/sa/reviews',
      },
    ]);
    expect(Object.keys(m.meshEndpoints).sort()).toEqual([
      'bookinfo/reviews-v3:80',
      'bookinfo/reviews:9080',
    ]);
  });

  it('gives the same view version whatever order the sidecars registered in', () => {
    const a = endpoint('a', 'v3', 16003);
    const b = endpoint('b', 'v1', 16001);
    const ctx = (r: RegisteredEndpoint[]): ViewContext => ({
      snapshot,
      merged: services(r),
      trustDomain: 'cluster.local',
    });
    const h = hello({ app: 'productpage' });
    expect(cutView(ctx([a, b]), h).version).toBe(cutView(ctx([b, a]), h).version);
    expect(cutView(ctx([a]), h).version).not.toBe(cutView(ctx([a, b]), h).version);
  });

  it('keeps the version when the snapshot changes in a way the view does not see', () => {
    const extra = snapshotOf(`${SERVICES}---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: meshgate }
spec: { controllerName: meshgate.io/gateway-controller }
`);
    expect(extra.version).not.toBe(snapshot.version);
    const h = hello({ app: 'productpage' });
    const before = cutView({ snapshot, merged: services([]), trustDomain: 'cluster.local' }, h);
    const after = cutView(
      {
        snapshot: extra,
        merged: mergeRegisteredEndpoints(extra.services, [], 'cluster.local'),
        trustDomain: 'cluster.local',
      },
      h,
    );
    expect(after.version).toBe(before.version);
    expect(after.snapshotVersion).toBe(extra.version);
  });
});

describe('inbound policies of a sidecar', () => {
  const policy = (name: string, namespace: string, spec: string) => `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: ${name}, namespace: ${namespace} }
spec:
${spec}`;
  const snapshot = snapshotOf(
    [
      SERVICES,
      policy(
        'mesh-wide',
        'meshgate-system',
        '  action: DENY\n  rules: [{ to: [{ operation: { paths: [/admin] } }] }]\n',
      ),
      policy('namespace-wide', 'bookinfo', '  rules: [{}]\n'),
      policy('other-namespace', 'other', '  rules: [{}]\n'),
      policy(
        'v3-only',
        'bookinfo',
        '  selector: { matchLabels: { version: v3 } }\n  rules: [{}]\n',
      ),
      policy(
        'root-selector',
        'meshgate-system',
        '  selector: { matchLabels: { app: reviews } }\n  rules: [{}]\n',
      ),
      policy(
        'legacy-target',
        'bookinfo',
        '  targetRefs: [{ kind: Service, group: "", name: legacy }]\n  rules: [{}]\n',
      ),
      `---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: strict, namespace: bookinfo }
spec: { mtls: { mode: STRICT } }
`,
    ].join(''),
  );
  const ctx: ViewContext = {
    snapshot,
    merged: mergeRegisteredEndpoints(snapshot.services, [], 'cluster.local'),
    trustDomain: 'cluster.local',
  };
  const names = (h: ProxyHello) =>
    cutView(ctx, h).inbound?.authorizationPolicies.map((p) => `${p.namespace}/${p.name}`);

  it('selects mesh-wide, namespace, selector and root-namespace selector policies by the workload labels', () => {
    expect(names(hello({ app: 'reviews', version: 'v3' }))).toEqual([
      'bookinfo/namespace-wide',
      'bookinfo/v3-only',
      'meshgate-system/mesh-wide',
      'meshgate-system/root-selector',
    ]);
    expect(names(hello({ app: 'reviews', version: 'v1' }))).toEqual([
      'bookinfo/namespace-wide',
      'meshgate-system/mesh-wide',
      'meshgate-system/root-selector',
    ]);
    expect(
      cutView(ctx, hello({ app: 'reviews' })).inbound?.peerAuthentications.map((p) => p.name),
    ).toEqual(['strict']);
  });

  it('selects a policy that targets the Service the sidecar fronts', () => {
    expect(names(hello({ app: 'legacy' }, { service: 'legacy' }))).toEqual([
      'bookinfo/legacy-target',
      'bookinfo/namespace-wide',
      'meshgate-system/mesh-wide',
    ]);
    expect(names(hello({ app: 'legacy' }))).not.toContain('bookinfo/legacy-target');
  });

  it('gives a sidecar in another namespace only the mesh-wide and its own namespace policies', () => {
    expect(names(hello({ app: 'reviews', version: 'v3' }, { namespace: 'other' }))).toEqual([
      'meshgate-system/mesh-wide',
      'meshgate-system/root-selector',
      'other/other-namespace',
    ]);
  });
});
