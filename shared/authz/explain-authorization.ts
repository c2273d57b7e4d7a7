// `meshgate explain --service NS/NAME (--from-principal P | --plaintext) …`: one hypothetical
// request to a Service's workloads, through the same compile and evaluate functions the sidecar
// runs, with the trace turned on. The workload is what the Service selects (its selector is the
// workload's labels); the port given is a Service port, mapped to its target (workload) port,
// which is what PeerAuthentication portLevelMtls and AuthorizationPolicy `ports` mean.

import type { JWTPayload } from 'jose';
import type { ServicePortIR, Snapshot } from '../config/snapshot.ts';
import type { PathNormalization } from '../routing/normalize-path.ts';
import {
  authorizeInbound,
  compileInboundPolicy,
  type CompiledInbound,
  type InboundDecision,
  type InboundRequest,
  type InboundTrace,
  type PolicyTrace,
} from './evaluate.ts';
import {
  authenticateClaims,
  authenticateToken,
  type JwksProvider,
} from './request-authentication.ts';

export interface AuthzExplainInput {
  /** "namespace/name" of the Service whose workloads receive the request. */
  service: string;
  /** A port of the Service (or, when it is none, the workload port itself). */
  port?: number;
  /** The caller's mesh identity ("cluster.local/ns/X/sa/Y"); mutually exclusive with plaintext. */
  fromPrincipal?: string;
  plaintext?: boolean;
  sourceIp?: string;
  remoteIp?: string;
  destinationIp?: string;
  sni?: string;
  /** A raw JWT, checked as if presented where the jwtRules read tokens. */
  jwt?: string;
  /** JWT claims taken as if their signature verified (issuer, audience and time still checked). */
  jwtClaims?: JWTPayload;
  headers?: Record<string, string>;
  method?: string;
  /** Path and query as sent. */
  path: string;
  host?: string;
}

export class AuthzExplainInputError extends Error {}

export interface AuthzExplanation {
  service: string;
  workload: { namespace: string; labels: Record<string, string> };
  /** The Service port asked for, when it is one. */
  port?: number;
  workloadPort: number;
  request: {
    method: string;
    path: string;
    host: string;
    caller: string;
    sourceIp?: string;
  };
  allow: boolean;
  status: InboundDecision['status'];
  mtls: InboundDecision['mtls'];
  plaintextRefused: boolean;
  decidedBy?: InboundDecision['decidedBy'];
  reason: string;
  peerPrincipal?: string;
  requestPrincipal?: string;
  /** The normalized path authorization saw. */
  normalizedPath?: string;
  peerAuthentication: InboundTrace['peerAuthentication'];
  requestAuthentication: InboundTrace['requestAuthentication'];
  policies: PolicyTrace[];
  notes: string[];
}

export interface AuthzExplainerOptions {
  jwks?: JwksProvider;
  pathNormalization?: PathNormalization;
  /** ms since epoch (token times). */
  now?: () => number;
}

/** Explains requests against one snapshot; compiles each Service's workload policy once. */
export class AuthzExplainer {
  private readonly compiled = new Map<string, CompiledInbound>();

  constructor(
    private readonly snapshot: Snapshot,
    private readonly options: AuthzExplainerOptions = {},
  ) {}

  async explain(input: AuthzExplainInput): Promise<AuthzExplanation> {
    if (input.plaintext && input.fromPrincipal)
      throw new AuthzExplainInputError('give either a caller principal or plaintext, not both');
    if (!input.plaintext && !input.fromPrincipal)
      throw new AuthzExplainInputError('give the caller: a principal, or plaintext');
    if (input.jwt !== undefined && input.jwtClaims !== undefined)
      throw new AuthzExplainInputError('give either a JWT or JWT claims, not both');
    if (!input.path) throw new AuthzExplainInputError('a path is required');
    const slash = input.service.indexOf('/');
    if (slash <= 0 || slash === input.service.length - 1)
      throw new AuthzExplainInputError(`"${input.service}" is not namespace/name`);
    const ns = input.service.slice(0, slash);
    const name = input.service.slice(slash + 1);
    const service = this.snapshot.services.find((s) => s.namespace === ns && s.name === name);
    if (!service)
      throw new AuthzExplainInputError(
        `no Service ${input.service} in the config: its selector gives the workload's labels`,
      );
    const notes: string[] = [];
    const labels = service.selector ?? {};
    if (Object.keys(labels).length === 0)
      notes.push(
        `Service ${input.service} has no selector: only mesh-wide and namespace-wide policies can apply`,
      );
    const { workloadPort, servicePort } = resolvePort(service.ports, input.port, notes);

    let compiled = this.compiled.get(input.service);
    if (!compiled) {
      compiled = compileInboundPolicy(
        this.snapshot,
        { namespace: ns, labels },
        {
          ...(this.options.jwks ? { jwks: this.options.jwks } : {}),
          ...(this.options.pathNormalization
            ? { pathNormalization: this.options.pathNormalization }
            : {}),
        },
      );
      this.compiled.set(input.service, compiled);
    }

    const method = (input.method ?? 'GET').toUpperCase();
    const host = input.host ?? input.headers?.host ?? `${name}.${ns}.svc.cluster.local`;
    if (input.host === undefined && input.headers?.host === undefined)
      notes.push(`host: ${host} (no host given: the Service's cluster name)`);
    const request: InboundRequest = {
      port: workloadPort,
      ...(input.fromPrincipal ? { peerPrincipal: input.fromPrincipal } : {}),
      ...(input.sourceIp !== undefined ? { sourceIp: input.sourceIp } : {}),
      ...(input.remoteIp !== undefined ? { remoteIp: input.remoteIp } : {}),
      ...(input.destinationIp !== undefined ? { destinationIp: input.destinationIp } : {}),
      ...(input.sni !== undefined ? { sni: input.sni } : {}),
      method,
      path: input.path,
      host,
      headers: input.headers ?? {},
    };
    const now = this.options.now ? { now: this.options.now } : {};
    const ra = compiled.requestAuthentication;
    if (input.jwt !== undefined) request.auth = await authenticateToken(ra, input.jwt, now);
    else if (input.jwtClaims !== undefined)
      request.auth = authenticateClaims(ra, input.jwtClaims, now);
    const d = await authorizeInbound(compiled, request, { trace: true, ...now });
    const trace = d.trace as InboundTrace;
    return {
      service: input.service,
      workload: { namespace: ns, labels },
      ...(servicePort !== undefined ? { port: servicePort } : {}),
      workloadPort,
      request: {
        method,
        path: input.path,
        host,
        caller: input.fromPrincipal ? input.fromPrincipal : 'plaintext',
        ...(input.sourceIp !== undefined ? { sourceIp: input.sourceIp } : {}),
      },
      allow: d.allow,
      status: d.status,
      mtls: d.mtls,
      plaintextRefused: d.plaintextRefused,
      ...(d.decidedBy ? { decidedBy: d.decidedBy } : {}),
      reason: d.reason,
      ...(d.peerPrincipal ? { peerPrincipal: d.peerPrincipal } : {}),
      ...(d.requestPrincipal ? { requestPrincipal: d.requestPrincipal } : {}),
      ...(d.path !== undefined ? { normalizedPath: d.path } : {}),
      peerAuthentication: trace.peerAuthentication,
      requestAuthentication: trace.requestAuthentication,
      policies: d.policies,
      notes: [...notes, ...trace.notes],
    };
  }
}

