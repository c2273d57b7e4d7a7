import { existsSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { parseArgs } from 'node:util';
import { gatewayDuration } from '../../shared/config/schemas/common.ts';
import { durationToMs } from '../../shared/config/duration.ts';
import { ConfigFolderError } from '../../shared/config/load.ts';
import {
  DEFAULT_CONTROL_PLANE_ADMIN_PORT,
  DEFAULT_DISCOVERY_PORT,
} from '../../shared/discovery/protocol.ts';
import { namespaceProblem, trustDomainProblem } from '../../shared/identity/spiffe.ts';
import { UsageError } from './usage-error.ts';
import { CONTROL_PLANE_USAGE } from './usage.ts';

/**
 * `meshgate control-plane …`: watches and compiles the config folder, runs the mesh CA (root in
 * the data folder, or supplied), and serves discovery on --listen-host:--discovery-port and the
 * admin API on 127.0.0.1:--admin-port until SIGTERM/SIGINT.
 */
export async function runControlPlane(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: false,
      options: {
        config: { type: 'string' },
        data: { type: 'string' },
        'listen-host': { type: 'string', default: '127.0.0.1' },
        'discovery-port': { type: 'string', default: String(DEFAULT_DISCOVERY_PORT) },
        'admin-port': { type: 'string', default: String(DEFAULT_CONTROL_PLANE_ADMIN_PORT) },
        'root-namespace': { type: 'string', default: 'meshgate-system' },
        'trust-domain': { type: 'string', default: 'cluster.local' },
        'ca-cert': { type: 'string' },
        'ca-key': { type: 'string' },
        'workload-cert-ttl': { type: 'string', default: '24h' },
      },
    });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\nusage: ${CONTROL_PLANE_USAGE}`);
  }
  const v = parsed.values;
  if (!v.config || !v.data)
    throw new UsageError(`--config DIR and --data DIR are required\nusage: ${CONTROL_PLANE_USAGE}`);
  // 0 takes any free port (printed in the "… listening" log lines).
  const discoveryPort = integer('--discovery-port', v['discovery-port'], 0, 65535);
  const adminPort = integer('--admin-port', v['admin-port'], 0, 65535);
  const host = v['listen-host'].trim();
  if (host === '' || /\s/.test(host) || (isIP(host) === 0 && !/^[a-zA-Z0-9.-]+$/.test(host)))
    throw new UsageError(
      `--listen-host ${v['listen-host']}: expected an IP address or a host name`,
    );
  const nsProblem = namespaceProblem(v['root-namespace']);
  if (nsProblem) throw new UsageError(`--root-namespace: ${nsProblem}`);
  const tdProblem = trustDomainProblem(v['trust-domain']);
  if (tdProblem) throw new UsageError(`--trust-domain ${v['trust-domain']}: ${tdProblem}`);
  if ((v['ca-cert'] === undefined) !== (v['ca-key'] === undefined))
    throw new UsageError('--ca-cert and --ca-key go together');
  for (const flag of ['ca-cert', 'ca-key'] as const) {
    const file = v[flag];
    if (file !== undefined && !existsSync(file))
      throw new UsageError(`--${flag} ${file}: no such file`);
  }
  const ttl = v['workload-cert-ttl'];
  if (!gatewayDuration.safeParse(ttl).success)
    throw new UsageError(
      `--workload-cert-ttl ${ttl}: expected a duration such as 24h, 90m or 1h30m`,
    );
  const workloadCertTtlMs = durationToMs(ttl);
  if (workloadCertTtlMs < 60_000)
    throw new UsageError(`--workload-cert-ttl ${ttl}: must be at least 1m`);
  if (!existsSync(v.config) || !statSync(v.config).isDirectory())
    throw new ConfigFolderError(`config folder ${v.config} does not exist or is not a folder`);
  if (existsSync(v.data) && !statSync(v.data).isDirectory())
    throw new UsageError(`--data ${v.data}: not a folder`);

  // Loaded here, so `validate` and `explain` do not pay for fastify and the CA.
  const [{ ControlPlane }, { createLogger }] = await Promise.all([
    import('../../mesh/control-plane/control-plane.ts'),
    import('../../gateway/access-log.ts'),
  ]);
  const controlPlane = new ControlPlane({
    configDir: v.config,
    dataDir: v.data,
    listenHost: host,
    discoveryPort,
    adminPort,
    rootNamespace: v['root-namespace'],
    trustDomain: v['trust-domain'],
    ...(v['ca-cert'] && v['ca-key']
      ? { caRoot: { certPath: v['ca-cert'], keyPath: v['ca-key'] } }
      : {}),
    workloadCertTtlMs,
    logger: createLogger('stdout', 'meshgate-control-plane', { sync: true }),
  });
  return controlPlane.run();
}

function integer(flag: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new UsageError(`${flag} ${value}: expected an integer from ${min} to ${max}`);
  return n;
}
