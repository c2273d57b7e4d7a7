import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { parseArgs } from 'node:util';
import { namespaceProblem, serviceAccountProblem } from '../../shared/identity/spiffe.ts';
import { UsageError } from './usage-error.ts';
import { SIDECAR_USAGE } from './usage.ts';

/** Kubernetes label values: at most 63 characters, alphanumerics and `-_.` inside. */
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const LABEL_KEY = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

/**
 * `meshgate sidecar …`: the mesh proxy of one workload instance: inbound mTLS and authorization
 * in front of the app on 127.0.0.1:--app-port, outbound mesh routing and mTLS for the app's calls.
 */
export async function runSidecar(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: false,
      options: {
        service: { type: 'string' },
        namespace: { type: 'string' },
        'service-account': { type: 'string' },
        'app-port': { type: 'string' },
        token: { type: 'string' },
        'control-plane': { type: 'string' },
        'control-plane-ca': { type: 'string' },
        labels: { type: 'string', default: '' },
        address: { type: 'string', default: '127.0.0.1' },
        'inbound-port': { type: 'string', default: '15006' },
        'outbound-port': { type: 'string', default: '15001' },
        'admin-port': { type: 'string', default: '15000' },
        'metrics-port': { type: 'string', default: '15090' },
        'drain-seconds': { type: 'string', default: '5' },
        'access-log': { type: 'string', default: 'stdout' },
      },
    });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\nusage: ${SIDECAR_USAGE}`);
  }
  const v = parsed.values;
  for (const flag of [
    'service',
    'namespace',
    'service-account',
    'app-port',
    'token',
    'control-plane',
    'control-plane-ca',
  ] as const)
    if (!v[flag]) throw new UsageError(`--${flag} is required\nusage: ${SIDECAR_USAGE}`);
  const service = v.service as string;
  const namespace = v.namespace as string;
  const serviceAccount = v['service-account'] as string;
  const problem =
    namespaceProblem(namespace) ??
    serviceAccountProblem(serviceAccount) ??
    (/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(service)
      ? undefined
      : `--service ${service}: a Service name is a DNS-1123 label`);
  if (problem) throw new UsageError(problem);
  const appPort = integer('--app-port', v['app-port'] as string, 1, 65535);
  // 0 takes any free port (printed in the "sidecar listening" log line).
  const inboundPort = integer('--inbound-port', v['inbound-port'], 0, 65535);
  const outboundPort = integer('--outbound-port', v['outbound-port'], 0, 65535);
  const adminPort = integer('--admin-port', v['admin-port'], 0, 65535);
  const metricsPort = integer('--metrics-port', v['metrics-port'], 0, 65535);
  const labels = parseLabels(v.labels);
  const address = v.address.trim();
  if (isIP(address) === 0)
    throw new UsageError(
      `--address ${v.address}: expected the IP address peers reach this sidecar at`,
    );
  let url: URL | undefined;
  try {
    url = new URL(v['control-plane'] as string);
  } catch {
    url = undefined;
  }
  if (!url || url.protocol !== 'https:')
    throw new UsageError(
      `--control-plane ${v['control-plane']}: expected the discovery URL, https://HOST:15010`,
    );
  const tokenFile = v.token as string;
  if (!existsSync(tokenFile)) throw new UsageError(`--token ${tokenFile}: no such file`);
  let caPem: string;
  try {
    caPem = readFileSync(v['control-plane-ca'] as string, 'utf8');
  } catch (err) {
    throw new UsageError(`--control-plane-ca ${v['control-plane-ca']}: ${(err as Error).message}`);
  }
  if (!caPem.includes('-----BEGIN CERTIFICATE-----'))
    throw new UsageError(`--control-plane-ca ${v['control-plane-ca']}: no PEM certificate in it`);
  const drainSeconds = Number(v['drain-seconds']);
  if (!Number.isFinite(drainSeconds) || drainSeconds < 0)
    throw new UsageError(`--drain-seconds ${v['drain-seconds']}: expected seconds, 0 or more`);
  const accessLog = v['access-log'];
  if (accessLog !== 'stdout' && accessLog !== 'off') {
    try {
      closeSync(openSync(accessLog, 'a'));
    } catch (err) {
      throw new UsageError(`--access-log ${accessLog}: ${(err as Error).message}`);
    }
  }

  // Loaded here, so `validate` and `explain` do not pay for the data plane.
  const [{ Sidecar }, { createLogger }, { createAccessLogger }] = await Promise.all([
    import('../../mesh/sidecar/sidecar.ts'),
    import('../../gateway/access-log.ts'),
    import('../../mesh/sidecar/access-log.ts'),
  ]);
  // Process events are written at once; request lines are buffered, off the request path.
  const logger = createLogger('stdout', 'meshgate-sidecar', { sync: true });
  const accessLogger = createAccessLogger(accessLog);
  const sidecar = new Sidecar({
    workload: { service, namespace, serviceAccount, labels, appPort },
    address,
    inboundPort,
    outboundPort,
    adminPort,
    metricsPort,
    controlPlaneUrl: url.href.replace(/\/$/, ''),
    controlPlaneCaPem: caPem,
    tokenFile,
    drainMs: Math.round(drainSeconds * 1000),
    logger,
    accessLog: accessLogger,
  });
  try {
    await sidecar.start();
  } catch (err) {
    logger.error({ err }, 'the sidecar cannot start');
    await sidecar.drain();
    return 1;
  }
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.removeListener('SIGTERM', onSignal);
      process.removeListener('SIGINT', onSignal);
      logger.info({ signal }, 'shutting down');
      sidecar.drain().then(
        ({ inflightLeft }) => {
          logger.info({ inflightLeft }, 'stopped');
          accessLogger.flush(() => resolve(0));
        },
        (err: unknown) => {
          logger.error({ err }, 'did not stop cleanly');
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of text.split(',')) {
    if (pair.trim() === '') continue;
    const eq = pair.indexOf('=');
    const key = (eq < 0 ? pair : pair.slice(0, eq)).trim();
    const value = eq < 0 ? '' : pair.slice(eq + 1).trim();
    if (eq < 0 || !LABEL_KEY.test(key) || value.length > 63 || !LABEL_VALUE.test(value))
      throw new UsageError(
        `--labels ${text}: expected k=v,k=v with Kubernetes label keys and values`,
      );
    labels[key] = value;
  }
  return labels;
}

function integer(flag: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new UsageError(`${flag} ${value}: expected an integer from ${min} to ${max}`);
  return n;
}
