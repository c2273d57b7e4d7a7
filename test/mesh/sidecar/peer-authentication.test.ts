import { createServer as createHttpsServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { secureContextOptions } from '../../../shared/identity/peer-verification.ts';
import {
  closeAll,
  connectClient,
  startTestControlPlane,
  type TestControlPlane,
} from '../../helpers/control-plane.ts';
import { startEchoServer, type EchoServer } from '../../helpers/echo-server.ts';
import { send } from '../../helpers/http-request.ts';
import { issueCredentials, mtlsPool } from '../../helpers/mesh-credentials.ts';
import { createTestMeshCa, type TestMeshCa } from '../../helpers/mesh-ca.ts';
import { joinYaml, serviceYaml } from '../../helpers/mesh-config.ts';
import {
  killSidecars,
  startSidecar,
  type SidecarPorts,
  type SidecarProcess,
} from '../../helpers/sidecar-process.ts';
import type { WorkloadCredentials } from '../../../shared/identity/workload-identity.ts';

// PeerAuthentication at the sidecar's inbound port, with real sidecars and a real control plane:
// STRICT takes only mTLS with a client certificate of this mesh, PERMISSIVE takes both, DISABLE
// only plaintext, and a workload's portLevelMtls overrides its mode for the app port. Clients
// with no certificate, one from another CA or an expired one are refused at the handshake; a
// peer that is not the identity the control plane listed is refused by the caller.

const NS = 'sec';
const WORKLOADS = ['strict', 'permissive', 'disable', 'override', 'impostor'] as const;
let cp: TestControlPlane;
const apps: Record<string, EchoServer> = {};
const sidecars: Record<string, SidecarProcess> = {};
const ports: Record<string, SidecarPorts> = {};
const pools: Pool[] = [];
let tester: WorkloadCredentials;
let otherCa: TestMeshCa;

function pool(p: Pool): Pool {
  pools.push(p);
  return p;
}

function config(): string {
  const port = (n: string) => (apps[n] as EchoServer).port;
  return joinYaml(
    ...[...WORKLOADS, 'caller'].map((name) =>
      serviceYaml({ name, namespace: NS, targetPort: port(name) }),
    ),
    `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: strict, namespace: ${NS} }
spec:
  selector: { matchLabels: { app: strict } }
  mtls: { mode: STRICT }`,
    `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: disable, namespace: ${NS} }
spec:
  selector: { matchLabels: { app: disable } }
  mtls: { mode: DISABLE }`,
    // STRICT for the workload, but its app port (the workload port) is DISABLE.
    `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: override, namespace: ${NS} }
spec:
  selector: { matchLabels: { app: override } }
  mtls: { mode: STRICT }
  portLevelMtls:
    ${port('override')}: { mode: DISABLE }`,
  );
}

beforeAll(async () => {
  for (const name of [...WORKLOADS, 'caller']) apps[name] = await startEchoServer(name);
  cp = await startTestControlPlane({ 'mesh.yaml': config() }, { pushDebounceMs: 20 });
  for (const name of ['strict', 'permissive', 'disable', 'override', 'caller']) {
    const s = await startSidecar(cp, {
      service: name,
      namespace: NS,
      appPort: (apps[name] as EchoServer).port,
    });
    sidecars[name] = s;
  }
  await Promise.all(Object.values(sidecars).map((s) => s.ready()));
  for (const [name, s] of Object.entries(sidecars)) ports[name] = await s.ports();
  tester = await issueCredentials(cp.dataDir, NS, 'tester');
  otherCa = await createTestMeshCa();
});

afterAll(async () => {
  await Promise.all(pools.map((p) => p.destroy()));
  await killSidecars();
  await closeAll();
  await otherCa?.close();
  await Promise.all(Object.values(apps).map((a) => a.close()));
});

const inbound = (name: string) => `127.0.0.1:${(ports[name] as SidecarPorts).inbound}`;
const plaintext = (name: string) => pool(mtlsPool(`http://${inbound(name)}`, undefined));
const mtls = (name: string, credentials: WorkloadCredentials | undefined = tester) =>
  pool(mtlsPool(`https://${inbound(name)}`, credentials, { rootPem: cp.rootPem }));

async function handshakeFailures(name: string): Promise<number> {
  const stats = (
    await (sidecars[name] as SidecarProcess).admin<
      Record<string, { labels: Record<string, string>; value: number }[]>
    >('/stats')
  ).body;
  return (
    stats.meshgate_sidecar_mtls_handshakes_total?.find(
      (v) => v.labels.direction === 'inbound' && v.labels.result === 'failed',
    )?.value ?? 0
  );
}

describe('PeerAuthentication modes at the inbound port', () => {
  it('STRICT: mTLS with a mesh certificate is served, with the caller in XFCC', async () => {
    const res = await send(mtls('strict'), `https://${inbound('strict')}/hello`, {
      host: 'strict',
    });
    expect(res.status).toBe(200);
    expect(res.echo().headers['x-forwarded-client-cert']).toMatch(
      /^By=spiffe:\/\/cluster\.local\/ns\/sec\/sa\/strict;Hash=[0-9a-f]{64};Subject="";URI=spiffe:\/\/cluster\.local\/ns\/sec\/sa\/tester$/,
    );
  });

  it('STRICT refuses plaintext: the connection closes before any HTTP answer', async () => {
    const before = (apps.strict as EchoServer).requests.length;
    await expect(
      send(plaintext('strict'), `http://${inbound('strict')}/plain`, { host: 'strict' }),
    ).rejects.toThrow();
    expect((apps.strict as EchoServer).requests.length).toBe(before);
  });

  it('PERMISSIVE accepts mTLS and plaintext on one port; XFCC only for mTLS, never forwarded from the caller', async () => {
    const secure = await send(mtls('permissive'), `https://${inbound('permissive')}/m`, {
      host: 'permissive',
    });
    expect(secure.status).toBe(200);
    expect(secure.echo().headers['x-forwarded-client-cert']).toContain(
      'URI=spiffe://cluster.local/ns/sec/sa/tester',
    );
    const plain = await send(plaintext('permissive'), `http://${inbound('permissive')}/p`, {
      host: 'permissive',
      headers: { 'x-forwarded-client-cert': 'By=x;URI=spiffe://cluster.local/ns/sec/sa/admin' },
    });
    expect(plain.status).toBe(200);
    expect(plain.echo().path).toBe('/p');
    expect(plain.echo().headers['x-forwarded-client-cert']).toBeUndefined();
  });

  it('DISABLE: plaintext only; a TLS client gets no handshake', async () => {
    const plain = await send(plaintext('disable'), `http://${inbound('disable')}/p`, {
      host: 'disable',
    });
    expect(plain.status).toBe(200);
    await expect(
      send(mtls('disable'), `https://${inbound('disable')}/m`, { host: 'disable' }),
    ).rejects.toThrow();
  });

  it('portLevelMtls overrides the workload mode for the app port (STRICT workload, DISABLE port)', async () => {
    const plain = await send(plaintext('override'), `http://${inbound('override')}/p`, {
      host: 'override',
    });
    expect(plain.status).toBe(200);
    await expect(
      send(mtls('override'), `https://${inbound('override')}/m`, { host: 'override' }),
    ).rejects.toThrow();
    const dump = (
      await (sidecars.override as SidecarProcess).admin<{
        view: { inbound: { mtls: string; mtlsFrom: string } };
      }>('/config_dump')
    ).body;
    expect(dump.view.inbound.mtls).toBe('DISABLE');
  });

  it('a mesh caller behind its own sidecar reaches STRICT and PERMISSIVE workloads', async () => {
    const out = await (sidecars.caller as SidecarProcess).outbound();
    for (const name of ['strict', 'permissive']) {
      const res = await send(out, 'http://127.0.0.1/from-caller', { host: `${name}:9080` });
      expect(res.status, name).toBe(200);
      expect(res.echo().headers['x-forwarded-client-cert'], name).toContain(
        'URI=spiffe://cluster.local/ns/sec/sa/caller',
      );
    }
  });
});

describe('refused at the inbound port (STRICT)', () => {
  it('no client certificate, one from another CA, an expired one: each refused at the handshake', async () => {
    const before = await handshakeFailures('strict');
    const requests = (apps.strict as EchoServer).requests.length;
    // Issued four minutes ago for one minute (the root is backdated five minutes).
    const expired = await issueCredentials(cp.dataDir, NS, 'tester', {
      at: Date.now() - 4 * 60_000,
      ttlMs: 60_000,
    });
    expect(expired.notAfter.getTime()).toBeLessThan(Date.now());
    const foreign = await otherCa.credentials(NS, 'tester');
    const url = `https://${inbound('strict')}/x`;
    const noCertificate = pool(
      mtlsPool(`https://${inbound('strict')}`, undefined, { rootPem: cp.rootPem }),
    );
    await expect(send(noCertificate, url, { host: 'strict' })).rejects.toThrow();
    await expect(send(mtls('strict', foreign), url, { host: 'strict' })).rejects.toThrow();
    await expect(send(mtls('strict', expired), url, { host: 'strict' })).rejects.toThrow();
    expect((apps.strict as EchoServer).requests.length).toBe(requests);
    expect(await handshakeFailures('strict')).toBeGreaterThanOrEqual(before + 3);
  });

  it('the caller refuses a peer whose certificate is not the identity listed for the endpoint', async () => {
    // An impostor listens where the control plane says sec/impostor's sidecar is: the endpoint is
    // registered with identity sec/impostor (a real registration), but the server there presents
    // a valid mesh certificate of another identity.
    const someoneElse = await issueCredentials(cp.dataDir, NS, 'someone-else');
    let requestsSeen = 0;
    let handshakes = 0;
    const impostor: Server = createHttpsServer(
      { ...secureContextOptions(someoneElse), requestCert: true, rejectUnauthorized: false },
      (_req, res) => {
        requestsSeen++;
        res.end('impostor');
      },
    );
    impostor.on('secureConnection', () => handshakes++);
    await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve));
    try {
      const port = (impostor.address() as AddressInfo).port;
      const registration = await connectClient(cp, {
        proxyId: `sidecar~${NS}~impostor`,
        kind: 'sidecar',
        service: 'impostor',
        namespace: NS,
        serviceAccount: 'impostor',
        labels: { app: 'impostor' },
        address: '127.0.0.1',
        inboundPort: port,
        appPort: (apps.impostor as EchoServer).port,
      });
      await registration.client.start();
      const caller = sidecars.caller as SidecarProcess;
      await caller.meshEndpointsFor(`${NS}/impostor:9080`);
      const out = await caller.outbound();
      const res = await send(out, 'http://127.0.0.1/secret', {
        host: 'impostor:9080',
        headers: { 'x-request-id': 'impostor-1' },
      });
      expect(res.status).toBe(503);
      expect(res.json()).toMatchObject({ code: 'MG_ERR_UPSTREAM_CONNECT', response_flags: 'UF' });
      expect(requestsSeen).toBe(0);
      const line = await caller.accessLog('impostor-1');
      expect(line.flags).toBe('UF');
      const refusal = await caller.process.waitForLog(
        (l) =>
          l.msg === 'outbound mTLS handshake refused' && l.upstream === `https://127.0.0.1:${port}`,
        'the refused handshake',
      );
      expect(String(refusal.error)).toContain('spiffe://cluster.local/ns/sec/sa/someone-else');
      expect(String(refusal.error)).toContain('spiffe://cluster.local/ns/sec/sa/impostor');
      expect(handshakes).toBe(0);
    } finally {
      impostor.closeAllConnections();
      await new Promise((r) => impostor.close(r));
    }
  });
});
