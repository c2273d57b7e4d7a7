import { X509Certificate, createPrivateKey, generateKeyPairSync, webcrypto } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import forge from 'node-forge';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateEcKeyPair, x509 } from '../../shared/identity/crypto-keys.ts';
import { IdentityError } from '../../shared/identity/errors.ts';
import { MeshCa, ROOT_CERT_FILE, ROOT_KEY_FILE } from '../../shared/identity/mesh-ca.ts';
import { verifyCertificateChain } from '../../shared/identity/peer-verification.ts';
import { createWorkloadCsr } from '../../shared/identity/workload-identity.ts';
import { selfSignedCertificate } from '../helpers/tls.ts';

const HOUR = 3_600_000;
const NOW = Date.parse('2026-03-01T12:00:00Z');
const fixedClock = () => NOW;

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'meshgate-ca-test-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A CSR that asks for `sanUri`, signed by a new key of the given kind. */
async function csrFor(sanUri: string, key: 'ec' | 'rsa-2048' | 'rsa-1024' = 'ec'): Promise<string> {
  const keys =
    key === 'ec'
      ? await generateEcKeyPair()
      : ((await webcrypto.subtle.generateKey(
          {
            name: 'RSASSA-PKCS1-v1_5',
            modulusLength: key === 'rsa-2048' ? 2048 : 1024,
            publicExponent: new Uint8Array([1, 0, 1]),
            hash: 'SHA-256',
          },
          true,
          ['sign', 'verify'],
        )) as webcrypto.CryptoKeyPair);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: 'CN=impostor, O=kube-system',
    keys,
    signingAlgorithm:
      key === 'ec'
        ? { name: 'ECDSA', hash: 'SHA-256' }
        : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: sanUri }])],
  });
  return csr.toString('pem');
}

function keyUsageOf(pem: string): number {
  const ext = new x509.X509Certificate(pem).getExtension(x509.KeyUsagesExtension);
  return ext?.usages ?? 0;
}

