// A discovery endpoint whose views the test writes by hand: the control plane's own HTTPS server
// (mesh/control-plane/discovery-server.ts) and a mesh CA, with a backend that issues any
// identity a token names and pushes whatever view the test gives it. For what the real control
// plane never sends (a view a proxy must refuse), and to watch a proxy's ACKs and NACKs.

import type { ServerResponse } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Server } from 'node:https';
import pino from 'pino';
import {
  createDiscoveryServer,
  type DiscoveryBackend,
} from '../../mesh/control-plane/discovery-server.ts';
import { compile } from '../../shared/config/compile/compile.ts';
import { parseTexts } from '../../shared/config/parse.ts';
import type { ProxyAck, ProxyHello, ProxyView } from '../../shared/discovery/protocol.ts';
import { MeshCa } from '../../shared/identity/mesh-ca.ts';

interface Stream {
  hello: ProxyHello;
  res: ServerResponse;
}

export class FakeDiscovery {
  readonly streams: Stream[] = [];
  readonly acks: ProxyAck[] = [];
  private view: ProxyView | undefined;
  private readonly waiters = new Set<() => void>();

  private constructor(
    private readonly server: Server,
    readonly ca: MeshCa,
    readonly dataDir: string,
    readonly discoveryUrl: string,
  ) {}

  static async start(): Promise<FakeDiscovery> {
    const dataDir = await mkdtemp(join(tmpdir(), 'meshgate-fake-discovery-'));
    const ca = await MeshCa.open({ dataDir });
    const serverCert = await ca.issueServerCertificate();
    const ref: { self?: FakeDiscovery } = {};
    const backend: DiscoveryBackend = {
      trustDomain: ca.trustDomain,
      rootPem: ca.rootPem,
      async issueCertificate(request, auth) {
        // Tokens are "fake:<namespace>:<service account>"; renewals keep the certificate's identity.
        const id = auth.client?.identity;
        const [, namespace, serviceAccount] = (auth.bearer ?? '').split(':');
        return ca.issueWorkloadCertificate(
          request.csr,
          id
            ? { namespace: id.namespace, serviceAccount: id.serviceAccount }
            : { namespace: namespace as string, serviceAccount: serviceAccount as string },
        );
      },
      openStream(hello, _client, res) {
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        const f = ref.self as FakeDiscovery;
        f.streams.push({ hello, res });
        res.once('close', () => {
          const i = f.streams.findIndex((s) => s.res === res);
          if (i >= 0) f.streams.splice(i, 1);
          f.wake();
        });
        if (f.view && f.view.version !== hello.currentVersion)
          res.write(`${JSON.stringify({ type: 'view', view: f.view })}\n`);
        f.wake();
      },
      ack(ack) {
        const f = ref.self as FakeDiscovery;
        f.acks.push(ack);
        f.wake();
      },
      heartbeat() {},
    };
    const server = createDiscoveryServer(backend, serverCert, pino({ enabled: false }));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    ref.self = new FakeDiscovery(server, ca, dataDir, `https://127.0.0.1:${port}`);
    return ref.self;
  }

  get rootPem(): string {
    return this.ca.rootPem;
  }

  async tokenFile(namespace: string, serviceAccount: string): Promise<string> {
    const file = join(this.dataDir, `token-${namespace}-${serviceAccount}`);
    await writeFile(file, `fake:${namespace}:${serviceAccount}\n`);
    return file;
  }

  /** Sends `view` on every open stream (and to every stream that opens later). */
  push(view: ProxyView): void {
    this.view = view;
    for (const s of this.streams) s.res.write(`${JSON.stringify({ type: 'view', view })}\n`);
  }

  /** The ACK or NACK of `version`, once it arrives (bounded). */
  ackOf(version: string, timeoutMs = 10_000): Promise<ProxyAck> {
    return this.until(
      () => this.acks.find((a) => a.version === version),
      `the ack of ${version}`,
      timeoutMs,
    );
  }

  until<T>(probe: () => T | undefined, what: string, timeoutMs = 10_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const v = probe();
        if (v === undefined) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(v);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out waiting for ${what}`));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  async close(): Promise<void> {
    for (const s of this.streams) s.res.destroy();
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
    await rm(this.dataDir, { recursive: true, force: true });
  }
}

/** A sidecar's view of a YAML config, as a control plane would cut it (every Service and route). */
export function viewOf(version: string, yaml: string): ProxyView {
  const parsed = parseTexts([{ file: 'view.yaml', text: yaml }]);
  if (parsed.errors.length > 0) throw new Error(parsed.errors.map((e) => e.message).join('\n'));
  const { snapshot } = compile(parsed.resources);
  return {
    version,
    snapshotVersion: snapshot.version,
    trustDomain: 'cluster.local',
    rootNamespace: snapshot.rootNamespace,
    gateways: [],
    routes: snapshot.routes,
    services: snapshot.services,
    meshEndpoints: {},
    tlsCertificates: [],
    effectivePolicies: snapshot.effectivePolicies,
    policySecrets: {},
    inbound: snapshot.meshSecurity,
    apis: [],
  };
}
