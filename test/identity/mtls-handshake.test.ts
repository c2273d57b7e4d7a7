// Real mutual TLS on 127.0.0.1 between workloads holding certificates from the mesh CA.
import { connect as netConnect, createServer as createNetServer, type Socket } from 'node:net';
import {
  connect,
  createServer,
  type ConnectionOptions,
  type Server,
  type TLSSocket,
} from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  expectPeers,
  identityFromCertificate,
  isTlsClientHello,
  mtlsClientOptions,
  mtlsServerOptions,
  peerIdentityOfSocket,
  type MtlsCredentials,
  type PeerIdentity,
} from '../../shared/identity/peer-verification.ts';
import type { WorkloadCredentials } from '../../shared/identity/workload-identity.ts';
import { createTestMeshCa, type TestMeshCa } from '../helpers/mesh-ca.ts';

let mesh: TestMeshCa;
let foreign: TestMeshCa;
let expiredMesh: TestMeshCa;
let reviews: WorkloadCredentials;
let productpage: WorkloadCredentials;
let impostor: WorkloadCredentials;
let expiredProductpage: WorkloadCredentials;

beforeAll(async () => {
  mesh = await createTestMeshCa();
  foreign = await createTestMeshCa();
  // Its clock is two days behind, so what it signs has expired by real time.
  const twoDaysAgo = Date.now() - 48 * 3_600_000;
  expiredMesh = await createTestMeshCa({ now: () => twoDaysAgo });
  [reviews, productpage, impostor] = await Promise.all([
    mesh.credentials('default', 'reviews'),
    mesh.credentials('default', 'productpage'),
    // Same identity as productpage, signed by another root.
    foreign.credentials('default', 'productpage'),
  ]);
  expiredProductpage = await expiredMesh.credentials('default', 'productpage');
});

afterAll(async () => {
  await Promise.all([mesh?.close(), foreign?.close(), expiredMesh?.close()]);
});

interface ServerRecord {
  server: Server;
  port: number;
  /** The peer identity of each connection that completed the handshake. */
  accepted: (PeerIdentity | undefined)[];
  /** Why each unverified client was not authorized (only seen with rejectUnauthorized: false). */
  authorizationErrors: string[];
  /** Handshakes that failed (TLS alerts; a rejected certificate just closes the socket). */
  refused: Error[];
}

const servers: Server[] = [];
const sockets = new Set<Socket>();

