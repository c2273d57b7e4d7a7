// The CA service on the discovery port: the first certificate with a join token, renewal with the
// workload certificate, and every way of being refused (no token, an expired token, a certificate
// from another CA, an expired certificate, a hello naming another identity).

import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MeshCa } from '../../../shared/identity/mesh-ca.ts';
import {
  identityFromCertificate,
  verifyCertificateChain,
} from '../../../shared/identity/peer-verification.ts';
import {
  createWorkloadCsr,
  type WorkloadCredentials,
} from '../../../shared/identity/workload-identity.ts';
import {
  admin,
  closeAll,
  connectClient,
  discoveryRequest,
  sidecarHello,
  startTestControlPlane,
  statusWhen,
  type TestControlPlane,
} from '../../helpers/control-plane.ts';
import { createTestMeshCa } from '../../helpers/mesh-ca.ts';

const SERVICES = `apiVersion: v1
kind: Service
metadata: { name: reviews, namespace: bookinfo }
spec:
  selector: { app: reviews }
  ports: [{ name: http, port: 9080 }]
`;

let cp: TestControlPlane;
let credentials: WorkloadCredentials;

beforeAll(async () => {
  cp = await startTestControlPlane({ 'services.yaml': SERVICES });
  const client = await connectClient(cp, sidecarHello('reviews'));
  credentials = await client.client.start();
  await client.client.firstView;
});

afterAll(closeAll);

const csr = () => createWorkloadCsr({ namespace: 'bookinfo', serviceAccount: 'reviews' });

