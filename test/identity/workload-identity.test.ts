import { X509Certificate, createPrivateKey } from 'node:crypto';
import { once } from 'node:events';
import {
  connect,
  createServer,
  type ConnectionOptions,
  type Server,
  type TLSSocket,
} from 'node:tls';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { x509 } from '../../shared/identity/crypto-keys.ts';
import type { CertificateGrant } from '../../shared/identity/mesh-ca.ts';
import {
  expectPeers,
  mtlsClientOptions,
  mtlsServerOptions,
  peerIdentityOfSocket,
  secureContextOptions,
} from '../../shared/identity/peer-verification.ts';
import {
  WorkloadCertificateRenewer,
  createWorkloadCsr,
  credentialsFromGrant,
  renewAt,
  type RenewalFailure,
  type WorkloadCredentials,
} from '../../shared/identity/workload-identity.ts';
import { ManualTimers } from '../helpers/manual-timers.ts';
import { createTestMeshCa, type TestMeshCa } from '../helpers/mesh-ca.ts';

const HOUR = 3_600_000;
const reviewsIdentity = { namespace: 'default', serviceAccount: 'reviews' };
const productpageIdentity = { namespace: 'default', serviceAccount: 'productpage' };

describe('renewAt', () => {
  it('is the half-life of what is left of the certificate when it arrived', () => {
    const notBefore = new Date('2026-03-01T11:55:00Z');
    const notAfter = new Date('2026-03-02T12:00:00Z');
    const arrived = Date.parse('2026-03-01T12:00:00Z');
    expect(renewAt({ notBefore, notAfter }, arrived).toISOString()).toBe(
      '2026-03-02T00:00:00.000Z',
    );
    // Received before its notBefore (the receiver's clock runs behind): from notBefore.
    expect(renewAt({ notBefore, notAfter }, Date.parse('2026-03-01T11:00:00Z')).toISOString()).toBe(
      '2026-03-01T23:57:30.000Z',
    );
  });

  // Regression: measured from the backdated notBefore, a 20 s certificate backdated 5 min was
  // past its half-life on arrival (86 renewals in 3 s per proxy).
  it('is in the future for a certificate shorter than the backdate', () => {
    const arrived = Date.parse('2026-03-01T12:00:00Z');
    const notBefore = new Date(arrived - 5 * 60_000);
    const notAfter = new Date(arrived + 20_000);
    expect(renewAt({ notBefore, notAfter }, arrived).getTime()).toBe(arrived + 10_000);
  });
});

