// The mesh CA: one root that signs every workload certificate (X.509-SVIDs) and the control
// plane's own server certificate. The root is generated on first start and kept in the data
// folder (`ca/root-key.pem`, mode 0600, and `ca/root-cert.pem`), or supplied by the operator.
//
// Workload certificates follow the X.509-SVID profile (SPIFFE X509-SVID.md): exactly one URI SAN,
// the SPIFFE id, set by the CA from the identity the caller authenticated (a join token or a
// ServiceAccount token), never from the CSR; not a CA; digitalSignature (+ keyEncipherment for
// RSA peers) and serverAuth + clientAuth, since every sidecar is both a TLS server and client.

import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import {
  generateEcKeyPair,
  importSigningKey,
  keyProblem,
  privateKeyToPem,
  publicKeyFromSpki,
  randomSerialNumber,
  x509,
  type SigningKey,
} from './crypto-keys.ts';
import { IdentityError } from './errors.ts';
import { splitPemCertificates } from './pem.ts';
import {
  DEFAULT_TRUST_DOMAIN,
  formatSpiffeId,
  namespaceProblem,
  serviceAccountProblem,
  trustDomainProblem,
  workloadSpiffeId,
} from './spiffe.ts';

const HOUR_MS = 3_600_000;
export const DEFAULT_WORKLOAD_TTL_MS = 24 * HOUR_MS;
/** Certificates start this far in the past, so a peer whose clock runs behind accepts them. */
export const DEFAULT_BACKDATE_MS = 5 * 60_000;
/**
 * The backdate is at most this fraction of the certificate's lifetime: 5 min before a 20 s
 * certificate would make most of its validity lie in the past, and any renewal clock that reads
 * notBefore would find it due on arrival. Short lifetimes trade clock-skew tolerance for that.
 */
export const MAX_BACKDATE_FRACTION = 0.1;
export const DEFAULT_ROOT_TTL_MS = 10 * 365 * 24 * HOUR_MS;
/** Where the control plane's own identity lives, as Istio's istiod lives in istio-system. */
export const CONTROL_PLANE_NAMESPACE = 'meshgate-system';
export const CONTROL_PLANE_SERVICE_ACCOUNT = 'meshgate-control-plane';

export const ROOT_KEY_FILE = 'ca/root-key.pem';
export const ROOT_CERT_FILE = 'ca/root-cert.pem';

export interface MeshCaOptions {
  /** The data folder; a generated root is kept in its `ca/` folder. */
  dataDir: string;
  trustDomain?: string;
  /** An existing root (or intermediate, with its chain up to the root after it in the file). */
  root?: { certPath: string; keyPath: string };
  /** Lifetime of workload certificates; 24 h by default. */
  workloadTtlMs?: number;
  /** How far notBefore is set in the past; 5 min by default, at most a tenth of the lifetime. */
  backdateMs?: number;
  /** Lifetime of a generated root; 10 years by default. */
  rootTtlMs?: number;
  /** The clock (ms since the epoch); tests pass a fixed one. */
  now?: () => number;
}

/** What a proxy needs to be told about the certificate the CA signed for it. */
export interface CertificateGrant {
  /** The leaf certificate. */
  certificatePem: string;
  /** The leaf, any intermediates, then the root: the order of Istio's CSR response. */
  chainPem?: string[];
  /** The trust anchor peers verify against (TLS `ca`). */
  rootPem: string;
}

export interface IssuedCertificate extends CertificateGrant {
  chainPem: string[];
  spiffeId: string;
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
}

/** A certificate the CA made together with its key (the control plane's server certificate). */
export interface IssuedKeyAndCertificate extends IssuedCertificate {
  keyPem: string;
}

export interface ServerCertificateOptions {
  dnsNames?: string[];
  ipAddresses?: string[];
  namespace?: string;
  serviceAccount?: string;
  ttlMs?: number;
}

/** Where the root came from: made now, read back from the data folder, or given by the operator. */
export type RootSource = 'generated' | 'loaded' | 'supplied';

export class MeshCa {
  readonly trustDomain: string;
  /** The trust anchor: the last certificate of the signing chain. */
  readonly rootPem: string;
  /** SHA-256 fingerprint of the root (colon-separated hex, as Node prints it). */
  readonly rootFingerprint256: string;
  readonly rootNotAfter: Date;
  readonly source: RootSource;
  private readonly signer: SigningKey;
  private readonly signingCert: x509.X509Certificate;
  /** Signing certificate and its chain up to the root, appended after every leaf. */
  private readonly caChainPem: string[];
  private readonly workloadTtlMs: number;
  private readonly backdateMs: number;
  private readonly now: () => number;

