// PeerAuthentication: the mTLS mode a workload's inbound port runs in, decided once per snapshot.
//
// Istio's rules (pilot/pkg/security/authn ComposePeerAuthentication):
// - "It should have the setting from the most narrow scope (i.e workload-level is preferred over
//   namespace-level, which is preferred over mesh-level)."
// - "When there are more than one policy in the same scope (i.e workload-level), the oldest one
//   win."
// - "UNSET will be replaced with the setting from the parent. I.e UNSET port-level config will be
//   replaced with config from workload-level, UNSET in workload-level config will be replaced with
//   one in namespace-level and so on."
// - "If the input config list is empty, returns a default policy set to a PERMISSIVE."
// - A policy with a selector in the root namespace is not a workload policy and is ignored.
// portLevelMtls is keyed by the workload (container) port, not the Service port.

import type { IstioPolicyIR } from '../config/snapshot.ts';
import type { WorkloadRef } from './workload-selection.ts';

export type MtlsMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE';
type ModeOrUnset = MtlsMode | 'UNSET';

interface PeerAuthenticationSpecIR {
  mtls?: { mode?: ModeOrUnset };
  portLevelMtls?: Record<string, { mode?: ModeOrUnset }>;
}

export interface CompiledPeerAuthentication {
  /** The workload-wide mode after inheritance. */
  mode: MtlsMode;
  /** Where `mode` came from: "workload policy ns/name", "mesh policy …", "default". */
  modeFrom: string;
  /** Port-level modes (workload port → mode), UNSET already resolved to `mode`. */
  ports: ReadonlyMap<number, { mode: MtlsMode; from: string }>;
  /** The policies chosen per scope, and the ones passed over with why (for explain). */
  chosen: { mesh?: string; namespace?: string; workload?: string };
  passedOver: { policy: string; reason: string }[];
}

const key = (p: IstioPolicyIR) => `${p.namespace}/${p.name}`;

export function compilePeerAuthentication(
  policies: readonly IstioPolicyIR[],
  workload: WorkloadRef,
  rootNamespace: string,
): CompiledPeerAuthentication {
  // The compiler lists policies oldest first, so the first one found per scope is the winner.
  let mesh: IstioPolicyIR | undefined;
  let namespace: IstioPolicyIR | undefined;
  let wl: IstioPolicyIR | undefined;
  const passedOver: { policy: string; reason: string }[] = [];
  for (const p of policies) {
    if (p.selector === undefined) {
      if (p.namespace === rootNamespace) {
        if (mesh) passedOver.push({ policy: key(p), reason: `${key(mesh)} is older (mesh level)` });
        else mesh = p;
      } else if (p.namespace === workload.namespace) {
        if (namespace)
          passedOver.push({
            policy: key(p),
            reason: `${key(namespace)} is older (namespace level)`,
          });
        else namespace = p;
      }
      continue;
    }
    if (!Object.entries(p.selector).every(([k, v]) => workload.labels[k] === v)) continue;
    if (p.namespace === rootNamespace) {
      passedOver.push({
        policy: key(p),
        reason: 'a policy with a selector in the root namespace is ignored (Istio)',
      });
      continue;
    }
    if (p.namespace !== workload.namespace) continue;
    if (wl) passedOver.push({ policy: key(p), reason: `${key(wl)} is older (workload level)` });
    else wl = p;
  }

  let mode: MtlsMode = 'PERMISSIVE';
  let modeFrom = 'default: no PeerAuthentication sets a mode';
  for (const [level, p] of [
    ['mesh', mesh],
    ['namespace', namespace],
    ['workload', wl],
  ] as const) {
    const m = (p?.spec as PeerAuthenticationSpecIR | undefined)?.mtls?.mode;
    if (p && m && m !== 'UNSET') {
      mode = m;
      modeFrom = `${level} policy ${key(p)}`;
    }
  }
  const ports = new Map<number, { mode: MtlsMode; from: string }>();
  const portLevel = (wl?.spec as PeerAuthenticationSpecIR | undefined)?.portLevelMtls;
  if (wl && portLevel)
    for (const [port, setting] of Object.entries(portLevel)) {
      const m = setting.mode;
      ports.set(
        Number(port),
        m && m !== 'UNSET'
          ? { mode: m, from: `workload policy ${key(wl)} portLevelMtls ${port}` }
          : { mode, from: `${modeFrom} (portLevelMtls ${port} is UNSET)` },
      );
    }
  return {
    mode,
    modeFrom,
    ports,
    chosen: {
      ...(mesh ? { mesh: key(mesh) } : {}),
      ...(namespace ? { namespace: key(namespace) } : {}),
      ...(wl ? { workload: key(wl) } : {}),
    },
    passedOver,
  };
}

/** The mode for one workload port. */
export function mtlsModeForPort(pa: CompiledPeerAuthentication, port: number): MtlsMode {
  return pa.ports.get(port)?.mode ?? pa.mode;
}

/** Where the port's mode came from, for explain. */
export function mtlsModeSource(pa: CompiledPeerAuthentication, port: number): string {
  return pa.ports.get(port)?.from ?? pa.modeFrom;
}
