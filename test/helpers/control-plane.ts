// An in-process control plane on loopback for tests (a temporary config folder and data folder,
// free ports), and discovery clients that record what they are sent. Everything is closed by
// `closeAll()` (call it in afterEach).

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Agent, request } from 'undici';
import { ControlPlane, type ControlPlaneOptions } from '../../mesh/control-plane/control-plane.ts';
import {
  DiscoveryClient,
  type ApplyResult,
  type DiscoveryClientOptions,
} from '../../shared/discovery/client.ts';
import type { ProxyHello, ProxyView } from '../../shared/discovery/protocol.ts';
import { JoinTokenStore } from '../../shared/identity/join-tokens.ts';
import {
  secureContextOptions,
  type MtlsCredentials,
} from '../../shared/identity/peer-verification.ts';
import { ConfigFolder } from './config-folder.ts';

const cleanups: (() => Promise<unknown>)[] = [];

/** Closes every control plane, client and folder the test made, newest first. */
export async function closeAll(): Promise<void> {
  while (cleanups.length > 0) await (cleanups.pop() as () => Promise<unknown>)();
}

/** Logs to nowhere unless MESHGATE_TEST_LOGS=1. */
export function testLogger(name: string) {
  return process.env.MESHGATE_TEST_LOGS === '1'
    ? pino({ name, level: 'debug' })
    : pino({ enabled: false });
}

export interface TestControlPlane {
  cp: ControlPlane;
  folder: ConfigFolder;
  dataDir: string;
  discoveryPort: number;
  adminPort: number;
  discoveryUrl: string;
  adminUrl: string;
  rootPem: string;
  /** A join token file for an identity (written to the data folder's token store). */
  tokenFile(
    namespace: string,
    serviceAccount: string,
    options?: { ttlMs?: number; now?: () => number },
  ): Promise<string>;
  /** Stops it (goaway to every stream); a new one may start on the same ports and data. */
  stop(): Promise<void>;
  /** Starts a new control plane on the same folders and ports (after stop()). */
  restart(): Promise<TestControlPlane>;
}

export async function startTestControlPlane(
  files: Record<string, string>,
  options: Partial<ControlPlaneOptions> & { folder?: ConfigFolder; dataDir?: string } = {},
): Promise<TestControlPlane> {
  const folder = options.folder ?? (await ConfigFolder.create(files));
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'meshgate-cp-data-')));
  if (!options.folder) cleanups.push(() => folder.remove());
  if (!options.dataDir) cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  const cp = new ControlPlane({
    configDir: folder.dir,
    dataDir,
    discoveryPort: 0,
    adminPort: 0,
    logger: testLogger('control-plane'),
    configDebounceMs: 20,
    goawayRetryAfterMs: 50,
    ...options,
  });
  const ports = await cp.start();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await cp.close();
  };
  cleanups.push(stop);
  const tokenDir = join(dataDir, 'token-files');
  let tokens = 0;
  const t: TestControlPlane = {
    cp,
    folder,
    dataDir,
    ...ports,
    discoveryUrl: `https://127.0.0.1:${ports.discoveryPort}`,
    adminUrl: `http://127.0.0.1:${ports.adminPort}`,
    rootPem: cp.rootPem,
    async tokenFile(namespace, serviceAccount, tokenOptions = {}) {
      const store = new JoinTokenStore(dataDir, tokenOptions.now ? { now: tokenOptions.now } : {});
      const created = await store.create({
        namespace,
        serviceAccount,
        ...(tokenOptions.ttlMs ? { ttlMs: tokenOptions.ttlMs } : {}),
      });
      const { mkdir } = await import('node:fs/promises');
      await mkdir(tokenDir, { recursive: true });
      const file = join(tokenDir, `token-${++tokens}`);
      await writeFile(file, `${created.token}\n`, { mode: 0o600 });
      return file;
    },
    stop,
    restart: () =>
      startTestControlPlane(files, {
        ...options,
        folder,
        dataDir,
        discoveryPort: ports.discoveryPort,
        adminPort: ports.adminPort,
      }),
  };
  return t;
}

/** A DiscoveryClient that records every view it applied and every NACK. */
export class RecordingClient {
  readonly views: ProxyView[] = [];
  readonly nacks: { version: string; error: string }[] = [];
  readonly client: DiscoveryClient;
  /** Returns an error to NACK a view; undefined accepts it. */
  refuse: ((view: ProxyView) => string | undefined) | undefined;
  private readonly waiters = new Set<() => void>();

  constructor(options: Omit<DiscoveryClientOptions, 'apply'>) {
    this.client = new DiscoveryClient({
      ...options,
      apply: (view): ApplyResult => {
        const error = this.refuse?.(view);
        return error ? { ok: false, error } : { ok: true };
      },
    });
    // After every listener of the event has run, so probes see what later listeners recorded.
    const wake = () =>
      queueMicrotask(() => {
        for (const w of [...this.waiters]) w();
      });
    this.client.on('view', (v) => {
      this.views.push(v);
      wake();
    });
    this.client.on('nack', (version, error) => {
      this.nacks.push({ version, error });
      wake();
    });
    for (const e of ['connected', 'disconnected', 'heartbeat'] as const) this.client.on(e, wake);
    cleanups.push(() => this.client.stop());
  }

