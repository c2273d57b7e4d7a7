import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateEcKeyPair, x509 } from '../../shared/identity/crypto-keys.ts';
import {
  createCheckServerIdentity,
  expectPeers,
  identityFromCertificate,
  secureContextOptions,
  uriSubjectAltNames,
  verifyPeer,
} from '../../shared/identity/peer-verification.ts';
import { createTestMeshCa, type TestMeshCa } from '../helpers/mesh-ca.ts';

/** A self-signed certificate with exactly the SANs given (to feed the SAN readers). */
async function certWithSans(names: { type: 'dns' | 'url' | 'ip'; value: string }[]) {
  const keys = await generateEcKeyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: 'CN=test',
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [new x509.SubjectAlternativeNameExtension(names)],
  });
  return new X509Certificate(cert.toString('pem'));
}

describe('uriSubjectAltNames', () => {
  it.each([
    [undefined, []],
    ['', []],
    ['URI:spiffe://cluster.local/ns/a/sa/b', ['spiffe://cluster.local/ns/a/sa/b']],
    [
      'DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, URI:spiffe://td/ns/a/sa/b',
      ['spiffe://td/ns/a/sa/b'],
    ],
    [
      'URI:spiffe://td/ns/a/sa/b, URI:spiffe://td/ns/c/sa/d',
      ['spiffe://td/ns/a/sa/b', 'spiffe://td/ns/c/sa/d'],
    ],
    // Node quotes values with "," (and ", ' \\) as JSON strings: a quoted DNS name that looks
    // like a URI entry stays one DNS name.
    [
      'DNS:"x, URI:spiffe://td/ns/a/sa/admin", URI:spiffe://td/ns/a/sa/b',
      ['spiffe://td/ns/a/sa/b'],
    ],
    ['URI:"spiffe://td/a,b"', ['spiffe://td/a,b']],
  ])('%s', (san, uris) => {
    expect(uriSubjectAltNames(san)).toEqual(uris);
  });

  it('is not fooled by a DNS SAN crafted to look like a URI entry in a real certificate', async () => {
    const cert = await certWithSans([
      { type: 'dns', value: 'x, URI:spiffe://cluster.local/ns/kube-system/sa/admin' },
      { type: 'url', value: 'spiffe://cluster.local/ns/default/sa/web' },
    ]);
    expect(identityFromCertificate(cert).spiffeId).toBe('spiffe://cluster.local/ns/default/sa/web');
  });
});

describe('identityFromCertificate and verifyPeer', () => {
  let mesh: TestMeshCa;
  beforeAll(async () => {
    mesh = await createTestMeshCa();
  });
  afterAll(async () => {
    await mesh.close();
  });

  it('reads the principal and namespace for authorization', async () => {
    const creds = await mesh.credentials('bookinfo', 'productpage');
    const cert = new X509Certificate(creds.certificatePem);
    expect(identityFromCertificate(cert)).toEqual({
      spiffeId: 'spiffe://cluster.local/ns/bookinfo/sa/productpage',
      principal: 'cluster.local/ns/bookinfo/sa/productpage',
      trustDomain: 'cluster.local',
      namespace: 'bookinfo',
      serviceAccount: 'productpage',
    });
    // Expected identities may be written either way, several per destination.
    const expectation = expectPeers({
      identities: [
        'cluster.local/ns/bookinfo/sa/productpage',
        'spiffe://cluster.local/ns/bookinfo/sa/other',
      ],
    });
    expect(verifyPeer(cert, expectation).namespace).toBe('bookinfo');
    expect(() =>
      verifyPeer(cert, expectPeers({ identities: ['cluster.local/ns/bookinfo/sa/other'] })),
    ).toThrow(
      /MG_ERR_PEER_IDENTITY: peer spiffe:\/\/cluster.local\/ns\/bookinfo\/sa\/productpage is not one of the expected identities/,
    );
    expect(() => verifyPeer(cert, expectPeers({ trustDomain: 'example.org' }))).toThrow(
      /is in trust domain cluster.local, not example.org/,
    );
    const check = createCheckServerIdentity(expectation);
    expect(check('127.0.0.1', { subjectaltname: cert.subjectAltName } as never)).toBeUndefined();
    expect(
      createCheckServerIdentity(expectPeers({ identities: ['cluster.local/ns/x/sa/y'] }))('h', {
        subjectaltname: cert.subjectAltName,
      } as never),
    ).toBeInstanceOf(Error);
  });

  it.each([
    [[{ type: 'dns' as const, value: 'web.default.svc' }], /no URI SAN/],
    [
      [
        { type: 'url' as const, value: 'spiffe://cluster.local/ns/a/sa/b' },
        { type: 'url' as const, value: 'spiffe://cluster.local/ns/c/sa/d' },
      ],
      /2 URI SANs; an X509-SVID has exactly one/,
    ],
    [
      [{ type: 'url' as const, value: 'https://cluster.local/ns/a/sa/b' }],
      /not a workload SPIFFE id/,
    ],
    [
      [{ type: 'url' as const, value: 'spiffe://cluster.local/payments/web' }],
      /not a workload SPIFFE id/,
    ],
    [
      [{ type: 'url' as const, value: 'spiffe://cluster.local/ns/a/sa/b/../c' }],
      /not a workload SPIFFE id/,
    ],
  ])('refuses a certificate with SANs %j', async (names, reason) => {
    const cert = await certWithSans(names);
    expect(() => identityFromCertificate(cert)).toThrow(reason);
  });

  it('refuses an empty list of expected identities (leave it out to accept any workload)', () => {
    expect(() => expectPeers({ identities: [] })).toThrow(/accepts nobody/);
    expect(() => expectPeers({ identities: ['not-a-principal'] })).toThrow(
      /MG_ERR_SPIFFE_ID_INVALID/,
    );
    expect(expectPeers().identities).toBeUndefined();
  });

  it('sends the leaf (and intermediates) but not the root the peer already trusts', async () => {
    const creds = await mesh.credentials('default', 'web');
    const options = secureContextOptions(creds);
    expect(options.cert).toBe(creds.certificatePem);
    expect(options.ca).toBe(creds.rootPem);
    expect(options.minVersion).toBe('TLSv1.3');
  });
});