  private constructor(init: {
    trustDomain: string;
    signer: SigningKey;
    caChainPem: string[];
    source: RootSource;
    options: MeshCaOptions;
  }) {
    this.trustDomain = init.trustDomain;
    this.signer = init.signer;
    this.caChainPem = init.caChainPem;
    this.signingCert = new x509.X509Certificate(init.caChainPem[0] as string);
    this.rootPem = init.caChainPem[init.caChainPem.length - 1] as string;
    const root = new X509Certificate(this.rootPem);
    this.rootFingerprint256 = root.fingerprint256;
    this.rootNotAfter = new Date(root.validTo);
    this.source = init.source;
    this.workloadTtlMs = init.options.workloadTtlMs ?? DEFAULT_WORKLOAD_TTL_MS;
    this.backdateMs = init.options.backdateMs ?? DEFAULT_BACKDATE_MS;
    this.now = init.options.now ?? Date.now;
  }

  /**
   * Opens the CA: the supplied root if one is given; else the root in `<dataDir>/ca/`; else a new
   * root, generated and written there.
   */
  static async open(options: MeshCaOptions): Promise<MeshCa> {
    const trustDomain = options.trustDomain ?? DEFAULT_TRUST_DOMAIN;
    const tdProblem = trustDomainProblem(trustDomain);
    if (tdProblem) throw new IdentityError('MG_ERR_SPIFFE_ID_INVALID', tdProblem);
    if (options.workloadTtlMs !== undefined && !(options.workloadTtlMs > 0))
      throw new RangeError('workloadTtlMs must be positive');
    if (options.root) {
      const [certPem, keyPem] = await Promise.all([
        readText(options.root.certPath, 'root certificate'),
        readText(options.root.keyPath, 'root key'),
      ]);
      return MeshCa.fromPem(trustDomain, certPem, keyPem, 'supplied', options);
    }
    const keyPath = join(options.dataDir, ROOT_KEY_FILE);
    const certPath = join(options.dataDir, ROOT_CERT_FILE);
    const [hasKey, hasCert] = [existsSync(keyPath), existsSync(certPath)];
    if (hasKey !== hasCert) throw partialRootError(join(options.dataDir, 'ca'));
    if (!hasKey) {
      const created = await createRootFolder(options, trustDomain);
      if (created)
        return MeshCa.fromPem(trustDomain, created.certPem, created.keyPem, 'generated', options);
      // Another process created it first: read theirs.
    }
    const [certPem, keyPem] = await Promise.all([
      readText(certPath, 'root certificate'),
      readText(keyPath, 'root key'),
    ]);
    return MeshCa.fromPem(trustDomain, certPem, keyPem, 'loaded', options);
  }

  private static async fromPem(
    trustDomain: string,
    certPem: string,
    keyPem: string,
    source: RootSource,
    options: MeshCaOptions,
  ): Promise<MeshCa> {
    const chain = splitPemCertificates(certPem);
    if (chain.length === 0)
      throw new IdentityError(
        'MG_ERR_CA_ROOT_INVALID',
        'the root certificate file holds no PEM certificate',
      );
    let signing: X509Certificate;
    try {
      signing = new X509Certificate(chain[0] as string);
    } catch (err) {
      throw new IdentityError('MG_ERR_CA_ROOT_INVALID', 'the root certificate cannot be parsed', {
        cause: err,
      });
    }
    if (!signing.ca)
      throw new IdentityError(
        'MG_ERR_CA_ROOT_INVALID',
        'the root certificate is not a CA certificate (basicConstraints cA is not set)',
      );
    const signer = await importSigningKey(keyPem);
    if (!signing.checkPrivateKey(createPrivateKey(keyPem)))
      throw new IdentityError(
        'MG_ERR_CA_ROOT_INVALID',
        'the root key does not match the root certificate',
      );
    const now = (options.now ?? Date.now)();
    if (Date.parse(signing.validTo) <= now)
      throw new IdentityError(
        'MG_ERR_CA_ROOT_INVALID',
        `the root certificate expired at ${new Date(signing.validTo).toISOString()}`,
      );
    return new MeshCa({ trustDomain, signer, caChainPem: chain, source, options });
  }