  get version(): string | undefined {
    return this.client.currentView?.version;
  }

  /** Resolves when `probe` holds (checked at every client event); bounded by `timeoutMs`. */
  until<T>(probe: () => T | undefined | false, what: string, timeoutMs = 10_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const v = probe();
        if (v !== undefined && v !== false) {
          clearTimeout(timer);
          this.waiters.delete(check);
          resolve(v);
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(
          new Error(
            `timed out waiting for ${what}; views: ${this.views.map((v) => v.version).join(', ')}`,
          ),
        );
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }
}

export function sidecarHello(
  name: string,
  overrides: Partial<Omit<ProxyHello, 'currentVersion'>> = {},
): Omit<ProxyHello, 'currentVersion'> {
  const namespace = overrides.namespace ?? 'bookinfo';
  return {
    proxyId: `sidecar~${namespace}~${name}`,
    kind: 'sidecar',
    namespace,
    serviceAccount: name,
    labels: { app: name },
    address: '127.0.0.1',
    inboundPort: 15006,
    appPort: 9080,
    service: name,
    ...overrides,
  };
}

/** Starts a recording client for `hello` with a fresh token of its identity. */
export async function connectClient(
  cp: TestControlPlane,
  hello: Omit<ProxyHello, 'currentVersion'>,
  options: Partial<Omit<DiscoveryClientOptions, 'apply' | 'hello'>> = {},
): Promise<RecordingClient> {
  const tokenFile = await cp.tokenFile(hello.namespace, hello.serviceAccount);
  const c = new RecordingClient({
    controlPlaneUrl: cp.discoveryUrl,
    rootCaPem: cp.rootPem,
    tokenFile,
    hello,
    logger: testLogger(hello.proxyId),
    reconnectBackoff: { initialMs: 20, maxMs: 200 },
    ...options,
  });
  return c;
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json(): Record<string, unknown>;
}

/**
 * One HTTPS request to the discovery port, with a client certificate or none: for the refusals a
 * DiscoveryClient would never provoke. A stream that opens (200) is read for its first line only.
 */
export async function discoveryRequest(
  url: string,
  options: {
    rootPem: string;
    method?: string;
    body?: unknown;
    credentials?: MtlsCredentials;
    headers?: Record<string, string>;
  },
): Promise<RawResponse> {
  const tls = options.credentials ? secureContextOptions(options.credentials) : {};
  const agent = new Agent({ connect: { ...tls, ca: options.rootPem } });
  try {
    const res = await request(url, {
      method: (options.method ?? 'POST') as 'POST',
      dispatcher: agent,
      headers: { 'content-type': 'application/json', ...options.headers },
      ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
    });
    let text = '';
    if (res.statusCode === 200 && String(res.headers['content-type']).includes('ndjson')) {
      for await (const chunk of res.body) {
        text += String(chunk);
        if (text.includes('\n')) break;
      }
    } else text = await res.body.text();
    return {
      status: res.statusCode,
      headers: res.headers,
      text,
      json: () => JSON.parse(text.split('\n')[0] as string) as Record<string, unknown>,
    };
  } finally {
    await agent.destroy();
  }
}

/** GET (or POST) on the admin API. */
export async function admin<T = Record<string, unknown>>(
  cp: { adminUrl: string },
  path: string,
  init: { method?: string; body?: unknown } = {},
): Promise<{ status: number; body: T; text: string; contentType: string }> {
  const res = await fetch(`${cp.adminUrl}${path}`, {
    method: init.method ?? 'GET',
    ...(init.body !== undefined
      ? { body: JSON.stringify(init.body), headers: { 'content-type': 'application/json' } }
      : {}),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: the text
  }
  return {
    status: res.status,
    body: body as T,
    text,
    contentType: res.headers.get('content-type') ?? '',
  };
}

export interface StatusRow {
  proxyId: string;
  kind: string;
  identity: string;
  state: string;
  latestVersion: string;
  ackedVersion?: string;
  nackError?: string;
  certificateExpiry?: string;
}

/** Polls GET /status until `test` holds for its proxies (bounded: 200 tries, 25 ms apart). */
export async function statusWhen(
  cp: { adminUrl: string },
  test: (proxies: StatusRow[]) => boolean,
  what: string,
): Promise<StatusRow[]> {
  let last: StatusRow[] = [];
  for (let i = 0; i < 200; i++) {
    last = (await admin<{ proxies: StatusRow[] }>(cp, '/status')).body.proxies;
    if (test(last)) return last;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`gave up waiting for ${what}: ${JSON.stringify(last)}`);
}
