import { closeSync, existsSync, openSync, readFileSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { ConfigFolderError } from '../../shared/config/load.ts';
import { UsageError } from './usage-error.ts';
import { GATEWAY_USAGE } from './usage.ts';

/** Istio's proxy admin port. */
const DEFAULT_ADMIN_PORT = 15000;

/**
 * `meshgate gateway --config DIR …`: the edge gateway, standalone, from a watched folder; or,
 * with `--control-plane URL --token FILE --control-plane-ca FILE`, a member of the mesh: its
 * identity and listeners from the control plane, mTLS to the services' sidecars.
 */
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
        'control-plane': { type: 'string' },
        token: { type: 'string' },
        'control-plane-ca': { type: 'string' },
      },
    });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\nusage: ${GATEWAY_USAGE}`);
  }
  const v = parsed.values;
  const inMesh =
    v['control-plane'] !== undefined ||
    v.token !== undefined ||
    v['control-plane-ca'] !== undefined;
  if (inMesh && v.config !== undefined)
    throw new UsageError(
      `give --config DIR (standalone) or --control-plane URL (in the mesh), not both\nusage: ${GATEWAY_USAGE}`,
    );
  if (!inMesh && !v.config)
    throw new UsageError(`--config DIR is required\nusage: ${GATEWAY_USAGE}`);
  const mesh = inMesh ? meshOptions(v['control-plane'], v.token, v['control-plane-ca']) : undefined;
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
  if (v.config !== undefined && (!existsSync(v.config) || !statSync(v.config).isDirectory()))
    throw new ConfigFolderError(`config folder ${v.config} does not exist or is not a folder`);

  // Loaded here, so `validate` and `explain` do not pay for fastify and the data plane.
  const [{ GatewaySupervisor }, { createLogger }] = await Promise.all([
    import('../../gateway/supervisor.ts'),
    import('../../gateway/access-log.ts'),
  ]);
  const supervisor = new GatewaySupervisor({
    ...(v.config !== undefined ? { configDir: v.config } : {}),
    ...(mesh ? { mesh } : {}),
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

/** --control-plane, --token and --control-plane-ca: all three, checked. */
function meshOptions(
  url: string | undefined,
  tokenFile: string | undefined,
  caFile: string | undefined,
): { controlPlaneUrl: string; tokenFile: string; controlPlaneCaPem: string } {
  if (url === undefined || tokenFile === undefined || caFile === undefined)
    throw new UsageError(
      `--control-plane URL, --token FILE and --control-plane-ca FILE go together\nusage: ${GATEWAY_USAGE}`,
    );
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (!parsed || parsed.protocol !== 'https:')
    throw new UsageError(`--control-plane ${url}: expected the discovery URL, https://HOST:15010`);
  if (!existsSync(tokenFile)) throw new UsageError(`--token ${tokenFile}: no such file`);
  let caPem: string;
  try {
    caPem = readFileSync(caFile, 'utf8');
  } catch (err) {
    throw new UsageError(`--control-plane-ca ${caFile}: ${(err as Error).message}`);
  }
  if (!caPem.includes('-----BEGIN CERTIFICATE-----'))
    throw new UsageError(`--control-plane-ca ${caFile}: no PEM certificate in it`);
  return { controlPlaneUrl: parsed.href.replace(/\/$/, ''), tokenFile, controlPlaneCaPem: caPem };
}

function integer(flag: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new UsageError(`${flag} ${value}: expected an integer from ${min} to ${max}`);
  return n;
}
