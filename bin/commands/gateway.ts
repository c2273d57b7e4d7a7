import { closeSync, existsSync, openSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { ConfigFolderError } from '../../shared/config/load.ts';
import { UsageError } from './usage-error.ts';

/** Istio's proxy admin port. */
const DEFAULT_ADMIN_PORT = 15000;

export const GATEWAY_USAGE =
  'meshgate gateway --config DIR [--listen-host 127.0.0.1] [--port-offset N] [--admin-port P] [--gateway NS/NAME]... [--workers N] [--drain-seconds S] [--access-log stdout|off|FILE] [--rate-limit-redis URL] [--rate-limit-failure-mode open|closed]';

/** `meshgate gateway --config DIR …`: the edge gateway, standalone, from a watched folder. */
export async function runGateway(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: false,
      options: {
        config: { type: 'string' },
        'listen-host': { type: 'string', default: '127.0.0.1' },
        'port-offset': { type: 'string', default: '0' },
        'admin-port': { type: 'string', default: String(DEFAULT_ADMIN_PORT) },
        gateway: { type: 'string', multiple: true },
        workers: { type: 'string' },
        'drain-seconds': { type: 'string', default: '5' },
        'access-log': { type: 'string', default: 'stdout' },
        'rate-limit-redis': { type: 'string' },
        'rate-limit-failure-mode': { type: 'string', default: 'open' },
      },
    });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\nusage: ${GATEWAY_USAGE}`);
  }
  const v = parsed.values;
  if (!v.config) throw new UsageError(`--config DIR is required\nusage: ${GATEWAY_USAGE}`);
  const portOffset = integer('--port-offset', v['port-offset'], -65535, 65535);
  // 0 takes any free port (printed in the "admin API listening" log line).
  const adminPort = integer('--admin-port', v['admin-port'], 0, 65535);
  const workers =
    v.workers === undefined ? availableParallelism() : integer('--workers', v.workers, 1, 1024);
  const drainSeconds = Number(v['drain-seconds']);
  if (!Number.isFinite(drainSeconds) || drainSeconds < 0)
    throw new UsageError(`--drain-seconds ${v['drain-seconds']}: expected seconds, 0 or more`);
  for (const g of v.gateway ?? [])
    if (!/^[^/\s]+\/[^/\s]+$/.test(g))
      throw new UsageError(`--gateway ${g}: expected namespace/name`);
  if (v['listen-host'].trim() === '') throw new UsageError('--listen-host must not be empty');
  const accessLog = v['access-log'];
  if (accessLog !== 'stdout' && accessLog !== 'off') {
    // Each worker opens it for appending; a path it cannot open is a mistake to report now.
    try {
      closeSync(openSync(accessLog, 'a'));
    } catch (err) {
      throw new UsageError(`--access-log ${accessLog}: ${(err as Error).message}`);
    }
  }
  const redis = v['rate-limit-redis'];
  if (redis !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(redis);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== 'redis:' && url.protocol !== 'rediss:'))
      throw new UsageError(
        `--rate-limit-redis ${redis}: expected a redis:// or rediss:// URL (redis://HOST:PORT)`,
      );
  }
  const failureMode = v['rate-limit-failure-mode'];
  if (failureMode !== 'open' && failureMode !== 'closed')
    throw new UsageError(`--rate-limit-failure-mode ${failureMode}: expected open or closed`);
  if (!existsSync(v.config) || !statSync(v.config).isDirectory())
    throw new ConfigFolderError(`config folder ${v.config} does not exist or is not a folder`);

  // Loaded here, so `validate` and `explain` do not pay for fastify and the data plane.
  const [{ GatewaySupervisor }, { createLogger }] = await Promise.all([
    import('../../gateway/supervisor.ts'),
    import('../../gateway/access-log.ts'),
  ]);
  const supervisor = new GatewaySupervisor({
    configDir: v.config,
    listenHost: v['listen-host'],
    portOffset,
    adminHost: '127.0.0.1',
    adminPort,
    ...(v.gateway && v.gateway.length > 0 ? { gateways: v.gateway } : {}),
    workers,
    drainMs: Math.round(drainSeconds * 1000),
    accessLog,
    ...(redis !== undefined ? { rateLimitRedis: redis } : {}),
    rateLimitFailureMode: failureMode,
    logger: createLogger('stdout', 'meshgate-gateway', { sync: true }),
  });
  return supervisor.run();
}

function integer(flag: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new UsageError(`${flag} ${value}: expected an integer from ${min} to ${max}`);
  return n;
}