afterEach(async () => {
  for (const s of sockets) s.destroy();
  sockets.clear();
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

/** A server that greets each verified peer with its principal and closes. */
async function startGreeter(
  credentials: MtlsCredentials,
  options: { rejectUnauthorized?: boolean } = {},
): Promise<ServerRecord> {
  const record: Omit<ServerRecord, 'port'> = {
    server: createServer(mtlsServerOptions(credentials, options), (socket: TLSSocket) => {
      const peer = peerIdentityOfSocket(socket);
      record.accepted.push(peer);
      if (socket.authorizationError)
        record.authorizationErrors.push(String(socket.authorizationError));
      socket.end(`hello ${peer?.principal ?? 'anonymous'}\n`);
    }),
    accepted: [],
    authorizationErrors: [],
    refused: [],
  };
  record.server.on('connection', (s: Socket) => sockets.add(s));
  record.server.on('tlsClientError', (err) => record.refused.push(err));
  servers.push(record.server);
  await new Promise<void>((resolve) => record.server.listen(0, '127.0.0.1', resolve));
  const address = record.server.address();
  return { ...record, port: typeof address === 'object' && address ? address.port : 0 };
}

interface Outcome {
  secureConnected: boolean;
  cipher: string | undefined;
  protocol: string | null | undefined;
  serverIdentity: PeerIdentity | undefined;
  received: string;
  error: Error | undefined;
}

/** Connects, reads until the connection closes, and reports what happened. */
function exchange(port: number, options: ConnectionOptions): Promise<Outcome> {
  return new Promise((resolve) => {
    const outcome: Outcome = {
      secureConnected: false,
      cipher: undefined,
      protocol: undefined,
      serverIdentity: undefined,
      received: '',
      error: undefined,
    };
    const socket = connect({ host: '127.0.0.1', port, ...options }, () => {
      outcome.secureConnected = true;
      outcome.cipher = socket.getCipher().name;
      outcome.protocol = socket.getProtocol();
      const cert = socket.getPeerX509Certificate();
      outcome.serverIdentity = cert ? identityFromCertificate(cert) : undefined;
    });
    sockets.add(socket);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (outcome.received += chunk));
    socket.on('error', (err) => (outcome.error ??= err));
    socket.on('close', () => resolve(outcome));
  });
}

/** An attacker's client: its own root's certificate for productpage; it knows the mesh root. */
function impostorOptions(): ConnectionOptions {
  return mtlsClientOptions({ ...impostor, rootPem: reviews.rootPem }, expectPeers());
}

/** productpage with an expired certificate (from a root the test server is told to trust). */
function expiredOptions(): ConnectionOptions {
  return {
    key: expiredProductpage.keyPem,
    cert: expiredProductpage.certificatePem,
    ca: reviews.rootPem,
    checkServerIdentity: () => undefined,
  };
}

const expectReviews = () => expectPeers({ identities: ['cluster.local/ns/default/sa/reviews'] });

describe('mutual TLS between mesh workloads', () => {
  it('completes a handshake in which each side sees the other SPIFFE id', async () => {
    const server = await startGreeter(reviews);
    const outcome = await exchange(server.port, mtlsClientOptions(productpage, expectReviews()));
    expect(outcome.error).toBeUndefined();
    expect(outcome.secureConnected).toBe(true);
    // TLS 1.3 with AES-128-GCM, not OpenSSL's default first choice AES-256-GCM.
    expect(outcome.protocol).toBe('TLSv1.3');
    expect(outcome.cipher).toBe('TLS_AES_128_GCM_SHA256');
    expect(outcome.serverIdentity?.spiffeId).toBe('spiffe://cluster.local/ns/default/sa/reviews');
    expect(outcome.received).toBe('hello cluster.local/ns/default/sa/productpage\n');
    expect(server.accepted).toEqual([
      {
        spiffeId: 'spiffe://cluster.local/ns/default/sa/productpage',
        principal: 'cluster.local/ns/default/sa/productpage',
        trustDomain: 'cluster.local',
        namespace: 'default',
        serviceAccount: 'productpage',
      },
    ]);
  });

  it('accepts any workload of the trust domain when no identities are expected', async () => {
    const server = await startGreeter(reviews);
    const outcome = await exchange(server.port, mtlsClientOptions(productpage, expectPeers()));
    expect(outcome.error).toBeUndefined();
    expect(outcome.received).toMatch(/^hello cluster.local\/ns\/default\/sa\/productpage/);
  });

  it('refuses a client whose certificate comes from a different root', async () => {
    const server = await startGreeter(reviews);
    const outcome = await exchange(server.port, impostorOptions());
    // Node's server drops a client whose certificate fails verification before any byte is sent.
    expect(outcome.received).toBe('');
    expect(server.accepted).toEqual([]);
  });

  it('refuses a server whose certificate comes from a different root', async () => {
    const server = await startGreeter(impostor);
    const outcome = await exchange(server.port, mtlsClientOptions(productpage, expectPeers()));
    expect(outcome.secureConnected).toBe(false);
    expect(outcome.received).toBe('');
    expect(outcome.error?.message).toMatch(/certificate|issuer/i);
    expect(server.accepted).toEqual([]);
  });

  it('refuses a server whose identity is not the one expected for the destination', async () => {
    const server = await startGreeter(reviews);
    const expectRatings = expectPeers({
      identities: ['spiffe://cluster.local/ns/default/sa/ratings'],
    });
    const outcome = await exchange(server.port, mtlsClientOptions(productpage, expectRatings));
    expect(outcome.secureConnected).toBe(false);
    expect(outcome.received).toBe('');
    expect(outcome.error?.message).toMatch(
      /MG_ERR_PEER_IDENTITY: peer spiffe:\/\/cluster.local\/ns\/default\/sa\/reviews is not one of the expected identities/,
    );
  });

  it('refuses a client with no certificate (STRICT)', async () => {
    const server = await startGreeter(reviews);
    const outcome = await exchange(server.port, {
      ca: reviews.rootPem,
      checkServerIdentity: () => undefined,
    });
    expect(outcome.received).toBe('');
    expect(server.accepted).toEqual([]);
    expect(server.refused[0]?.message).toMatch(/certificate/i);
  });

  it('refuses a client whose certificate has expired', async () => {
    // The server trusts the expired certificate's root, so only the expiry can fail it.
    const server = await startGreeter({ ...reviews, rootPem: expiredProductpage.rootPem });
    const outcome = await exchange(server.port, expiredOptions());
    expect(outcome.received).toBe('');
    expect(server.accepted).toEqual([]);
  });

  it('lets a permissive server finish the handshake and tell verified peers from the rest', async () => {
    const server = await startGreeter(reviews, { rejectUnauthorized: false });
    const verified = await exchange(server.port, mtlsClientOptions(productpage, expectReviews()));
    expect(verified.received).toBe('hello cluster.local/ns/default/sa/productpage\n');
    const noCert = await exchange(server.port, {
      ca: reviews.rootPem,
      checkServerIdentity: () => undefined,
    });
    expect(noCert.received).toBe('hello anonymous\n');
    const otherRoot = await exchange(server.port, impostorOptions());
    expect(otherRoot.received).toBe('hello anonymous\n');
    expect(server.accepted.map((p) => p?.serviceAccount)).toEqual([
      'productpage',
      undefined,
      undefined,
    ]);
    expect(server.authorizationErrors).toEqual([
      'UNABLE_TO_GET_ISSUER_CERT',
      'SELF_SIGNED_CERT_IN_CHAIN', // the impostor sent its own root along
    ]);
  });

  it('names the reason a permissive server did not verify an expired certificate', async () => {
    const server = await startGreeter(
      { ...reviews, rootPem: expiredProductpage.rootPem },
      { rejectUnauthorized: false },
    );
    const outcome = await exchange(server.port, expiredOptions());
    expect(outcome.received).toBe('hello anonymous\n');
    expect(server.authorizationErrors).toEqual(['CERT_HAS_EXPIRED']);
  });
});

describe('isTlsClientHello', () => {
  it('tells a TLS ClientHello from plaintext HTTP by the first bytes', async () => {
    const firstChunks: Buffer[] = [];
    const sniffer = createNetServer((socket) => {
      sockets.add(socket);
      socket.once('data', (chunk: Buffer) => {
        firstChunks.push(chunk);
        socket.destroy();
      });
    });
    servers.push(sniffer as unknown as Server);
    await new Promise<void>((resolve) => sniffer.listen(0, '127.0.0.1', resolve));
    const { port } = sniffer.address() as { port: number };

    await exchange(port, mtlsClientOptions(productpage, expectPeers()));
    await new Promise<void>((resolve) => {
      const plain = netConnect(port, '127.0.0.1', () =>
        plain.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
      );
      sockets.add(plain);
      plain.on('error', () => undefined);
      plain.on('close', () => resolve());
    });
    expect(firstChunks).toHaveLength(2);
    expect(isTlsClientHello(firstChunks[0] as Buffer)).toBe(true);
    expect(isTlsClientHello(firstChunks[1] as Buffer)).toBe(false);
    expect(isTlsClientHello(Buffer.from([0x16]))).toBe(false);
  });
});
