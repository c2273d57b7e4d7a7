// The discovery endpoint (shared/discovery/protocol.ts): HTTPS with a server certificate from the
// mesh CA. Client certificates are requested but not required by the TLS layer, because the first
// certificate request has none (it carries a join token instead); each route then decides: a
// client certificate that chained to the mesh root (`socket.authorized`) and carries a workload
// SPIFFE id of our trust domain is an identity, anything else is not.
//
// The stream is HTTP/1.1 with a chunked response of NDJSON lines: Node's https server and undici
// both handle a long-lived chunked body without surprises, which HTTP/2 with client certificates
// across Node and undici versions does less reliably.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { CertificateRequest, ProxyAck, ProxyHello } from '../../shared/discovery/protocol.ts';
import {
  identityFromCertificate,
  mtlsServerOptions,
  type MtlsCredentials,
  type PeerIdentity,
} from '../../shared/identity/peer-verification.ts';
import { ControlPlaneError, problemOf, type Problem } from './errors.ts';

const MAX_BODY_BYTES = 256 * 1024;
/** A hello carries the proxy's known mesh endpoints: room for tens of thousands of them. */
const MAX_HELLO_BYTES = 8 * 1024 * 1024;

/** A client certificate that the TLS layer verified against the mesh root. */
export interface ClientCertificate {
  identity: PeerIdentity;
  notAfter: Date;
}

/** What the discovery routes call; the control plane implements it. */
export interface DiscoveryBackend {
  readonly trustDomain: string;
  readonly rootPem: string;
  issueCertificate(
    request: CertificateRequest,
    auth: { client?: ClientCertificate; bearer?: string; clientProblem?: string },
  ): Promise<unknown>;
  openStream(hello: ProxyHello, client: ClientCertificate, res: ServerResponse): void;
  ack(ack: ProxyAck, client: ClientCertificate): void;
  heartbeat(proxyId: string, client: ClientCertificate): void;
}

export function createDiscoveryServer(
  backend: DiscoveryBackend,
  credentials: MtlsCredentials,
  logger: Logger,
): Server {
  const server = createServer(
    { ...mtlsServerOptions(credentials, { rejectUnauthorized: false }) },
    (req, res) => {
      handle(backend, req, res).catch((err: unknown) => {
        const problem = problemOf(err, req.url);
        if (problem.status >= 500) logger.error({ err, path: req.url }, 'discovery request failed');
        sendProblem(res, problem);
      });
    },
  );
  // The stream is long-lived by design; only a request that never finishes sending is cut off.
  server.requestTimeout = 30_000;
  server.headersTimeout = 15_000;
  return server;
}

async function handle(
  backend: DiscoveryBackend,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  const route = `${req.method} ${path}`;
  switch (route) {
    case 'GET /v1/root':
      res.writeHead(200, {
        'content-type': 'text/plain; charset=utf-8',
        'cache-control': 'no-store',
      });
      res.end(backend.rootPem);
      return;
    case 'POST /v1/certificates': {
      const body = (await readJson(req)) as Partial<CertificateRequest>;
      if (typeof body?.csr !== 'string')
        throw new ControlPlaneError('MG_ERR_CP_BAD_REQUEST', 'expected {"csr": "<PEM>"}');
      const client = clientCertificate(req, backend.trustDomain);
      const auth = req.headers.authorization;
      const bearer = auth?.match(/^Bearer\s+(\S+)\s*$/i)?.[1];
      const grant = await backend.issueCertificate(
        { csr: body.csr },
        {
          ...(client.certificate ? { client: client.certificate } : {}),
          ...(bearer ? { bearer } : {}),
          ...(client.problem ? { clientProblem: client.problem } : {}),
        },
      );
      sendJson(res, 200, grant);
      return;
    }
    case 'POST /v1/stream': {
      const client = requireClient(req, backend.trustDomain);
      backend.openStream(parseHello(await readJson(req, MAX_HELLO_BYTES)), client, res);
      return;
    }
    case 'POST /v1/ack': {
      const client = requireClient(req, backend.trustDomain);
      backend.ack(parseAck(await readJson(req)), client);
      res.writeHead(204).end();
      return;
    }
    case 'POST /v1/heartbeat': {
      const client = requireClient(req, backend.trustDomain);
      const body = (await readJson(req)) as { proxyId?: unknown };
      if (typeof body?.proxyId !== 'string' || body.proxyId === '')
        throw new ControlPlaneError('MG_ERR_CP_BAD_REQUEST', 'expected {"proxyId": "…"}');
      backend.heartbeat(body.proxyId, client);
      res.writeHead(204).end();
      return;
    }
    default:
      throw new ControlPlaneError('MG_ERR_CP_NOT_FOUND', `no route ${route}`);
  }
}

/** The verified client certificate of the request, or why there is none. */
export function clientCertificate(
  req: IncomingMessage,
  trustDomain: string,
): { certificate?: ClientCertificate; problem?: string } {
  const socket = req.socket as TLSSocket;
  const cert = socket.getPeerX509Certificate?.();
  if (!cert) return { problem: 'no client certificate' };
  if (!socket.authorized)
    return {
      problem: `the client certificate is not valid for this mesh (${String(socket.authorizationError ?? 'unverified')})`,
    };
  let identity: PeerIdentity;
  try {
    identity = identityFromCertificate(cert);
  } catch (err) {
    return { problem: (err as Error).message };
  }
  if (identity.trustDomain !== trustDomain)
    return { problem: `${identity.spiffeId} is not in trust domain ${trustDomain}` };
  return { certificate: { identity, notAfter: new Date(cert.validTo) } };
}

