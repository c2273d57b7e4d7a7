// `meshgate gateway` as a mesh client, for tests: joined to a control plane with a token of the
// gateway identity (meshgate-system/meshgate-gateway), the mesh root pinned, its listeners moved
// by a free port offset.

import { startGateway, type GatewayProcess } from './gateway-process.ts';
import { findPortOffset } from './ports.ts';
import { caFileFor, type ControlPlaneAccess } from './sidecar-process.ts';

export async function startMeshGateway(
  cp: ControlPlaneAccess,
  options: { workers?: number; ports?: readonly number[] } = {},
): Promise<{ gateway: GatewayProcess; offset: number }> {
  const offset = await findPortOffset(options.ports ?? [80]);
  const gateway = startGateway([
    '--control-plane',
    cp.discoveryUrl,
    '--token',
    await cp.tokenFile('meshgate-system', 'meshgate-gateway'),
    '--control-plane-ca',
    await caFileFor(cp.rootPem),
    '--port-offset',
    String(offset),
    '--workers',
    String(options.workers ?? 2),
  ]);
  return { gateway, offset };
}
