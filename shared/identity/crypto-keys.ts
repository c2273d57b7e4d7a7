// Keys for the mesh: EC P-256 by default (fast TLS handshakes, small certificates), RSA accepted
// where an operator supplies an existing root or a proxy sends an RSA CSR. The CA's certificates
// are built with @peculiar/x509 on Node's WebCrypto (a proxy's CSR too, in a worker:
// csr-worker.ts); everything else uses node:crypto.

// @peculiar/x509 2.x resolves its algorithm providers through tsyringe, which needs the Reflect
// metadata API; reflect-metadata installs it (the library leaves the choice of polyfill to us).
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, createPublicKey, webcrypto, type KeyObject } from 'node:crypto';
import { IdentityError } from './errors.ts';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { x509 };

/** EC P-256 with SHA-256: the mesh's workload and root key type. */
export const EC_P256_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/** A private key ready to sign with WebCrypto, and the signature algorithm that goes with it. */
export interface SigningKey {
  privateKey: webcrypto.CryptoKey;
  signingAlgorithm: { name: string; hash: string };
}

/** A new extractable EC P-256 key pair. */
export async function generateEcKeyPair(): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(EC_P256_ALGORITHM, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
}

/** PKCS#8 PEM of an extractable private key (what Node's TLS takes as `key`). */
export async function privateKeyToPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })
    .export({ type: 'pkcs8', format: 'pem' })
    .toString();
}

const CURVES: Record<string, { namedCurve: string; hash: string }> = {
  prime256v1: { namedCurve: 'P-256', hash: 'SHA-256' },
  secp384r1: { namedCurve: 'P-384', hash: 'SHA-384' },
};

/** Why a public or private key is not one the mesh uses (EC P-256/P-384, RSA ≥ 2048), or undefined. */
export function keyProblem(key: KeyObject): string | undefined {
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec') {
    if (!CURVES[details.namedCurve ?? ''])
      return `EC curve ${details.namedCurve ?? '(unknown)'} is not supported (use P-256 or P-384)`;
    return undefined;
  }
  if (key.asymmetricKeyType === 'rsa') {
    if ((details.modulusLength ?? 0) < 2048)
      return `RSA keys must be at least 2048 bits (got ${details.modulusLength ?? 0})`;
    return undefined;
  }
  return `key type ${key.asymmetricKeyType ?? '(unknown)'} is not supported (use EC P-256 or RSA)`;
}

/** Imports a PEM private key (PKCS#8, SEC1 or PKCS#1) as a WebCrypto signing key. */
export async function importSigningKey(pem: string): Promise<SigningKey> {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new IdentityError('MG_ERR_CA_ROOT_INVALID', 'the root key is not a PEM private key', {
      cause: err,
    });
  }
  const problem = keyProblem(key);
  if (problem) throw new IdentityError('MG_ERR_CA_ROOT_INVALID', `root key: ${problem}`);
  const der = key.export({ type: 'pkcs8', format: 'der' });
  if (key.asymmetricKeyType === 'ec') {
    const curve = CURVES[key.asymmetricKeyDetails?.namedCurve ?? ''] as {
      namedCurve: string;
      hash: string;
    };
    const privateKey = await webcrypto.subtle.importKey(
      'pkcs8',
      der,
      { name: 'ECDSA', namedCurve: curve.namedCurve },
      false,
      ['sign'],
    );
    return { privateKey, signingAlgorithm: { name: 'ECDSA', hash: curve.hash } };
  }
  const rsa = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  const privateKey = await webcrypto.subtle.importKey('pkcs8', der, rsa, false, ['sign']);
  return { privateKey, signingAlgorithm: rsa };
}

/** The public key of a DER SubjectPublicKeyInfo as a Node KeyObject. */
export function publicKeyFromSpki(spki: ArrayBuffer | Uint8Array): KeyObject {
  const der = spki instanceof Uint8Array ? Buffer.from(spki) : Buffer.from(new Uint8Array(spki));
  return createPublicKey({ key: der, format: 'der', type: 'spki' });
}

/** A positive random 128-bit serial number, in hex (RFC 5280 §4.1.2.2: at most 20 octets). */
export function randomSerialNumber(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  // Clear the sign bit (serials are positive) and set the next one so DER keeps all 16 octets.
  bytes[0] = ((bytes[0] as number) & 0x7f) | 0x40;
  return Buffer.from(bytes).toString('hex');
}