function requireClient(req: IncomingMessage, trustDomain: string): ClientCertificate {
  const { certificate, problem } = clientCertificate(req, trustDomain);
  if (!certificate)
    throw new ControlPlaneError(
      'MG_ERR_CP_UNAUTHENTICATED',
      `${problem ?? 'no client certificate'}: present the workload certificate issued by POST /v1/certificates`,
    );
  return certificate;
}

async function readJson(req: IncomingMessage, maxBytes = MAX_BODY_BYTES): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes)
      throw new ControlPlaneError(
        'MG_ERR_CP_BODY_TOO_LARGE',
        `the body is larger than ${maxBytes} bytes`,
      );
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw new ControlPlaneError('MG_ERR_CP_BAD_REQUEST', 'the body is not JSON');
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

function sendProblem(res: ServerResponse, problem: Problem): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(problem);
  res.writeHead(problem.status, {
    'content-type': 'application/problem+json',
    'content-length': Buffer.byteLength(text),
    // The request body may not have been read to its end.
    ...(problem.code === 'MG_ERR_CP_BODY_TOO_LARGE' ? { connection: 'close' } : {}),
  });
  res.end(text);
}

const bad = (detail: string) => new ControlPlaneError('MG_ERR_CP_BAD_REQUEST', detail);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function optionalString(body: Record<string, unknown>, field: string, max = 253) {
  const v = body[field];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v === '' || v.length > max || /[\s\p{Cc}]/u.test(v))
    throw bad(`hello.${field}: expected a non-empty string without spaces (at most ${max})`);
  return v;
}

function optionalPort(body: Record<string, unknown>, field: string) {
  const v = body[field];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535)
    throw bad(`hello.${field}: expected a port number from 1 to 65535`);
  return v;
}

/** Checks a ProxyHello's shape; the identity in it is compared with the certificate later. */
export function parseHello(body: unknown): ProxyHello {
  if (!isRecord(body)) throw bad('expected a ProxyHello object');
  const proxyId = optionalString(body, 'proxyId', 256);
  if (!proxyId) throw bad('hello.proxyId is required');
  const kind = body.kind;
  if (kind !== 'sidecar' && kind !== 'gateway') throw bad('hello.kind: sidecar or gateway');
  const namespace = optionalString(body, 'namespace');
  const serviceAccount = optionalString(body, 'serviceAccount');
  if (!namespace || !serviceAccount)
    throw bad('hello.namespace and hello.serviceAccount are required');
  const labels = body.labels ?? {};
  if (
    !isRecord(labels) ||
    Object.keys(labels).length > 64 ||
    !Object.values(labels).every((v) => typeof v === 'string' && v.length <= 63)
  )
    throw bad('hello.labels: expected at most 64 string labels');
  const gateways = body.gateways;
  if (
    gateways !== undefined &&
    (!Array.isArray(gateways) ||
      !gateways.every((g) => typeof g === 'string' && /^[^/\s]+\/[^/\s]+$/.test(g)))
  )
    throw bad('hello.gateways: expected ["namespace/name", …]');
  const service = optionalString(body, 'service');
  const address = optionalString(body, 'address');
  const inboundPort = optionalPort(body, 'inboundPort');
  const appPort = optionalPort(body, 'appPort');
  const currentVersion = optionalString(body, 'currentVersion', 128);
  const knownMeshEndpoints = parseKnownMeshEndpoints(body.knownMeshEndpoints);
  return {
    proxyId,
    kind,
    namespace,
    serviceAccount,
    labels: { ...(labels as Record<string, string>) },
    ...(service ? { service } : {}),
    ...(address ? { address } : {}),
    ...(inboundPort !== undefined ? { inboundPort } : {}),
    ...(appPort !== undefined ? { appPort } : {}),
    ...(gateways ? { gateways: [...(gateways as string[])] } : {}),
    ...(currentVersion ? { currentVersion } : {}),
    ...(currentVersion && knownMeshEndpoints ? { knownMeshEndpoints } : {}),
  };
}

/** hello.knownMeshEndpoints: {"ns/svc:port": [{address, port, spiffeId}, …], …}. */
function parseKnownMeshEndpoints(v: unknown): ProxyHello['knownMeshEndpoints'] {
  if (v === undefined) return undefined;
  const problem = bad(
    'hello.knownMeshEndpoints: expected {"namespace/name:port": [{address, port, spiffeId}]}',
  );
  if (!isRecord(v)) throw problem;
  const out: NonNullable<ProxyHello['knownMeshEndpoints']> = {};
  for (const [key, list] of Object.entries(v)) {
    if (!/^[^/\s]+\/[^/\s:]+:\d{1,5}$/.test(key) || !Array.isArray(list)) throw problem;
    out[key] = list.map((e: unknown) => {
      if (!isRecord(e)) throw problem;
      const { address, port, spiffeId } = e;
      if (
        typeof address !== 'string' ||
        !/^[^\s/]{1,253}$/.test(address) ||
        typeof port !== 'number' ||
        !Number.isInteger(port) ||
        port < 1 ||
        port > 65535 ||
        typeof spiffeId !== 'string' ||
        !/^spiffe:\/\/\S{1,2038}$/.test(spiffeId)
      )
        throw problem;
      return { address, port, spiffeId };
    });
  }
  return out;
}

export function parseAck(body: unknown): ProxyAck {
  if (!isRecord(body)) throw bad('expected a ProxyAck object');
  const { proxyId, version, ok, error } = body;
  if (typeof proxyId !== 'string' || proxyId === '') throw bad('ack.proxyId is required');
  if (typeof version !== 'string' || version === '') throw bad('ack.version is required');
  if (typeof ok !== 'boolean') throw bad('ack.ok: expected true (ACK) or false (NACK)');
  if (error !== undefined && typeof error !== 'string') throw bad('ack.error: expected a string');
  return { proxyId, version, ok, ...(typeof error === 'string' ? { error } : {}) };
}
