import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compile } from '../../shared/config/compile/compile.ts';
import type { Condition } from '../../shared/config/compile/conditions.ts';
import { parseTexts } from '../../shared/config/parse.ts';
import { selfSignedCertificate, tlsSecretYaml } from '../helpers/tls.ts';

// The statuses the Gateway API conformance suite expects for its invalid-route tests
// (kubernetes-sigs/gateway-api conformance/tests/*.go), on the suite's own manifests.

const ROOT = join(import.meta.dirname, '../../../shared/conformance/gateway-api/manifests');
const CLASS = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: meshgate }
spec: { controllerName: meshgate.io/gateway-controller }
`;

// The suite creates this Secret at start; so do we, so that no key is committed.
const SUITE_SECRET = tlsSecretYaml(
  'gateway-conformance-infra',
  'tls-validity-checks-certificate',
  selfSignedCertificate(['*.wildcard.org', 'second-example.org', 'example.org'], { bits: 1024 }),
);

function compileWithBase(testFile: string) {
  const read = (f: string) =>
    readFileSync(join(ROOT, f), 'utf8').replaceAll('{GATEWAY_CLASS_NAME}', 'meshgate');
  const parsed = parseTexts([
    { file: 'class.yaml', text: CLASS },
    { file: 'base/manifests.yaml', text: read('base/manifests.yaml') },
    { file: testFile, text: read(testFile) },
    { file: 'suite-secret.yaml', text: SUITE_SECRET },
  ]);
  expect(parsed.errors).toEqual([]);
  return compile(parsed.resources, { now: new Date(0) });
}

function routeConditions(
  result: ReturnType<typeof compile>,
  ns: string,
  name: string,
): Record<string, Pick<Condition, 'status' | 'reason'>> {
  const s = result.statuses.find(
    (x) => x.kind === 'HTTPRoute' && x.metadata.namespace === ns && x.metadata.name === name,
  );
  const parents = (s?.status.parents ?? []) as { conditions: Condition[] }[];
  expect(parents.length, `${ns}/${name} has a parent status`).toBeGreaterThan(0);
  return Object.fromEntries(
    (parents[0] as { conditions: Condition[] }).conditions.map((c) => [
      c.type,
      { status: c.status, reason: c.reason },
    ]),
  );
}

const INFRA = 'gateway-conformance-infra';

const cases: [
  file: string,
  ns: string,
  route: string,
  expected: Record<string, { status: string; reason: string }>,
][] = [
  [
    'tests/httproute-invalid-backendref-unknown-kind.yaml',
    INFRA,
    'invalid-backend-ref-unknown-kind',
    {
      Accepted: { status: 'True', reason: 'Accepted' },
      ResolvedRefs: { status: 'False', reason: 'InvalidKind' },
    },
  ],
  [
    'tests/httproute-invalid-cross-namespace-backend-ref.yaml',
    INFRA,
    'invalid-cross-namespace-backend-ref',
    {
      Accepted: { status: 'True', reason: 'Accepted' },
      ResolvedRefs: { status: 'False', reason: 'RefNotPermitted' },
    },
  ],
  [
    'tests/httproute-invalid-cross-namespace-parent-ref.yaml',
    'gateway-conformance-web-backend',
    'invalid-cross-namespace-parent-ref',
    { Accepted: { status: 'False', reason: 'NotAllowedByListeners' } },
  ],
  [
    'tests/httproute-invalid-nonexistent-backendref.yaml',
    INFRA,
    'invalid-nonexistent-backend-ref',
    {
      Accepted: { status: 'True', reason: 'Accepted' },
      ResolvedRefs: { status: 'False', reason: 'BackendNotFound' },
    },
  ],
  [
    'tests/httproute-invalid-parentref-not-matching-listener-port.yaml',
    INFRA,
    'httproute-listener-not-matching-route-port',
    { Accepted: { status: 'False', reason: 'NoMatchingParent' } },
  ],
  [
    'tests/httproute-invalid-parentref-not-matching-section-name.yaml',
    INFRA,
    'httproute-listener-not-matching-section-name',
    { Accepted: { status: 'False', reason: 'NoMatchingParent' } },
  ],
  [
    'tests/httproute-invalid-parentref-section-name-not-matching-port.yaml',
    INFRA,
    'httproute-listener-section-name-not-matching-port',
    { Accepted: { status: 'False', reason: 'NoMatchingParent' } },
  ],
  [
    'tests/httproute-invalid-reference-grant.yaml',
    INFRA,
    'reference-grant',
    {
      Accepted: { status: 'True', reason: 'Accepted' },
      ResolvedRefs: { status: 'False', reason: 'RefNotPermitted' },
    },
  ],
  [
    'tests/httproute-partially-invalid-via-invalid-reference-grant.yaml',
    INFRA,
    'invalid-reference-grant',
    {
      Accepted: { status: 'True', reason: 'Accepted' },
      ResolvedRefs: { status: 'False', reason: 'RefNotPermitted' },
    },
  ],
  [
    'tests/httproute-disallowed-kind.yaml',
    INFRA,
    'disallowed-kind',
    { Accepted: { status: 'False', reason: 'NotAllowedByListeners' } },
  ],
  [
    'tests/httproute-hostname-intersection.yaml',
    INFRA,
    'no-intersecting-hosts',
    { Accepted: { status: 'False', reason: 'NoMatchingListenerHostname' } },
  ],
  [
    'tests/httproute-reference-grant.yaml',
    INFRA,
    'reference-grant',
    {
      Accepted: { status: 'True', reason: 'Accepted' },
      ResolvedRefs: { status: 'True', reason: 'ResolvedRefs' },
    },
  ],
  [
    'tests/httproute-simple-same-namespace.yaml',
    INFRA,
    'gateway-conformance-infra-test',
    {
      Accepted: { status: 'True', reason: 'Accepted' },
      ResolvedRefs: { status: 'True', reason: 'ResolvedRefs' },
    },
  ],
];

describe('Gateway API conformance: route statuses', () => {
  for (const [file, ns, route, expected] of cases) {
    it(`${file}: ${ns}/${route}`, () => {
      const got = routeConditions(compileWithBase(file), ns, route);
      for (const [type, want] of Object.entries(expected)) expect(got[type], type).toEqual(want);
    });
  }

  it('base manifests: every Gateway of the suite is accepted and its listeners attach routes', () => {
    const result = compileWithBase('tests/httproute-simple-same-namespace.yaml');
    const gateways = result.statuses.filter((s) => s.kind === 'Gateway');
    expect(gateways.length).toBeGreaterThan(3);
    for (const g of gateways) {
      const accepted = (g.status.conditions as Condition[]).find((c) => c.type === 'Accepted');
      expect(accepted?.status, `${g.metadata.name}: ${accepted?.message}`).toBe('True');
    }
  });
});
