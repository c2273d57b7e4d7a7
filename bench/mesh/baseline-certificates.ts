// Certificates for the baselines' mutual TLS (rows 2 and 3), issued at bench time by the mesh CA
// that the control plane of rows 4 and 5 then loads from the same data folder: one root for every
// row, and no key committed anywhere. The server certificate carries 127.0.0.1 and localhost, so
// nginx and undici verify the hop by name as they do for any HTTPS upstream; the client
// certificate is what the second hop requires.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MeshCa } from '../../shared/identity/mesh-ca.ts';

export interface BaselineTls {
  /** The mesh root: what each hop trusts. */
  rootFile: string;
  serverCertFile: string;
  serverKeyFile: string;
  clientCertFile: string;
  clientKeyFile: string;
  rootPem: string;
}

/**
 * Opens (creates) the mesh CA in `dataDir` and writes a server and a client key and certificate
 * for the baselines into `dir`.
 */
export async function issueBaselineTls(
  dataDir: string,
  dir: string,
  namespace: string,
): Promise<BaselineTls> {
  const ca = await MeshCa.open({ dataDir });
  const [server, client] = await Promise.all([
    ca.issueServerCertificate({
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1'],
      namespace,
      serviceAccount: 'baseline-server',
    }),
    ca.issueServerCertificate({
      dnsNames: ['baseline-client'],
      ipAddresses: ['127.0.0.1'],
      namespace,
      serviceAccount: 'baseline-client',
    }),
  ]);
  mkdirSync(dir, { recursive: true });
  const write = (name: string, pem: string, mode = 0o644) => {
    const file = join(dir, name);
    writeFileSync(file, pem.endsWith('\n') ? pem : `${pem}\n`, { mode });
    return file;
  };
  return {
    rootPem: ca.rootPem,
    rootFile: write('root.pem', ca.rootPem),
    serverCertFile: write('server-cert.pem', server.certificatePem),
    serverKeyFile: write('server-key.pem', server.keyPem, 0o600),
    clientCertFile: write('client-cert.pem', client.certificatePem),
    clientKeyFile: write('client-key.pem', client.keyPem, 0o600),
  };
}
