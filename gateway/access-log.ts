import pino, { type Logger } from 'pino';
import type { EdgeRequest } from './request-context.ts';

export type AccessLogTarget = 'stdout' | 'off' | string;

/**
 * The gateway's logger: JSON lines, written asynchronously so the request path does not wait on
 * I/O. `sync`: every line written at once, for rare events that must be seen as they happen (the
 * supervisor's), not held in a 4 KB buffer.
 */
export function createLogger(
  target: AccessLogTarget = 'stdout',
  name = 'meshgate-gateway',
  options: { sync?: boolean } = {},
): Logger {
  if (target === 'off') return pino({ enabled: false });
  const dest = pino.destination({
    dest: target === 'stdout' ? 1 : target,
    sync: options.sync ?? false,
    minLength: options.sync ? 0 : 4096,
  });
  return pino({ name, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, dest);
}

/** One line per request, naming the route rule that served it. */
export function logRequest(log: Logger, r: EdgeRequest, status: number, durationMs: number): void {
  // Building the line costs as much as a layer: skip it when nobody reads it.
  if (!log.isLevelEnabled('info')) return;
  log.info(
    {
      request_id: r.requestId,
      method: r.method,
      host: r.client.host,
      path: r.path || r.req.url,
      status,
      route: r.rule?.id ?? '-',
      upstream: r.upstream || '-',
      flags: r.flags,
      duration_ms: Math.round(durationMs * 1000) / 1000,
      client: r.clientAddress,
    },
    'request',
  );
}
