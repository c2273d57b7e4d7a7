import { createPrivateKey, X509Certificate } from 'node:crypto';
import type { Resource } from '../resource.ts';
import type { SecretBody } from '../schemas/kubernetes.ts';
import type { TLSCertificateIR } from '../snapshot.ts';

/** A value of a Secret: `stringData` wins over `data` (base64), as the API server merges them. */
export function secretValue(secret: Resource<SecretBody>, key: string): string | undefined {
  const plain = secret.spec.stringData?.[key];
  if (plain !== undefined) return plain;
  const encoded = secret.spec.data?.[key];
  return encoded === undefined ? undefined : Buffer.from(encoded, 'base64').toString('utf8');
}

/** Reads a kubernetes.io/tls Secret; returns the reason it cannot serve TLS if it cannot. */
export function loadTLSSecret(secret: Resource<SecretBody>): TLSCertificateIR | { error: string } {
  const name = `${secret.metadata.namespace}/${secret.metadata.name}`;
  if (secret.spec.type !== 'kubernetes.io/tls')
    return { error: `Secret ${name} is of type ${secret.spec.type}, not kubernetes.io/tls` };
  const certPem = secretValue(secret, 'tls.crt');
  const keyPem = secretValue(secret, 'tls.key');
  if (!certPem || !keyPem) return { error: `Secret ${name} lacks tls.crt or tls.key` };
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    return {
      error: `Secret ${name}: tls.crt is not a PEM certificate (${(err as Error).message})`,
    };
  }
  try {
    const key = createPrivateKey(keyPem);
    if (!cert.checkPrivateKey(key))
      return { error: `Secret ${name}: tls.key does not match tls.crt` };
  } catch (err) {
    return {
      error: `Secret ${name}: tls.key is not a PEM private key (${(err as Error).message})`,
    };
  }
  return {
    secret: name,
    certPem,
    keyPem,
    dnsNames: dnsNamesOf(cert),
    notAfter: new Date(cert.validTo).toISOString(),
  };
}

function dnsNamesOf(cert: X509Certificate): string[] {
  const names = (cert.subjectAltName ?? '')
    .split(/,\s*/)
    .filter((s) => s.startsWith('DNS:'))
    .map((s) => s.slice(4).toLowerCase());
  if (names.length > 0) return names;
  const cn = /CN=([^\n,]+)/.exec(cert.subject)?.[1];
  return cn ? [cn.toLowerCase()] : [];
}
