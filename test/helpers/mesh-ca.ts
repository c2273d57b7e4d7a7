import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MeshCa, type MeshCaOptions } from '../../shared/identity/mesh-ca.ts';
import {
  createWorkloadCsr,
  credentialsFromGrant,
  type WorkloadCredentials,
} from '../../shared/identity/workload-identity.ts';
import { workloadSpiffeId } from '../../shared/identity/spiffe.ts';

export interface TestMeshCa {
  ca: MeshCa;
  dataDir: string;
  /** A key and a certificate for `namespace/serviceAccount`, as a proxy would get them. */
  credentials(namespace: string, serviceAccount: string): Promise<WorkloadCredentials>;
  /** Removes the data folder. */
  close(): Promise<void>;
}

/** A mesh CA with a fresh root in a temporary data folder. */
export async function createTestMeshCa(
  options: Omit<MeshCaOptions, 'dataDir'> = {},
): Promise<TestMeshCa> {
  const dataDir = await mkdtemp(join(tmpdir(), 'meshgate-ca-'));
  try {
    const ca = await MeshCa.open({ ...options, dataDir });
    return {
      ca,
      dataDir,
      async credentials(namespace, serviceAccount) {
        const identity = { namespace, serviceAccount, trustDomain: ca.trustDomain };
        const csr = await createWorkloadCsr(identity);
        const grant = await ca.issueWorkloadCertificate(csr.csrPem, identity);
        return credentialsFromGrant(csr, grant, workloadSpiffeId(identity), options.now?.());
      },
      close: () => rm(dataDir, { recursive: true, force: true }),
    };
  } catch (err) {
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
}
