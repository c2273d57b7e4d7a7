// The sidecar's admin endpoints (127.0.0.1:15000, Envoy's admin port) and its metrics endpoint
// (15090, Istio's). Plain node:http: a handful of read-only GETs.
//
//   GET /ready            200 when the sidecar has a view and a certificate, else 503 with why
//   GET /config_dump      the view it serves (version, routes, policies; never a key)
//   GET /denials          recent authorization denials, newest first, naming the policy and rule
//   GET /stats            the sidecar's counters as JSON
//   GET /stats/prometheus the Prometheus text (also on the metrics port, with /metrics)

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import {
  METRICS_CONTENT_TYPE,
  metricsRegistry,
  metricsText,
} from '../../shared/telemetry/metrics.ts';

export type SidecarReadiness =
  { ready: true; version: string } | { ready: false; version: string | null; reason: string };

export interface SidecarAdminSource {
  readiness(): SidecarReadiness;
  configDump(): unknown;
  denials(): unknown;
}

export function startAdminServer(
  source: SidecarAdminSource,
  host: string,
  port: number,
): Promise<{ server: Server; port: number }> {
  return listen(
    createServer((req, res) => {
      void route(source, req, res).catch((err: unknown) => json(res, 500, { error: String(err) }));
    }),
    host,
    port,
  );
}

export function startMetricsServer(
  host: string,
  port: number,
): Promise<{ server: Server; port: number }> {
  return listen(
    createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method === 'GET' && (path === '/stats/prometheus' || path === '/metrics'))
        void prometheus(res);
      else json(res, 404, { error: `no route ${req.method} ${path}` });
    }),
    host,
    port,
  );
}

async function route(
  source: SidecarAdminSource,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method !== 'GET') return json(res, 405, { error: 'only GET' });
  switch (path) {
    case '/ready': {
      const r = source.readiness();
      return json(res, r.ready ? 200 : 503, r);
    }
    case '/config_dump':
      return json(res, 200, source.configDump());
    case '/denials':
      return json(res, 200, source.denials());
    case '/stats': {
      const all = await metricsRegistry.getMetricsAsJSON();
      return json(
        res,
        200,
        Object.fromEntries(
          all
            .filter((m) => m.name.startsWith('meshgate_sidecar_'))
            .map((m) => [m.name, m.values.map((v) => ({ labels: v.labels, value: v.value }))]),
        ),
      );
    }
    case '/stats/prometheus':
      return prometheus(res);
    default:
      return json(res, 404, { error: `no route GET ${path}` });
  }
}

async function prometheus(res: ServerResponse): Promise<void> {
  const text = await metricsText();
  res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE });
  res.end(text);
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body, null, 2)}\n`;
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

function listen(server: Server, host: string, port: number) {
  return new Promise<{ server: Server; port: number }>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.removeListener('error', reject);
      const a = server.address();
      resolve({ server, port: typeof a === 'object' && a ? a.port : port });
    });
  });
}
