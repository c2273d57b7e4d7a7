// The cast Istio's security integration tests run with, as the rendered policies in
// shared/conformance/istio-authz/policies assume it: namespaces ns1 and ns2, workloads a, b and c
// (labels app: a, …; service account = workload name), the ingress gateway in istio-system, and
// the echo ports (pkg/test/framework/components/echo/common/ports: http 80→18080, grpc
// 7070→17070, http2 85→18085, tcp 9090→19090). Pod addresses are the ones the rendered
// TestAuthz_Conditions policies name (a in ns1 is 10.10.1.1, a in ns2 10.10.2.1, b in ns1
// 10.10.1.2).

import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { JWTPayload } from 'jose';
import type { WorkloadRef } from '../../shared/authz/workload-selection.ts';
import { compile } from '../../shared/config/compile/compile.ts';
import { formatConfigError } from '../../shared/config/errors.ts';
import { parseTexts } from '../../shared/config/parse.ts';
import type { Snapshot } from '../../shared/config/snapshot.ts';

export const CONFORMANCE_DIR = fileURLToPath(
  new URL('../../../shared/conformance/istio-authz/policies', import.meta.url),
);
export const ISTIO_ROOT_NAMESPACE = 'istio-system';

/** Workload ports (what `ports`, `destination.port` and portLevelMtls mean). */
export const PORT = { http: 18080, http2: 18085, grpc: 17070, tcp: 19090, httpWorkloadOnly: 18083 };

export interface Caller {
  principal: string;
  ip: string;
}

export const CALLERS: Record<string, Caller> = {
  'ns1/a': { principal: 'cluster.local/ns/ns1/sa/a', ip: '10.10.1.1' },
  'ns2/a': { principal: 'cluster.local/ns/ns2/sa/a', ip: '10.10.2.1' },
  'ns1/c': { principal: 'cluster.local/ns/ns1/sa/c', ip: '10.10.1.3' },
  ingress: {
    principal: 'cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account',
    ip: '10.10.0.10',
  },
};

/** Workloads by "ns/service"; the labels are what the Service of that name selects. */
export const WORKLOADS: Record<string, WorkloadRef & { ip: string }> = {
  'ns1/a': { namespace: 'ns1', labels: { app: 'a' }, ip: '10.10.1.1' },
  'ns1/b': { namespace: 'ns1', labels: { app: 'b' }, ip: '10.10.1.2' },
  'ns1/c': { namespace: 'ns1', labels: { app: 'c' }, ip: '10.10.1.3' },
  'ns2/a': { namespace: 'ns2', labels: { app: 'a' }, ip: '10.10.2.1' },
  'ns2/b': { namespace: 'ns2', labels: { app: 'b' }, ip: '10.10.2.2' },
  'ns2/c': { namespace: 'ns2', labels: { app: 'c' }, ip: '10.10.2.3' },
  // Istio's WorkloadSelector test relabels b with foo=bla; a Service selecting both stands for it.
  'ns1/b-bla': { namespace: 'ns1', labels: { app: 'b', foo: 'bla' }, ip: '10.10.1.4' },
  'istio-system/istio-ingressgateway': {
    namespace: 'istio-system',
    labels: { app: 'istio-ingressgateway', istio: 'ingressgateway' },
    ip: '10.10.0.10',
  },
};

/** Services for the cast, so that `meshgate explain --service NS/NAME` finds each workload. */
export function castServicesYaml(): string {
  return Object.entries(WORKLOADS)
    .map(([key, w]) => {
      const name = key.slice(key.indexOf('/') + 1);
      const selector = Object.entries(w.labels)
        .map(([k, v]) => `${k}: ${v}`)
        .join(', ');
      return `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: ${w.namespace} }
spec:
  selector: { ${selector} }
  ports:
    - { name: http, port: 80, targetPort: ${PORT.http} }
    - { name: grpc, port: 7070, targetPort: ${PORT.grpc} }
    - { name: http2, port: 85, targetPort: ${PORT.http2} }
    - { name: tcp, port: 9090, targetPort: ${PORT.tcp} }
`;
    })
    .join('---\n');
}

export async function readConformance(file: string): Promise<string> {
  return readFile(`${CONFORMANCE_DIR}/${file}`, 'utf8');
}

/** Parses and compiles the given documents with Istio's root namespace; parse errors throw. */
export function compileTexts(
  texts: { file: string; text: string }[],
  rootNamespace = ISTIO_ROOT_NAMESPACE,
): Snapshot {
  const parsed = parseTexts(texts);
  if (parsed.errors.length > 0)
    throw new Error(parsed.errors.map((e) => formatConfigError(e)).join('\n'));
  return compile(parsed.resources, { rootNamespace }).snapshot;
}

/**
 * The payloads of Istio's sample tokens (tests/common/jwt/jwt_token.go); the tests sign them with
 * their own key. Far-future `exp` values are Istio's.
 */
export const ISTIO_TOKENS = {
  TokenIssuer1: {
    exp: 4715782722,
    groups: ['group-1'],
    iat: 1562182722,
    iss: 'test-issuer-1@istio.io',
    sub: 'sub-1',
  },
  TokenIssuer1WithAud: {
    aud: 'foo',
    exp: 4732994801,
    iat: 1579394801,
    iss: 'test-issuer-1@istio.io',
    sub: 'sub-1',
  },
  TokenIssuer1WithAzp: {
    azp: 'bar',
    exp: 4734125453,
    iat: 1580525453,
    iss: 'test-issuer-1@istio.io',
    sub: 'sub-1',
  },
  TokenIssuer1WithNestedClaims1: {
    exp: 4757607896,
    iat: 1604007896,
    iss: 'test-issuer-1@istio.io',
    nested: { key1: ['valueA', 'valueB'], 'nested-2': { key1: ['valueA', 'valueB'] } },
    sub: 'sub-1',
  },
  TokenIssuer1WithNestedClaims2: {
    exp: 4757608018,
    iat: 1604008018,
    iss: 'test-issuer-1@istio.io',
    nested: { key2: 'valueC', 'nested-2': { key2: 'valueC' } },
    sub: 'sub-1',
  },
  TokenIssuer2: {
    exp: 4715782783,
    groups: ['group-2'],
    iat: 1562182783,
    iss: 'test-issuer-2@istio.io',
    sub: 'sub-2',
  },
  TokenIssuer2WithSpaceDelimitedScope: {
    exp: 4730732495,
    iat: 1577132495,
    iss: 'test-issuer-2@istio.io',
    permission: 'read write',
    sub: 'sub-2',
  },
  TokenExpired: {
    exp: 1562182856,
    groups: ['group-1'],
    iat: 1562182855,
    iss: 'test-issuer-1@istio.io',
    sub: 'sub-1',
  },
} satisfies Record<string, JWTPayload>;

export type IstioTokenName = keyof typeof ISTIO_TOKENS;
