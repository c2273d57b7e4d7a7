// Which identity a join token stands for, learned from the control plane: a proxy that is not
// told its namespace and service account (the edge gateway: "the token decides") asks for one
// certificate with the token and reads the SPIFFE id the CA put in it. The CA takes the identity
// from the token, never from the CSR, so the CSR's own name does not matter. Unreachable control
// plane: retried with backoff; a refused token: an error at once.

import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import * as undici from './undici-core.ts';
import type { CertificateGrant } from '../identity/mesh-ca.ts';
import { identityFromCertificate } from '../identity/peer-verification.ts';
import { createWorkloadCsr } from '../identity/workload-identity.ts';

export interface JoinIdentity {
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
  spiffeId: string;
}

export interface JoinIdentityOptions {
  /** The discovery URL, https://HOST:15010. */
  controlPlaneUrl: string;
  rootCaPem: string;
  tokenFile: string;
  /** Told about each failed attempt before the next one. */
  onRetry?: (error: Error, retryInMs: number) => void;
  /** Gives up (rejects) when aborted. */
  signal?: AbortSignal;
}

/** The control plane refused the token (unknown, expired): retrying will not help. */
export class JoinTokenRefused extends Error {
  override name = 'JoinTokenRefused';
}

export async function joinTokenIdentity(options: JoinIdentityOptions): Promise<JoinIdentity> {
  const agent = new undici.Agent({ connect: { ca: options.rootCaPem } });
  const base = options.controlPlaneUrl.replace(/\/+$/, '');
  try {
    for (let attempt = 1; ; attempt++) {
      options.signal?.throwIfAborted();
      try {
        const token = (await readFile(options.tokenFile, 'utf8')).trim();
        // Any well-formed name: the CA ignores it.
        const csr = await createWorkloadCsr({ namespace: 'unknown', serviceAccount: 'unknown' });
        const res = await undici.request(`${base}/v1/certificates`, {
          method: 'POST',
          dispatcher: agent,
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          body: JSON.stringify({ csr: csr.csrPem }),
          ...(options.signal ? { signal: options.signal } : {}),
        });
        const text = await res.body.text();
        if (res.statusCode === 401 || res.statusCode === 403)
          throw new JoinTokenRefused(
            `the control plane refused the join token: ${text.slice(0, 300)}`,
          );
        if (res.statusCode !== 200)
          throw new Error(
            `POST /v1/certificates answered ${res.statusCode}: ${text.slice(0, 300)}`,
          );
        const grant = JSON.parse(text) as CertificateGrant;
        const id = identityFromCertificate(new X509Certificate(grant.certificatePem));
        return {
          trustDomain: id.trustDomain,
          namespace: id.namespace,
          serviceAccount: id.serviceAccount,
          spiffeId: id.spiffeId,
        };
      } catch (err) {
        if (err instanceof JoinTokenRefused || options.signal?.aborted) throw err;
        const retryInMs = Math.min(30_000, 500 * 2 ** (attempt - 1));
        options.onRetry?.(err as Error, retryInMs);
        await new Promise((resolve) => setTimeout(resolve, retryInMs));
      }
    }
  } finally {
    await agent.destroy();
  }
}