describe('MeshCa root', () => {
  it('generates a root on first start, keeps it in ca/ (key 0600), and loads the same root later', async () => {
    const first = await MeshCa.open({ dataDir: dir });
    expect(first.source).toBe('generated');
    expect((await stat(join(dir, ROOT_KEY_FILE))).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'ca'))).mode & 0o777).toBe(0o700);
    const rootPem = await readFile(join(dir, ROOT_CERT_FILE), 'utf8');
    expect(rootPem).toBe(first.rootPem);

    const root = new X509Certificate(rootPem);
    expect(root.ca).toBe(true);
    expect(root.checkIssued(root)).toBe(true);
    expect(root.verify(root.publicKey)).toBe(true);
    expect(root.publicKey.asymmetricKeyType).toBe('ec');
    // SPIFFE-ID §3.1: the authority's id is the trust domain's, with no path.
    expect(root.subjectAltName).toBe('URI:spiffe://cluster.local');
    expect(keyUsageOf(rootPem)).toBe(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);

    const again = await MeshCa.open({ dataDir: dir });
    expect(again.source).toBe('loaded');
    expect(again.rootFingerprint256).toBe(first.rootFingerprint256);
    expect(again.rootPem).toBe(first.rootPem);
  });

  it('agrees on one root when two processes start at once on an empty folder', async () => {
    const [a, b] = await Promise.all([
      MeshCa.open({ dataDir: dir }),
      MeshCa.open({ dataDir: dir }),
    ]);
    expect(a.rootFingerprint256).toBe(b.rootFingerprint256);
    expect([a.source, b.source].sort()).toEqual(['generated', 'loaded']);
  });

  it('refuses a ca/ folder that lost one of its files instead of replacing the root', async () => {
    await MeshCa.open({ dataDir: dir });
    await rm(join(dir, ROOT_KEY_FILE));
    await expect(MeshCa.open({ dataDir: dir })).rejects.toThrow(/does not hold both/);
  });

  it('uses a supplied root, and refuses one that is not a CA or does not match its key', async () => {
    const other = join(dir, 'other');
    const original = await MeshCa.open({ dataDir: other });
    const supplied = await MeshCa.open({
      dataDir: join(dir, 'data'),
      root: { certPath: join(other, ROOT_CERT_FILE), keyPath: join(other, ROOT_KEY_FILE) },
    });
    expect(supplied.source).toBe('supplied');
    expect(supplied.rootFingerprint256).toBe(original.rootFingerprint256);

    const third = join(dir, 'third');
    await MeshCa.open({ dataDir: third });
    await expect(
      MeshCa.open({
        dataDir: join(dir, 'data'),
        root: { certPath: join(other, ROOT_CERT_FILE), keyPath: join(third, ROOT_KEY_FILE) },
      }),
    ).rejects.toThrow(/does not match/);

    const leafOnly = selfSignedCertificate(['not-a-ca.example']);
    await writeFile(join(dir, 'leaf.pem'), leafOnly.certPem);
    await writeFile(join(dir, 'leaf-key.pem'), leafOnly.keyPem);
    await expect(
      MeshCa.open({
        dataDir: join(dir, 'data'),
        root: { certPath: join(dir, 'leaf.pem'), keyPath: join(dir, 'leaf-key.pem') },
      }),
    ).rejects.toThrow(/not a CA certificate/);
  });

  it('signs with a supplied RSA root', async () => {
    // An RSA root, as an operator might bring: node-forge signs it.
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const keyPem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
    const forgeKey = forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
    const cert = forge.pki.createCertificate();
    cert.publicKey = forge.pki.rsa.setPublicKey(forgeKey.n, forgeKey.e);
    cert.serialNumber = '01';
    cert.validity.notBefore = new Date(NOW - HOUR);
    cert.validity.notAfter = new Date(NOW + 1000 * HOUR);
    const attrs = [{ name: 'commonName', value: 'corp root' }];
    cert.setSubject(attrs);
    cert.setIssuer(attrs);
    cert.setExtensions([
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
      { name: 'subjectKeyIdentifier' },
    ]);
    cert.sign(forgeKey, forge.md.sha256.create());
    await writeFile(join(dir, 'rsa-root.pem'), forge.pki.certificateToPem(cert));
    await writeFile(join(dir, 'rsa-root-key.pem'), keyPem, { mode: 0o600 });
    const ca = await MeshCa.open({
      dataDir: dir,
      root: { certPath: join(dir, 'rsa-root.pem'), keyPath: join(dir, 'rsa-root-key.pem') },
      now: fixedClock,
    });
    const issued = await ca.issueWorkloadCertificate(await csrFor('spiffe://x/y'), {
      namespace: 'default',
      serviceAccount: 'web',
    });
    const leaf = verifyCertificateChain(issued.chainPem, issued.rootPem, NOW);
    expect(leaf.subjectAltName).toBe('URI:spiffe://cluster.local/ns/default/sa/web');
  });
});

