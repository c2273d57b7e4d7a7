import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mtlsServerOptions } from '../../../shared/identity/peer-verification.ts';
import { MeshPools } from '../../../shared/proxy/mesh-pools.ts';
import { createTestMeshCa, type TestMeshCa } from '../../helpers/mesh-ca.ts';

// MeshPools in-process against an mTLS server: a rotation gives new requests a new pool (and
// certificate) while the request in flight on the old one finishes; a peer that is not the
// expected identity is refused at the handshake.

let ca: TestMeshCa;
let server: Server;
let origin: string;
const seen: { path: string; serial: string }[] = [];
let release: (() => void) | undefined;

beforeAll(async () => {
  ca = await createTestMeshCa();
  server = createServer(mtlsServerOptions(await ca.credentials('ns', 'server')), (req, res) => {
    const serial = (req.socket as TLSSocket).getPeerX509Certificate()?.serialNumber ?? '';
    seen.push({ path: req.url ?? '', serial });
    if (req.url === '/slow') release = () => res.end('slow');
    else res.end('ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await ca.close();
});

describe('MeshPools', () => {
  it('rotates: new requests use the new certificate, the one in flight finishes on the old', async () => {
    const handshakes: (Error | undefined)[] = [];
    const pools = new MeshPools({ onHandshake: (_o, err) => handshakes.push(err) });
    const first = await ca.credentials('ns', 'client');
    const second = await ca.credentials('ns', 'client');
    pools.setCredentials(first);
    const peer = pools.get(
      origin,
      'spiffe://cluster.local/ns/ns/sa/server',
      'outbound_.80_._.server.ns.svc.cluster.local',
    );
    const slow = peer.request({ method: 'GET', path: '/slow' });
    while (!release) await new Promise((r) => setTimeout(r, 5));
    pools.setCredentials(second);
    const fresh = await peer.request({ method: 'GET', path: '/fresh' });
    expect(await fresh.body.text()).toBe('ok');
    (release as () => void)();
    const old = await slow;
    expect(old.statusCode).toBe(200);
    expect(await old.body.text()).toBe('slow');
    expect(seen.find((s) => s.path === '/slow')?.serial).toBe(first.serialNumber);
    expect(seen.find((s) => s.path === '/fresh')?.serial).toBe(second.serialNumber);
    expect(handshakes).toEqual([undefined, undefined]);
    await pools.close();
  });

  it('refuses a peer that does not prove the expected identity', async () => {
    const handshakes: (Error | undefined)[] = [];
    const pools = new MeshPools({ onHandshake: (_o, err) => handshakes.push(err) });
    pools.setCredentials(await ca.credentials('ns', 'client'));
    const before = seen.length;
    await expect(
      pools.get(origin, 'spiffe://cluster.local/ns/ns/sa/someone-else').request({
        method: 'GET',
        path: '/x',
      }),
    ).rejects.toMatchObject({ code: 'MG_ERR_PEER_IDENTITY' });
    expect(seen.length).toBe(before);
    expect(handshakes[0]?.message).toContain('spiffe://cluster.local/ns/ns/sa/server');
    await pools.close();
  });
});