function resolvePort(
  ports: readonly ServicePortIR[],
  port: number | undefined,
  notes: string[],
): { workloadPort: number; servicePort?: number } {
  const target = (p: ServicePortIR): number => {
    if (typeof p.targetPort === 'number') return p.targetPort;
    notes.push(
      `port ${p.port} targets the named container port "${p.targetPort}", which only the Pod resolves: using ${p.port} as the workload port`,
    );
    return p.port;
  };
  if (port === undefined) {
    const first = ports[0];
    if (!first) throw new AuthzExplainInputError('the Service has no ports: give --port');
    return { workloadPort: target(first), servicePort: first.port };
  }
  const sp = ports.find((p) => p.port === port);
  if (sp) return { workloadPort: target(sp), servicePort: port };
  if (!ports.some((p) => p.targetPort === port))
    notes.push(`port ${port} is not a port of the Service: taken as the workload port`);
  return { workloadPort: port };
}

/** The text explain prints. */
export function formatAuthzExplanation(e: AuthzExplanation): string {
  const lines: string[] = [];
  const labels = Object.entries(e.workload.labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  lines.push(
    `${e.request.method} ${e.request.host}${e.request.path} at Service ${e.service}${e.port !== undefined ? ` port ${e.port}` : ''} → workload port ${e.workloadPort} (namespace ${e.workload.namespace}${labels ? `, labels ${labels}` : ''})`,
  );
  lines.push(
    `  caller: ${e.request.caller === 'plaintext' ? 'plaintext (no client certificate)' : `${e.request.caller} over mTLS`}${e.request.sourceIp ? `, source IP ${e.request.sourceIp}` : ''}`,
  );
  const pa = e.peerAuthentication;
  lines.push(
    `  peer authentication: ${pa.mode} (${pa.from})${e.plaintextRefused ? ': a plaintext caller is refused' : ''}`,
  );
  for (const p of pa.passedOver) lines.push(`    passed over ${p.policy}: ${p.reason}`);
  const ra = e.requestAuthentication;
  lines.push(
    `  request authentication: ${ra.outcome}${ra.policies.length ? ` [${ra.policies.map((p) => `${p.policy} (${p.selectedBy})`).join(', ')}]` : ''}`,
  );
  if (e.normalizedPath !== undefined && e.normalizedPath !== e.request.path.split('?')[0])
    lines.push(`  normalized path: ${e.normalizedPath}`);
  if (e.policies.length === 0 && !e.plaintextRefused && e.status !== 401)
    lines.push('  authorization: no AuthorizationPolicy selects the workload');
  if (e.policies.length > 0)
    lines.push('  authorization policies, in order (CUSTOM, DENY, ALLOW):');
  for (const p of e.policies) {
    const head = `    ${p.action.padEnd(6)} ${p.policy} (${p.selectedBy}): `;
    if (p.matched)
      lines.push(
        `${head}matches rule ${p.rule}${p.decided ? '  ← decides' : ' (decided already)'}`,
      );
    else lines.push(`${head}no match`);
    for (const r of p.reasons) lines.push(`      ${r}`);
  }
  for (const n of e.notes) lines.push(`  note: ${n}`);
  const verdict = e.plaintextRefused
    ? 'REFUSED'
    : e.allow
      ? `ALLOW (${e.status})`
      : `DENY (${e.status})`;
  lines.push(`  decision: ${verdict}: ${e.reason}`);
  return lines.join('\n');
}
