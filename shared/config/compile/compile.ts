import type { Resource } from '../resource.ts';
import type { Snapshot, TLSCertificateIR } from '../snapshot.ts';
import type { ResourceStatus } from './conditions.ts';
import { compileApiDefinitions } from './api-definitions.ts';
import { CompileContext, type CompileOptions } from './context.ts';
import { compileGatewayClasses, compileGateways, finishGateway } from './gateways.ts';
import { compileHTTPRoutes } from './http-routes.ts';
import { compileMeshSecurity } from './mesh-security.ts';
import { compilePolicies } from './policies.ts';
import { collectPolicySecrets } from './policy-secrets.ts';
import { compileServices } from './services.ts';
import { contentVersion, deepFreeze } from './snapshot-version.ts';

export interface CompileResult {
  snapshot: Snapshot;
  statuses: ResourceStatus[];
}

/**
 * Resources → Snapshot + statuses, as one linear script. A user's mistake becomes a condition on
 * the resource at fault and leaves that resource (or rule) out; it never stops the compile.
 */
export function compile(
  resources: readonly Resource[],
  options: CompileOptions = {},
): CompileResult {
  const ctx = new CompileContext(resources, options);
  const certificates = new Map<string, TLSCertificateIR>();

  const gatewayClasses = compileGatewayClasses(ctx);
  const gateways = compileGateways(ctx, gatewayClasses, certificates);
  const routes = compileHTTPRoutes(ctx, gateways);
  for (const g of gateways) finishGateway(ctx, g);
  const services = compileServices(ctx, routes.meshAttachments);
  for (const svc of ctx.list('Service')) ctx.setStatus(svc, { loadBalancer: {} });
  for (const ns of ctx.list('Namespace')) ctx.setStatus(ns, { phase: 'Active' });
  const policies = compilePolicies(ctx, gateways, routes, services);
  const meshSecurity = compileMeshSecurity(ctx, gateways);
  const apis = compileApiDefinitions(ctx, routes, options.readFile);

  const content: Omit<Snapshot, 'version'> = {
    controllerName: ctx.controllerName,
    rootNamespace: ctx.rootNamespace,
    gatewayClasses,
    gateways: gateways.map((g) => g.ir),
    routes: routes.routes,
    services,
    tlsCertificates: [...certificates.values()].sort((a, b) => (a.secret < b.secret ? -1 : 1)),
    policies: policies.policies,
    effectivePolicies: policies.effectivePolicies,
    policySecrets: collectPolicySecrets(ctx, policies.effectivePolicies),
    meshSecurity,
    apis,
  };
  const snapshot: Snapshot = deepFreeze({ version: contentVersion(content), ...content });
  return { snapshot, statuses: ctx.allStatuses() };
}