describe('createWorkloadCsr', () => {
  it('makes an EC P-256 key and a CSR signed with it, naming the identity', async () => {
    const { keyPem, csrPem } = await createWorkloadCsr(reviewsIdentity);
    const key = createPrivateKey(keyPem);
    expect(key.asymmetricKeyType).toBe('ec');
    expect(key.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    const csr = new x509.Pkcs10CertificateRequest(csrPem);
    expect(await csr.verify()).toBe(true);
    const san = csr.extensions.find((e) => e instanceof x509.SubjectAlternativeNameExtension) as
      x509.SubjectAlternativeNameExtension | undefined;
    expect(san?.names.toJSON().map((n) => n.value)).toEqual([
      'spiffe://cluster.local/ns/default/sa/reviews',
    ]);
  });
});

describe('credentialsFromGrant', () => {
  let mesh: TestMeshCa;
  beforeEach(async () => {
    mesh = await createTestMeshCa();
  });
  afterEach(async () => {
    await mesh.close();
  });

  it('refuses a certificate for another key, another identity, or from an unknown root', async () => {
    const csr = await createWorkloadCsr(reviewsIdentity);
    const other = await createWorkloadCsr(reviewsIdentity);
    const grant = await mesh.ca.issueWorkloadCertificate(csr.csrPem, reviewsIdentity);
    const id = 'spiffe://cluster.local/ns/default/sa/reviews';
    expect(credentialsFromGrant(csr, grant, id).serialNumber).toBe(grant.serialNumber);
    expect(() => credentialsFromGrant(other, grant, id)).toThrow(/not for our key/);
    const ratings = await mesh.ca.issueWorkloadCertificate(csr.csrPem, {
      namespace: 'default',
      serviceAccount: 'ratings',
    });
    expect(() => credentialsFromGrant(csr, ratings, id)).toThrow(
      /issued spiffe:\/\/cluster.local\/ns\/default\/sa\/ratings, but this proxy is .*reviews/,
    );
    const foreign = await createTestMeshCa();
    try {
      const foreignGrant = { ...grant, rootPem: foreign.ca.rootPem, chainPem: undefined };
      expect(() => credentialsFromGrant(csr, foreignGrant, id)).toThrow(/not signed/);
    } finally {
      await foreign.close();
    }
  });
});

describe('WorkloadCertificateRenewer in fake time', () => {
  let mesh: TestMeshCa;
  let timers: ManualTimers;
  const renewers: WorkloadCertificateRenewer[] = [];

  beforeEach(async () => {
    // Fake time starts 12 h before real time, so the certificates the CA signs at fake times
    // are valid at real time, when the TLS handshakes of the rotation test check them.
    timers = new ManualTimers(Date.now() - 12 * HOUR);
    mesh = await createTestMeshCa({ now: () => timers.now() });
  });
  afterEach(async () => {
    for (const r of renewers.splice(0)) r.stop();
    await mesh.close();
  });

  function renewer(
    identity: { namespace: string; serviceAccount: string },
    requestCertificate?: (csrPem: string) => Promise<CertificateGrant>,
  ): WorkloadCertificateRenewer {
    const r = new WorkloadCertificateRenewer({
      identity,
      requestCertificate:
        requestCertificate ?? ((csrPem) => mesh.ca.issueWorkloadCertificate(csrPem, identity)),
      timers,
      random: () => 0,
    });
    renewers.push(r);
    return r;
  }

  it('gets a certificate on start and renews it at half-life with a new key', async () => {
    const r = renewer(reviewsIdentity);
    const first = await r.start();
    expect(r.current).toBe(first);
    expect(first.spiffeId).toBe('spiffe://cluster.local/ns/default/sa/reviews');
    expect(first.notAfter.getTime() - first.notBefore.getTime()).toBe(24 * HOUR + 5 * 60_000);
    expect(timers.nextDueAt).toBe(first.renewAt.getTime());

    let rotations = 0;
    r.on('rotated', () => rotations++);
    timers.advanceTo(first.renewAt.getTime() - 1);
    expect(rotations).toBe(0);

    const rotated = once(r, 'rotated') as Promise<[WorkloadCredentials, WorkloadCredentials]>;
    timers.advanceTo(first.renewAt.getTime());
    const [next, previous] = await rotated;
    expect(previous).toBe(first);
    expect(r.current).toBe(next);
    expect(next.serialNumber).not.toBe(first.serialNumber);
    expect(next.keyPem).not.toBe(first.keyPem);
    expect(next.notBefore.getTime()).toBe(
      Math.floor((first.renewAt.getTime() - 5 * 60_000) / 1000) * 1000,
    );
    expect(timers.nextDueAt).toBe(next.renewAt.getTime());
    expect(timers.pendingCount).toBe(1);
  });

  // Regression: with a 20 s lifetime the 5 min backdate made every certificate due for renewal
  // on arrival, and each proxy renewed in a loop (86 times in 3 s).
  it('renews a 20 s certificate about every 10 s, not continuously', async () => {
    const shortCa = await createTestMeshCa({ now: () => timers.now(), workloadTtlMs: 20_000 });
    try {
      const r = renewer(reviewsIdentity, (csrPem) =>
        shortCa.ca.issueWorkloadCertificate(csrPem, reviewsIdentity),
      );
      const first = await r.start();
      expect(first.notAfter.getTime() - first.notBefore.getTime()).toBeLessThanOrEqual(22_000);
      const start = timers.now();
      const renewedAt: number[] = [];
      r.on('rotated', () => renewedAt.push(timers.now()));
      // A minute in 100 ms steps: a loop would renew at every step.
      for (let t = start + 100; t <= start + 60_000; t += 100) {
        const due = timers.nextDueAt as number;
        const rotated = due <= t ? once(r, 'rotated') : undefined;
        timers.advanceTo(t);
        await rotated;
      }
      expect(renewedAt.length).toBeGreaterThanOrEqual(5);
      expect(renewedAt.length).toBeLessThanOrEqual(7);
      const gaps = renewedAt.map((at, i) => at - (renewedAt[i - 1] ?? start));
      for (const gap of gaps) {
        expect(gap).toBeGreaterThanOrEqual(9_000);
        expect(gap).toBeLessThanOrEqual(10_100);
      }
    } finally {
      await shortCa.close();
    }
  });

  it('retries failures with exponential backoff, then rotates and resets the backoff', async () => {
    let failuresLeft = 0;
    const r = renewer(reviewsIdentity, async (csrPem) => {
      if (failuresLeft > 0) {
        failuresLeft--;
        throw new Error('control plane unavailable');
      }
      return mesh.ca.issueWorkloadCertificate(csrPem, reviewsIdentity);
    });
    const first = await r.start();
    const failures: RenewalFailure[] = [];
    r.on('renewalFailed', (err, failure) => {
      expect(err.message).toBe('control plane unavailable');
      failures.push(failure);
    });

    failuresLeft = 3;
    const nextFailure = () => once(r, 'renewalFailed');
    let failed = nextFailure();
    timers.advanceTo(first.renewAt.getTime());
    await failed;
    failed = nextFailure();
    timers.advance(1000);
    await failed;
    failed = nextFailure();
    timers.advance(2000);
    await failed;
    expect(failures).toEqual([
      { attempt: 1, retryInMs: 1000, expiresAt: first.notAfter },
      { attempt: 2, retryInMs: 2000, expiresAt: first.notAfter },
      { attempt: 3, retryInMs: 4000, expiresAt: first.notAfter },
    ]);
    expect(r.current).toBe(first);

    const rotated = once(r, 'rotated');
    timers.advance(3999);
    expect(failures).toHaveLength(3);
    timers.advance(1);
    await rotated;
    expect(r.current).not.toBe(first);

    // The next failure starts from the first delay again.
    failuresLeft = 1;
    failed = nextFailure();
    timers.advanceTo((r.current as WorkloadCredentials).renewAt.getTime());
    await failed;
    expect(failures[3]?.retryInMs).toBe(1000);
  });

  it('caps the backoff and applies jitter below the delay', async () => {
    let attempts = 0;
    const r = new WorkloadCertificateRenewer({
      identity: reviewsIdentity,
      requestCertificate: async () => {
        attempts++;
        throw new Error('down');
      },
      timers,
      backoff: { initialMs: 1000, maxMs: 5000, factor: 3, jitter: 0.5 },
      random: () => 0.5,
    });
    renewers.push(r);
    const delays: number[] = [];
    r.on('renewalFailed', (_err, f) => delays.push(f.retryInMs));
    r.start().catch(() => undefined); // rejected by stop() in afterEach
    for (let i = 0; i < 4; i++) {
      const failed = once(r, 'renewalFailed');
      if (i > 0) timers.advance(delays[i - 1] as number);
      await failed;
    }
    // 1000, 3000, 5000 (cap), 5000, each less a quarter (jitter 0.5 × random 0.5).
    expect(delays).toEqual([750, 2250, 3750, 3750]);
    expect(attempts).toBe(4);
    expect(r.current).toBeUndefined();
  });

  it('reports a certificate for another identity as a failure and keeps the old one', async () => {
    let wrong = false;
    const r = renewer(reviewsIdentity, (csrPem) =>
      mesh.ca.issueWorkloadCertificate(csrPem, wrong ? productpageIdentity : reviewsIdentity),
    );
    const first = await r.start();
    wrong = true;
    const failed = once(r, 'renewalFailed') as Promise<[Error, RenewalFailure]>;
    timers.advanceTo(first.renewAt.getTime());
    const [err] = await failed;
    expect(err.message).toMatch(/is the join token for another namespace or service account/);
    expect(r.current).toBe(first);
  });

  it('stops: no timer left, start() after stop rejects, a pending start() rejects', async () => {
    const r = renewer(reviewsIdentity);
    await r.start();
    expect(timers.pendingCount).toBe(1);
    r.stop();
    expect(timers.pendingCount).toBe(0);
    await expect(r.start()).rejects.toThrow(/stopped/);

    const never = renewer(reviewsIdentity, () => new Promise<CertificateGrant>(() => undefined));
    const pending = never.start();
    never.stop();
    await expect(pending).rejects.toThrow(/stopped before the first certificate/);
  });

  it('renews at once on renewNow()', async () => {
    const r = renewer(reviewsIdentity);
    const first = await r.start();
    const rotated = once(r, 'rotated');
    await r.renewNow();
    await rotated;
    expect(r.current?.serialNumber).not.toBe(first.serialNumber);
    expect(timers.pendingCount).toBe(1);
  });

  it('rotates a live server without dropping an open connection; new connections get the new certificate', async () => {
    const server = renewer(reviewsIdentity);
    const client = renewer(productpageIdentity);
    const [serverFirst, clientFirst] = await Promise.all([server.start(), client.start()]);

    // A line echo server that says which client certificate each connection presented.
    const clientSerials: string[] = [];
    const tlsServer: Server = createServer(mtlsServerOptions(serverFirst), (socket: TLSSocket) => {
      clientSerials.push(socket.getPeerX509Certificate()?.serialNumber ?? '');
      const peer = peerIdentityOfSocket(socket);
      socket.setEncoding('utf8');
      socket.on('data', (line: string) => socket.write(`${peer?.serviceAccount} said ${line}`));
    });
    server.on('rotated', (next) => tlsServer.setSecureContext(secureContextOptions(next)));
    const open = new Set<TLSSocket>();
    try {
      await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
      const { port } = tlsServer.address() as { port: number };
      const expectation = expectPeers({ identities: [server.spiffeId] });
      let clientOptions: ConnectionOptions = mtlsClientOptions(clientFirst, expectation);
      client.on('rotated', (next) => (clientOptions = mtlsClientOptions(next, expectation)));

      // The server certificate each connection got, read at connect time (a Node client socket
      // may stop reporting it once a session ticket arrives).
      const serverSerial = new Map<TLSSocket, string | undefined>();
      const dial = async () => {
        const socket = connect({ host: '127.0.0.1', port, ...clientOptions });
        open.add(socket);
        socket.setEncoding('utf8');
        await once(socket, 'secureConnect');
        serverSerial.set(socket, socket.getPeerX509Certificate()?.serialNumber);
        return socket;
      };
      const ask = async (socket: TLSSocket, line: string) => {
        const answer = once(socket, 'data') as Promise<[string]>;
        socket.write(line);
        return (await answer)[0];
      };

      const longLived = await dial();
      let longLivedClosed = false;
      longLived.on('close', () => (longLivedClosed = true));
      expect(await ask(longLived, 'before')).toBe('productpage said before');
      expect(serverSerial.get(longLived)).toBe(serverFirst.serialNumber);

      // Both renew at their half-life (the same fake instant: issued together).
      const rotations = Promise.all([once(server, 'rotated'), once(client, 'rotated')]);
      timers.advanceTo(Math.max(serverFirst.renewAt.getTime(), clientFirst.renewAt.getTime()));
      await rotations;
      const serverNext = server.current as WorkloadCredentials;
      const clientNext = client.current as WorkloadCredentials;
      expect(serverNext.serialNumber).not.toBe(serverFirst.serialNumber);

      // The connection made before the rotation still works, on the old certificates.
      expect(await ask(longLived, 'after')).toBe('productpage said after');
      expect(longLivedClosed).toBe(false);
      expect(serverSerial.get(longLived)).toBe(serverFirst.serialNumber);

      // A new connection sees the new server certificate and presents the new client one.
      const fresh = await dial();
      expect(serverSerial.get(fresh)).toBe(serverNext.serialNumber);
      expect(new X509Certificate(serverNext.certificatePem).serialNumber).toBe(
        serverNext.serialNumber,
      );
      expect(await ask(fresh, 'new')).toBe('productpage said new');
      expect(clientSerials).toEqual([clientFirst.serialNumber, clientNext.serialNumber]);
      expect(await ask(longLived, 'still')).toBe('productpage said still');
    } finally {
      for (const s of open) s.destroy();
      await new Promise((resolve) => tlsServer.close(resolve));
    }
  });
});
