import { generateKeyPairSync } from 'node:crypto';
import forge from 'node-forge';

export interface TestCertificate {
  certPem: string;
  keyPem: string;
}

/**
 * A self-signed certificate for tests, generated at test time (no key is committed). Fixed
 * validity dates keep outputs that mention them stable.
 */
export function selfSignedCertificate(
  dnsNames: string[],
  options: { bits?: number; notBefore?: Date; notAfter?: Date } = {},
): TestCertificate {
  // Node generates the key natively (forge's pure-JS keygen takes seconds); forge signs the cert.
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: options.bits ?? 2048 });
  const keyPem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const forgeKey = forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.rsa.setPublicKey(forgeKey.n, forgeKey.e);
  cert.serialNumber = '01';
  cert.validity.notBefore = options.notBefore ?? new Date('2026-01-01T00:00:00Z');
  cert.validity.notAfter = options.notAfter ?? new Date('2036-01-01T00:00:00Z');
  const attrs = [{ name: 'commonName', value: dnsNames[0] ?? 'localhost' }];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: dnsNames.map((value) => ({ type: 2, value })) },
  ]);
  cert.sign(forgeKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem };
}

/** A kubernetes.io/tls Secret manifest holding the pair. */
export function tlsSecretYaml(namespace: string, name: string, pair: TestCertificate): string {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  return [
    'apiVersion: v1',
    'kind: Secret',
    'metadata:',
    `  name: ${name}`,
    `  namespace: ${namespace}`,
    'type: kubernetes.io/tls',
    'data:',
    `  tls.crt: ${b64(pair.certPem)}`,
    `  tls.key: ${b64(pair.keyPem)}`,
    '',
  ].join('\n');
}