  /**
   * Signs a workload certificate for `identity`, which the caller has authenticated (join token,
   * ServiceAccount token). The CSR contributes only its public key, after its signature proves
   * the requester holds the private key; any name or SAN it asks for is ignored.
   */
  async issueWorkloadCertificate(
    csrPem: string,
    identity: { namespace: string; serviceAccount: string },
    options: { ttlMs?: number } = {},
  ): Promise<IssuedCertificate> {
    checkIdentityNames(identity.namespace, identity.serviceAccount);
    const spiffeId = workloadSpiffeId({ ...identity, trustDomain: this.trustDomain });
    const publicKey = await verifiedCsrKey(csrPem);
    const extensions = [
      new x509.BasicConstraintsExtension(false, undefined, true),
      // keyEncipherment as Istio's workload certificates have it; it matters only for RSA keys.
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
        true,
      ),
      new x509.ExtendedKeyUsageExtension(
        [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
        false,
      ),
      // Empty subject, so the SAN is the identity and critical (RFC 5280 §4.2.1.6), as Istio does.
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId }], true),
    ];
    return this.sign(publicKey, spiffeId, extensions, options.ttlMs ?? this.workloadTtlMs, '');
  }

  /**
   * A key and certificate for the control plane's discovery endpoint: DNS and IP SANs for the
   * addresses proxies dial, plus the control plane's SPIFFE id so proxies can check it as a peer.
   */
  async issueServerCertificate(
    options: ServerCertificateOptions = {},
  ): Promise<IssuedKeyAndCertificate> {
    const namespace = options.namespace ?? CONTROL_PLANE_NAMESPACE;
    const serviceAccount = options.serviceAccount ?? CONTROL_PLANE_SERVICE_ACCOUNT;
    checkIdentityNames(namespace, serviceAccount);
    const spiffeId = workloadSpiffeId({ namespace, serviceAccount, trustDomain: this.trustDomain });
    const dnsNames = options.dnsNames ?? ['localhost'];
    const ips = options.ipAddresses ?? ['127.0.0.1', '::1'];
    for (const ip of ips)
      if (isIP(ip) === 0) throw new RangeError(`${JSON.stringify(ip)} is not an IP address`);
    const keys = await generateEcKeyPair();
    const publicKey = await x509.PublicKey.create(keys.publicKey);
    const extensions = [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(
        [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
        false,
      ),
      new x509.SubjectAlternativeNameExtension(
        [
          ...dnsNames.map((value) => ({ type: 'dns' as const, value })),
          ...ips.map((value) => ({ type: 'ip' as const, value })),
          { type: 'url' as const, value: spiffeId },
        ],
        false,
      ),
    ];
    const subject = `CN=${dnsNames[0] ?? serviceAccount}, O=${this.trustDomain}`;
    const issued = await this.sign(
      publicKey,
      spiffeId,
      extensions,
      options.ttlMs ?? this.workloadTtlMs,
      subject,
    );
    return { ...issued, keyPem: await privateKeyToPem(keys.privateKey) };
  }

  private async sign(
    publicKey: x509.PublicKey,
    spiffeId: string,
    extensions: x509.Extension[],
    ttlMs: number,
    subject: string,
  ): Promise<IssuedCertificate> {
    if (!(ttlMs > 0)) throw new RangeError('ttlMs must be positive');
    const now = this.now();
    const backdateMs = Math.min(this.backdateMs, ttlMs * MAX_BACKDATE_FRACTION);
    const notBefore = new Date(Math.floor((now - backdateMs) / 1000) * 1000);
    // A leaf never outlives its issuer: verification would fail from then on anyway.
    const notAfter = new Date(
      Math.min(Math.floor((now + ttlMs) / 1000) * 1000, this.signingCert.notAfter.getTime()),
    );
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerialNumber(),
      subject,
      issuer: this.signingCert.subjectName,
      notBefore,
      notAfter,
      publicKey,
      signingKey: this.signer.privateKey,
      signingAlgorithm: this.signer.signingAlgorithm,
      extensions: [
        ...extensions,
        await x509.AuthorityKeyIdentifierExtension.create(this.signingCert, false),
      ],
    });
    const certificatePem = `${cert.toString('pem')}\n`;
    return {
      spiffeId,
      // Upper-case hex, as node:crypto's X509Certificate prints it.
      serialNumber: cert.serialNumber.toUpperCase(),
      notBefore: cert.notBefore,
      notAfter: cert.notAfter,
      certificatePem,
      chainPem: [certificatePem, ...this.caChainPem],
      rootPem: this.rootPem,
    };
  }
}