describe('bootstrap', () => {
  it('issues the first certificate for the identity of the join token, and serves the stream', async () => {
    expect(credentials.spiffeId).toBe('spiffe://cluster.local/ns/bookinfo/sa/reviews');
    const leaf = verifyCertificateChain(credentials.chainPem, cp.rootPem);
    expect(identityFromCertificate(leaf).spiffeId).toBe(credentials.spiffeId);
    // 24 h by default, renewed at half-life.
    expect(credentials.notAfter.getTime() - credentials.notBefore.getTime()).toBeGreaterThan(
      23 * 3_600_000,
    );
    const proxies = await statusWhen(cp, (p) => p[0]?.state === 'SYNCED', 'the ack');
    expect(proxies).toEqual([
      expect.objectContaining({
        proxyId: 'sidecar~bookinfo~reviews',
        state: 'SYNCED',
        certificateExpiry: credentials.notAfter.toISOString(),
      }),
    ]);
  });

  it('renews with the current workload certificate as TLS client certificate', async () => {
    const request = await csr();
    const res = await discoveryRequest(`${cp.discoveryUrl}/v1/certificates`, {
      rootPem: cp.rootPem,
      credentials,
      body: { csr: request.csrPem },
    });
    expect(res.status).toBe(200);
    const grant = res.json() as { certificatePem: string; rootPem: string; chainPem: string[] };
    expect(grant.rootPem).toBe(cp.rootPem);
    const cert = new X509Certificate(grant.certificatePem);
    expect(identityFromCertificate(cert).spiffeId).toBe(credentials.spiffeId);
    expect(cert.serialNumber).not.toBe(credentials.serialNumber);
  });

  it('takes the identity from the token or certificate, never from the CSR', async () => {
    const request = await createWorkloadCsr({ namespace: 'kube-system', serviceAccount: 'admin' });
    const token = (await readFile(await cp.tokenFile('bookinfo', 'ratings'), 'utf8')).trim();
    const res = await discoveryRequest(`${cp.discoveryUrl}/v1/certificates`, {
      rootPem: cp.rootPem,
      body: { csr: request.csrPem },
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(200);
    const cert = new X509Certificate((res.json() as { certificatePem: string }).certificatePem);
    expect(identityFromCertificate(cert).spiffeId).toBe(
      'spiffe://cluster.local/ns/bookinfo/sa/ratings',
    );
  });

  it('serves the root at GET /v1/root', async () => {
    const res = await discoveryRequest(`${cp.discoveryUrl}/v1/root`, {
      rootPem: cp.rootPem,
      method: 'GET',
    });
    expect(res.status).toBe(200);
    expect(res.text).toBe(cp.rootPem);
  });
});

describe('refused', () => {
  async function expectProblem(
    res: Awaited<ReturnType<typeof discoveryRequest>>,
    status: number,
    code: string,
  ) {
    expect(res.status, res.text).toBe(status);
    expect(res.headers['content-type']).toBe('application/problem+json');
    expect(res.json()).toMatchObject({ status, code });
  }

  it('a certificate request with no token and no certificate (401)', async () => {
    const res = await discoveryRequest(`${cp.discoveryUrl}/v1/certificates`, {
      rootPem: cp.rootPem,
      body: { csr: (await csr()).csrPem },
    });
    await expectProblem(res, 401, 'MG_ERR_CP_UNAUTHENTICATED');
  });

  it('an expired join token, and one the control plane never issued (401)', async () => {
    const twoHoursAgo = () => Date.now() - 2 * 3_600_000;
    const expired = await cp.tokenFile('bookinfo', 'reviews', {
      ttlMs: 3_600_000,
      now: twoHoursAgo,
    });
    const unknown = `mgjt_${'A'.repeat(43)}`;
    for (const token of [(await readFile(expired, 'utf8')).trim(), unknown]) {
      const res = await discoveryRequest(`${cp.discoveryUrl}/v1/certificates`, {
        rootPem: cp.rootPem,
        body: { csr: (await csr()).csrPem },
        headers: { authorization: `Bearer ${token}` },
      });
      await expectProblem(res, 401, 'MG_ERR_JOIN_TOKEN_INVALID');
    }
  });

  it('a certificate from another CA, for the stream and for renewal (401)', async () => {
    const other = await createTestMeshCa();
    try {
      const foreign = await other.credentials('bookinfo', 'reviews');
      const stream = await discoveryRequest(`${cp.discoveryUrl}/v1/stream`, {
        rootPem: cp.rootPem,
        credentials: foreign,
        body: sidecarHello('reviews', { proxyId: 'intruder' }),
      });
      await expectProblem(stream, 401, 'MG_ERR_CP_UNAUTHENTICATED');
      const renewal = await discoveryRequest(`${cp.discoveryUrl}/v1/certificates`, {
        rootPem: cp.rootPem,
        credentials: foreign,
        body: { csr: (await csr()).csrPem },
      });
      await expectProblem(renewal, 401, 'MG_ERR_CP_UNAUTHENTICATED');
      expect(renewal.json().detail).toMatch(/not valid for this mesh/);
    } finally {
      await other.close();
    }
  });

  it('an expired certificate from the mesh CA (401)', async () => {
    // The same root, opened with a clock three hours back: its 1 h certificate expired 2 h ago.
    const past = await MeshCa.open({
      dataDir: cp.dataDir,
      workloadTtlMs: 3_600_000,
      now: () => Date.now() - 3 * 3_600_000,
    });
    const request = await csr();
    const issued = await past.issueWorkloadCertificate(request.csrPem, {
      namespace: 'bookinfo',
      serviceAccount: 'reviews',
    });
    expect(issued.notAfter.getTime()).toBeLessThan(Date.now());
    const res = await discoveryRequest(`${cp.discoveryUrl}/v1/stream`, {
      rootPem: cp.rootPem,
      credentials: { keyPem: request.keyPem, chainPem: issued.chainPem, rootPem: issued.rootPem },
      body: sidecarHello('reviews', { proxyId: 'stale' }),
    });
    await expectProblem(res, 401, 'MG_ERR_CP_UNAUTHENTICATED');
    expect(res.json().detail).toMatch(/CERT_HAS_EXPIRED/);
  });

  it('a stream with no client certificate (401)', async () => {
    const res = await discoveryRequest(`${cp.discoveryUrl}/v1/stream`, {
      rootPem: cp.rootPem,
      body: sidecarHello('reviews', { proxyId: 'anonymous' }),
    });
    await expectProblem(res, 401, 'MG_ERR_CP_UNAUTHENTICATED');
  });

  it('a hello whose namespace or service account differs from the certificate (403)', async () => {
    for (const hello of [
      sidecarHello('ratings', { proxyId: 'liar-1' }),
      sidecarHello('reviews', { proxyId: 'liar-2', namespace: 'default' }),
    ]) {
      const res = await discoveryRequest(`${cp.discoveryUrl}/v1/stream`, {
        rootPem: cp.rootPem,
        credentials,
        body: hello,
      });
      await expectProblem(res, 403, 'MG_ERR_CP_IDENTITY_MISMATCH');
    }
    // Nothing was registered for them.
    const status = await admin<{ proxies: { proxyId: string }[] }>(cp, '/status');
    expect(status.body.proxies.map((p) => p.proxyId)).toEqual(['sidecar~bookinfo~reviews']);
  });

  it('a gateway view for a workload outside the root namespace, unless it names its own Gateways (403)', async () => {
    const hello = { ...sidecarHello('reviews', { proxyId: 'gw' }), kind: 'gateway' as const };
    const all = await discoveryRequest(`${cp.discoveryUrl}/v1/stream`, {
      rootPem: cp.rootPem,
      credentials,
      body: hello,
    });
    await expectProblem(all, 403, 'MG_ERR_CP_FORBIDDEN');
    const foreign = await discoveryRequest(`${cp.discoveryUrl}/v1/stream`, {
      rootPem: cp.rootPem,
      credentials,
      body: { ...hello, gateways: ['edge/public'] },
    });
    await expectProblem(foreign, 403, 'MG_ERR_CP_FORBIDDEN');
  });

  it('a malformed hello or known endpoints (400) and an ack for a proxy with no stream (404)', async () => {
    const bad = await discoveryRequest(`${cp.discoveryUrl}/v1/stream`, {
      rootPem: cp.rootPem,
      credentials,
      body: { ...sidecarHello('reviews'), inboundPort: 70000 },
    });
    await expectProblem(bad, 400, 'MG_ERR_CP_BAD_REQUEST');
    const badKnown = await discoveryRequest(`${cp.discoveryUrl}/v1/stream`, {
      rootPem: cp.rootPem,
      credentials,
      body: {
        ...sidecarHello('reviews'),
        currentVersion: 'v1',
        knownMeshEndpoints: { 'bookinfo/ratings:9080': [{ address: '10.0.0.1', port: 0 }] },
      },
    });
    await expectProblem(badKnown, 400, 'MG_ERR_CP_BAD_REQUEST');
    const ack = await discoveryRequest(`${cp.discoveryUrl}/v1/ack`, {
      rootPem: cp.rootPem,
      credentials,
      body: { proxyId: 'nobody', version: 'x', ok: true },
    });
    await expectProblem(ack, 404, 'MG_ERR_CP_UNKNOWN_PROXY');
  });
});
