// Workload certificates for test callers, signed by a control plane's CA (its data folder holds
// the root key) or by a CA of their own, and undici pools that present them: mesh callers
// without a sidecar, to knock on a sidecar's inbound port as any identity.

import { MeshCa } from '../../shared/identity/mesh-ca.ts';
import type { MtlsCredentials } from '../../shared/identity/peer-verification.ts';
import { workloadSpiffeId } from '../../shared/identity/spiffe.ts';
import {
  createWorkloadCsr,
  credentialsFromGrant,
  type WorkloadCredentials,
} from '../../shared/identity/workload-identity.ts';
import { Pool, type Dispatcher } from 'undici';

export interface IssueOptions {
  /** Lifetime; the CA's default (24 h) when absent. */
  ttlMs?: number;
  /** Issue as if it were this time (ms since the epoch): an expired certificate, for one. */
  at?: number;
}

/** A key and certificate for `namespace/serviceAccount`, signed by the CA kept in `dataDir`. */
export async function issueCredentials(
  dataDir: string,
  namespace: string,
  serviceAccount: string,
  options: IssueOptions = {},
): Promise<WorkloadCredentials> {
  const at = options.at;
  const ca = await MeshCa.open({
    dataDir,
    ...(at !== undefined ? { now: () => at } : {}),
    ...(options.ttlMs !== undefined ? { workloadTtlMs: options.ttlMs } : {}),
  });
  const identity = { namespace, serviceAccount, trustDomain: ca.trustDomain };
  const csr = await createWorkloadCsr(identity);
  const grant = await ca.issueWorkloadCertificate(csr.csrPem, identity);
  return credentialsFromGrant(csr, grant, workloadSpiffeId(identity), at);
}

export interface MtlsPoolOptions {
  /** Trust anchor for the server's certificate; the credentials' root when absent. */
  rootPem?: string;
  /** SNI to send. */
  servername?: string;
}

/**
 * A pool to a sidecar's inbound port presenting `credentials` (or no certificate at all). The
 * server's chain is verified; its identity is not checked (tests dial by IP and look at XFCC).
 */
export function mtlsPool(
  origin: string,
  credentials: MtlsCredentials | undefined,
  options: MtlsPoolOptions = {},
): Pool {
  const root = options.rootPem ?? credentials?.rootPem;
  const sent = credentials?.chainPem.filter((p) => p.trim() !== credentials.rootPem.trim());
  const pool = new Pool(origin, {
    connect: {
      ...(credentials ? { key: credentials.keyPem, cert: (sent ?? []).join('') } : {}),
      ...(root ? { ca: root } : {}),
      rejectUnauthorized: true,
      checkServerIdentity: () => undefined,
      maxCachedSessions: 0,
      ...(options.servername ? { servername: options.servername } : {}),
    },
    connections: 4,
    pipelining: 1,
  });
  const servername = options.servername;
  if (!servername) return pool;
  // undici takes the SNI from each request's Host header unless the request names one.
  return pool.compose(
    (dispatch) => (opts, handler) =>
      dispatch({ ...opts, servername } as Dispatcher.DispatchOptions, handler),
  ) as Pool;
}