function checkIdentityNames(namespace: string, serviceAccount: string): void {
  const problem = namespaceProblem(namespace) ?? serviceAccountProblem(serviceAccount);
  if (problem) throw new IdentityError('MG_ERR_SPIFFE_ID_INVALID', problem);
}

function csrInvalid(detail: string, cause?: unknown): IdentityError {
  return new IdentityError(
    'MG_ERR_CSR_INVALID',
    detail,
    cause === undefined ? undefined : { cause },
  );
}

/** Parses a PEM CSR, checks its self-signature and key type; returns its public key. */
async function verifiedCsrKey(csrPem: string): Promise<x509.PublicKey> {
  if (typeof csrPem !== 'string' || !/-----BEGIN CERTIFICATE REQUEST-----/.test(csrPem))
    throw csrInvalid('expected a PEM "CERTIFICATE REQUEST"');
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch (err) {
    throw csrInvalid('the CSR cannot be parsed', err);
  }
  let nodeKey: KeyObject;
  try {
    nodeKey = publicKeyFromSpki(csr.publicKey.rawData);
  } catch (err) {
    throw csrInvalid('the CSR public key cannot be read', err);
  }
  const problem = keyProblem(nodeKey);
  if (problem) throw csrInvalid(problem);
  let ok: boolean;
  try {
    ok = await csr.verify();
  } catch (err) {
    throw csrInvalid('the CSR signature cannot be checked', err);
  }
  if (!ok) throw csrInvalid('the CSR signature does not verify with its public key');
  return csr.publicKey;
}

async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new IdentityError(
      'MG_ERR_CA_ROOT_INVALID',
      `cannot read the ${what} ${path}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}

function partialRootError(caDir: string): IdentityError {
  return new IdentityError(
    'MG_ERR_CA_ROOT_INVALID',
    `${caDir} exists but does not hold both root-key.pem and root-cert.pem; restore them, or remove the folder to generate a new root (every workload certificate must then be reissued)`,
  );
}

/**
 * Generates a root and publishes `<dataDir>/ca/` in one rename, so a crash never leaves a key
 * without its certificate and two processes starting at once agree on one root. Returns
 * undefined when `ca/` already holds files (someone else won).
 */
async function createRootFolder(
  options: MeshCaOptions,
  trustDomain: string,
): Promise<{ certPem: string; keyPem: string } | undefined> {
  const caDir = join(options.dataDir, 'ca');
  if (existsSync(caDir) && (await readdir(caDir)).length > 0) throw partialRootError(caDir);
  await mkdir(options.dataDir, { recursive: true });
  const { certPem, keyPem } = await generateRoot(trustDomain, options);
  const staging = await mkdtemp(join(options.dataDir, '.ca-'));
  try {
    await writeFile(join(staging, 'root-key.pem'), keyPem, { mode: 0o600 });
    await chmod(join(staging, 'root-key.pem'), 0o600);
    await writeFile(join(staging, 'root-cert.pem'), certPem, { mode: 0o644 });
    await chmod(staging, 0o700);
    try {
      // rename(2) replaces an empty directory and fails on a non-empty one.
      await rename(staging, caDir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOTEMPTY' || code === 'EEXIST') return undefined;
      throw err;
    }
    return { certPem, keyPem };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

async function generateRoot(
  trustDomain: string,
  options: MeshCaOptions,
): Promise<{ certPem: string; keyPem: string }> {
  const now = (options.now ?? Date.now)();
  const keys = await generateEcKeyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialNumber(),
    name: `CN=meshgate mesh root CA, O=${trustDomain}`,
    notBefore: new Date(Math.floor((now - DEFAULT_BACKDATE_MS) / 1000) * 1000),
    notAfter: new Date(
      Math.floor((now + (options.rootTtlMs ?? DEFAULT_ROOT_TTL_MS)) / 1000) * 1000,
    ),
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      // SPIFFE-ID §3.1: the signing authority's id is the trust domain's, with no path.
      new x509.SubjectAlternativeNameExtension(
        [{ type: 'url', value: formatSpiffeId(trustDomain) }],
        false,
      ),
    ],
  });
  return { certPem: `${cert.toString('pem')}\n`, keyPem: await privateKeyToPem(keys.privateKey) };
}