describe('MeshCa workload certificates', () => {
  it('issues from a CSR: signed by the root, SAN from the authenticated identity, X509-SVID profile', async () => {
    const ca = await MeshCa.open({ dataDir: dir, now: fixedClock });
    // The CSR asks for another identity; the CA must ignore it.
    const csrPem = await csrFor('spiffe://cluster.local/ns/kube-system/sa/admin');
    const issued = await ca.issueWorkloadCertificate(csrPem, {
      namespace: 'bookinfo',
      serviceAccount: 'reviews',
    });
    expect(issued.spiffeId).toBe('spiffe://cluster.local/ns/bookinfo/sa/reviews');
    const leaf = new X509Certificate(issued.certificatePem);
    const root = new X509Certificate(ca.rootPem);
    expect(leaf.checkIssued(root)).toBe(true);
    expect(leaf.verify(root.publicKey)).toBe(true);
    expect(leaf.subjectAltName).toBe('URI:spiffe://cluster.local/ns/bookinfo/sa/reviews');
    expect(leaf.subject ?? '').not.toMatch(/impostor|kube-system/);
    expect(leaf.ca).toBe(false);
    expect(keyUsageOf(issued.certificatePem)).toBe(
      x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
    );
    expect(leaf.keyUsage?.sort()).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']); // server+clientAuth
    // The certificate is for the CSR's key.
    const csrKey = new x509.Pkcs10CertificateRequest(csrPem).publicKey.rawData;
    expect(Buffer.from(leaf.publicKey.export({ type: 'spki', format: 'der' }))).toEqual(
      Buffer.from(csrKey),
    );
    // Chain in Istio's order, the root last.
    expect(issued.chainPem).toEqual([issued.certificatePem, ca.rootPem]);
    expect(issued.rootPem).toBe(ca.rootPem);
    expect(issued.serialNumber).toBe(leaf.serialNumber);
  });

  it('gives 24 h by default, backdated 5 min for clock skew, and expires', async () => {
    const ca = await MeshCa.open({ dataDir: dir, now: fixedClock });
    const issued = await ca.issueWorkloadCertificate(await csrFor('spiffe://a/b'), {
      namespace: 'default',
      serviceAccount: 'web',
    });
    expect(issued.notBefore.getTime()).toBe(NOW - 5 * 60_000);
    expect(issued.notAfter.getTime()).toBe(NOW + 24 * HOUR);
    const leaf = new X509Certificate(issued.certificatePem);
    expect(Date.parse(leaf.validFrom)).toBe(NOW - 5 * 60_000);
    expect(Date.parse(leaf.validTo)).toBe(NOW + 24 * HOUR);

    expect(() => verifyCertificateChain(issued.chainPem, ca.rootPem, NOW)).not.toThrow();
    expect(() =>
      verifyCertificateChain(issued.chainPem, ca.rootPem, NOW + 24 * HOUR + 1000),
    ).toThrow(/not valid at/);
    expect(() => verifyCertificateChain(issued.chainPem, ca.rootPem, NOW - 10 * 60_000)).toThrow(
      /not valid at/,
    );
  });

  // Regression: a 20 s certificate started 5 min in the past, so most of its validity was over
  // before it was issued, and proxies renewing at half-life renewed it in a loop.
  it('backdates a short certificate by at most a tenth of its lifetime', async () => {
    const ca = await MeshCa.open({ dataDir: dir, now: fixedClock });
    const csrPem = await csrFor('spiffe://a/b');
    const identity = { namespace: 'default', serviceAccount: 'web' };
    const short = await ca.issueWorkloadCertificate(csrPem, identity, { ttlMs: 20_000 });
    expect(short.notBefore.getTime()).toBe(NOW - 2_000);
    expect(short.notAfter.getTime()).toBe(NOW + 20_000);
    const hour = await ca.issueWorkloadCertificate(csrPem, identity, { ttlMs: HOUR });
    expect(hour.notBefore.getTime()).toBe(NOW - 5 * 60_000);
  });

  it('takes the TTL from its options or per certificate, never past the root', async () => {
    const ca = await MeshCa.open({
      dataDir: dir,
      now: fixedClock,
      workloadTtlMs: HOUR,
      backdateMs: 0,
    });
    const csrPem = await csrFor('spiffe://a/b');
    const identity = { namespace: 'default', serviceAccount: 'web' };
    expect((await ca.issueWorkloadCertificate(csrPem, identity)).notAfter.getTime()).toBe(
      NOW + HOUR,
    );
    const short = await ca.issueWorkloadCertificate(csrPem, identity, { ttlMs: 10 * 60_000 });
    expect(short.notBefore.getTime()).toBe(NOW);
    expect(short.notAfter.getTime()).toBe(NOW + 10 * 60_000);

    const shortRootDir = join(dir, 'short-root');
    const shortRoot = await MeshCa.open({
      dataDir: shortRootDir,
      now: fixedClock,
      rootTtlMs: 2 * HOUR,
    });
    const clamped = await shortRoot.issueWorkloadCertificate(csrPem, identity);
    expect(clamped.notAfter.getTime()).toBe(shortRoot.rootNotAfter.getTime());
  });

  it('accepts RSA-2048 CSRs and refuses weak keys, bad signatures and garbage', async () => {
    const ca = await MeshCa.open({ dataDir: dir });
    const identity = { namespace: 'default', serviceAccount: 'web' };
    const rsa = await ca.issueWorkloadCertificate(
      await csrFor('spiffe://a/b', 'rsa-2048'),
      identity,
    );
    expect(new X509Certificate(rsa.certificatePem).publicKey.asymmetricKeyType).toBe('rsa');

    const reject = async (pem: string, reason: RegExp) => {
      const err = await ca.issueWorkloadCertificate(pem, identity).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(IdentityError);
      expect((err as IdentityError).code).toBe('MG_ERR_CSR_INVALID');
      expect((err as Error).message).toMatch(reason);
    };
    await reject(await csrFor('spiffe://a/b', 'rsa-1024'), /at least 2048/);
    await reject('not a csr', /PEM/);
    await reject(
      '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n',
      /cannot be parsed/,
    );

    // Flip a bit in the signature: the requester no longer proves it holds the key.
    const der = Buffer.from(
      new x509.Pkcs10CertificateRequest(await csrFor('spiffe://a/b')).rawData,
    );
    der[der.length - 2] = (der[der.length - 2] as number) ^ 0x01;
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE REQUEST-----\n`;
    await reject(tampered, /signature/);
  });

  it('refuses identities that are not Kubernetes names', async () => {
    const ca = await MeshCa.open({ dataDir: dir });
    const csrPem = (await createWorkloadCsr({ namespace: 'default', serviceAccount: 'web' }))
      .csrPem;
    for (const identity of [
      { namespace: 'Default', serviceAccount: 'web' },
      { namespace: 'default', serviceAccount: 'web/sa/admin' },
      { namespace: '', serviceAccount: 'web' },
    ])
      await expect(ca.issueWorkloadCertificate(csrPem, identity)).rejects.toThrow(
        /MG_ERR_SPIFFE_ID_INVALID/,
      );
  });

  it('uses its trust domain in every SAN', async () => {
    const ca = await MeshCa.open({ dataDir: dir, trustDomain: 'example.org' });
    const issued = await ca.issueWorkloadCertificate(
      await csrFor('spiffe://cluster.local/ns/a/sa/b'),
      {
        namespace: 'a',
        serviceAccount: 'b',
      },
    );
    expect(issued.spiffeId).toBe('spiffe://example.org/ns/a/sa/b');
    expect(new X509Certificate(ca.rootPem).subjectAltName).toBe('URI:spiffe://example.org');
  });
});

describe('MeshCa server certificate', () => {
  it('covers localhost, loopback IPs and the control plane SPIFFE id, with its key', async () => {
    const ca = await MeshCa.open({ dataDir: dir, now: fixedClock });
    const server = await ca.issueServerCertificate();
    const cert = new X509Certificate(server.certificatePem);
    expect(cert.subjectAltName).toBe(
      'DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, URI:spiffe://cluster.local/ns/meshgate-system/sa/meshgate-control-plane',
    );
    expect(cert.checkHost('localhost')).toBe('localhost');
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(cert.checkPrivateKey(createPrivateKey(server.keyPem))).toBe(true);
    expect(cert.verify(new X509Certificate(ca.rootPem).publicKey)).toBe(true);
    expect(server.spiffeId).toBe(
      'spiffe://cluster.local/ns/meshgate-system/sa/meshgate-control-plane',
    );

    const custom = await ca.issueServerCertificate({
      dnsNames: ['meshgate-control-plane.meshgate-system.svc'],
      ipAddresses: ['10.1.2.3'],
    });
    expect(new X509Certificate(custom.certificatePem).subjectAltName).toContain(
      'DNS:meshgate-control-plane.meshgate-system.svc, IP Address:10.1.2.3',
    );
    await expect(ca.issueServerCertificate({ ipAddresses: ['localhost'] })).rejects.toThrow(
      /not an IP address/,
    );
  });

  it('keeps no file but the root in the data folder', async () => {
    const ca = await MeshCa.open({ dataDir: dir });
    await ca.issueServerCertificate();
    await mkdir(join(dir, 'x'));
    const { readdir } = await import('node:fs/promises');
    expect((await readdir(dir)).sort()).toEqual(['ca', 'x']);
    expect((await readdir(join(dir, 'ca'))).sort()).toEqual(['root-cert.pem', 'root-key.pem']);
  });
});
