// Builders for the authz unit tables: YAML through the real parser and compiler (so the tables
// exercise what a user would write), one workload, one request description.

import {
  compileInboundPolicy,
  evaluateInbound,
  type CompiledInbound,
  type InboundDecision,
  type InboundPolicyOptions,
  type InboundRequest,
} from '../../shared/authz/evaluate.ts';
import type { WorkloadRef } from '../../shared/authz/workload-selection.ts';
import { compile } from '../../shared/config/compile/compile.ts';
import { allConditions, isProblem } from '../../shared/config/compile/conditions.ts';
import { formatConfigError } from '../../shared/config/errors.ts';
import { parseTexts } from '../../shared/config/parse.ts';
import type { IstioPolicyIR, Snapshot } from '../../shared/config/snapshot.ts';

export const ROOT = 'istio-system';
/** The workload of Istio's reference examples: app=httpbin in namespace foo. */
export const HTTPBIN: WorkloadRef = { namespace: 'foo', labels: { app: 'httpbin', version: 'v1' } };
export const SLEEP = 'cluster.local/ns/default/sa/sleep';

/** Compiles YAML documents with Istio's root namespace; any refused security policy throws. */
export function snapshotOf(yaml: string, rootNamespace = ROOT): Snapshot {
  const parsed = parseTexts([{ file: 'policies.yaml', text: yaml }]);
  if (parsed.errors.length > 0) throw new Error(parsed.errors.map(formatConfigError).join('\n'));
  const { snapshot, statuses } = compile(parsed.resources, { rootNamespace });
  const problems = statuses.flatMap((s) =>
    allConditions(s.status)
      .filter(isProblem)
      .map((c) => `${s.kind}/${s.metadata.namespace}/${s.metadata.name}: ${c.message}`),
  );
  if (problems.length > 0) throw new Error(problems.join('\n'));
  return snapshot;
}

export function inbound(
  yaml: string,
  workload: WorkloadRef = HTTPBIN,
  options: InboundPolicyOptions = {},
): CompiledInbound {
  return compileInboundPolicy(snapshotOf(yaml), workload, options);
}

/** A snapshot made of IR directly, for shapes the compiler refuses (CUSTOM, AUDIT). */
export function snapshotOfIR(
  authorizationPolicies: IstioPolicyIR[],
  rest: Partial<Snapshot['meshSecurity']> = {},
): Pick<Snapshot, 'meshSecurity' | 'rootNamespace' | 'services'> {
  return {
    rootNamespace: ROOT,
    services: [],
    meshSecurity: {
      peerAuthentications: rest.peerAuthentications ?? [],
      requestAuthentications: rest.requestAuthentications ?? [],
      authorizationPolicies,
    },
  };
}

/** An mTLS GET / from sleep in default to port 8080 unless told otherwise. */
export function req(over: Partial<InboundRequest> = {}): InboundRequest {
  return {
    port: 8080,
    peerPrincipal: SLEEP,
    sourceIp: '10.0.0.5',
    destinationIp: '10.0.1.9',
    method: 'GET',
    path: '/',
    host: 'httpbin.foo.svc.cluster.local',
    headers: {},
    ...over,
  };
}

export function plaintext(over: Partial<InboundRequest> = {}): InboundRequest {
  const r = req(over);
  delete r.peerPrincipal;
  return r;
}

export function decide(c: CompiledInbound, r: InboundRequest = req()): InboundDecision {
  return evaluateInbound(c, r);
}

/** "ns/name rule i" of the decision, or "" when no policy decided. */
export function by(d: InboundDecision): string {
  return d.decidedBy ? `${d.decidedBy.policy} rule ${d.decidedBy.rule}` : '';
}

/** An AuthorizationPolicy on httpbin in foo with the given spec body (indented YAML). */
export function policyYaml(name: string, body: string, namespace = 'foo'): string {
  return `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: ${name}, namespace: ${namespace} }
spec:
${body
  .split('\n')
  .map((l) => `  ${l}`)
  .join('\n')}
`;
}
