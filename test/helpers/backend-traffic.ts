// Config and upstreams for BackendTrafficPolicy traffic tests: one Gateway on port 80, Services
// whose endpoints are test upstreams on 127.0.0.1, HTTPRoutes and the policies that target them.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { startEchoServer, type EchoServer } from './echo-server.ts';
import { docs, GATEWAY_CLASS, gatewayYaml, multiEndpointServiceYaml } from './gateway-config.ts';

/** The Gateway (default/gw, port 80) every backend traffic test serves. */
export const GATEWAY = docs(
  GATEWAY_CLASS,
  gatewayYaml('default', 'gw', '    - { name: http, port: 80, protocol: HTTP }'),
);

/** A Service `name` (port 80) with one endpoint per upstream. */
export function serviceFor(name: string, upstreams: readonly EchoServer[]): string {
  return multiEndpointServiceYaml(
    'default',
    name,
    upstreams.map((u) => u.port),
  );
}

/** An HTTPRoute `name` on default/gw; `rules` is the YAML list under `rules:` (4-space indent). */
export function routeYaml(name: string, rules: string): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ${name}, namespace: default }
spec:
  parentRefs: [{ name: gw }]
  rules:
${rules}`;
}

/** A BackendTrafficPolicy on HTTPRoute `route`; `spec` is YAML indented by 2 under spec. */
export function backendTrafficPolicyYaml(name: string, route: string, spec: string): string {
  return `apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: { name: ${name}, namespace: default }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: ${route} }]
${spec}`;
}

/** Starts echo upstreams named `prefix-0`, `prefix-1`, …, all with the same handler. */
export async function startUpstreams(
  prefix: string,
  count: number,
  handler?: (name: string, req: IncomingMessage, res: ServerResponse) => boolean,
): Promise<EchoServer[]> {
  const out: EchoServer[] = [];
  for (let i = 0; i < count; i++) {
    const name = `${prefix}-${i}`;
    out.push(
      await startEchoServer(name, handler ? (req, res) => handler(name, req, res) : undefined),
    );
  }
  return out;
}

/** Requests held by an upstream until the test lets them go. */
export class HeldRequests {
  private readonly held: { name: string; res: ServerResponse }[] = [];
  private waiters: (() => void)[] = [];

  /** A handler that holds every request whose path starts with `prefix`. */
  handler(prefix: string) {
    return (name: string, req: IncomingMessage, res: ServerResponse): boolean => {
      if (!(req.url ?? '').startsWith(prefix)) return false;
      req.resume();
      this.held.push({ name, res });
      for (const w of this.waiters.splice(0)) w();
      return true;
    };
  }

  get count(): number {
    return this.held.length;
  }

  /** Which upstreams hold requests. */
  names(): string[] {
    return this.held.map((h) => h.name);
  }

  async waitFor(count: number, timeoutMs = 5_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (this.held.length < count) {
      if (Date.now() > until)
        throw new Error(`only ${this.held.length} of ${count} requests arrived`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 20);
      });
    }
  }

  /** Answers every held request 200 with the upstream's name. */
  releaseAll(): void {
    for (const { name, res } of this.held.splice(0)) {
      if (res.destroyed) continue;
      res.writeHead(200, { 'content-type': 'text/plain', 'x-upstream': name });
      res.end(name);
    }
  }
}

export async function closeAll(servers: readonly (EchoServer | undefined)[]): Promise<void> {
  await Promise.all(servers.map((s) => s?.close()));
}
