// A proxy's view from the control plane (shared/discovery/protocol.ts ProxyView) in the shape of a
// Snapshot, so that the structures the data plane builds from a snapshot (EdgeView, route tables,
// compileInboundPolicy) are built the same way whether the config came from a folder or from the
// control plane. The view is already cut for one proxy: what it leaves out (other gateways,
// policies as attached, statuses) the data plane does not read.

import { DEFAULT_CONTROLLER_NAME } from '../config/compile/context.ts';
import type { Snapshot } from '../config/snapshot.ts';
import type { ProxyView } from '../discovery/protocol.ts';

export function snapshotOfView(view: ProxyView): Snapshot {
  return {
    // The view's version, not the snapshot's: two proxies cut different views from one snapshot,
    // and a view changes when only its endpoints do.
    version: view.version,
    controllerName: DEFAULT_CONTROLLER_NAME,
    rootNamespace: view.rootNamespace,
    gatewayClasses: [],
    gateways: view.gateways,
    routes: view.routes,
    services: view.services,
    tlsCertificates: view.tlsCertificates,
    policies: [],
    effectivePolicies: view.effectivePolicies,
    policySecrets: view.policySecrets,
    meshSecurity: view.inbound ?? {
      peerAuthentications: [],
      authorizationPolicies: [],
      requestAuthentications: [],
    },
    apis: view.apis,
  };
}
