// The gateway benchmark: what a request costs through each proxy, on loopback, in one run.
//
//   1   wrk → nginx upstream (direct)
//   2   wrk → nginx reverse proxy (upstream keep-alive) → upstream
//   3   wrk → bare Node proxy (node:http + undici Pool)  → upstream
//   4   wrk → fastify + @fastify/http-proxy               → upstream
//   5a/b wrk → meshgate gateway, 1 route, --workers 1 / default
//   6a/b wrk → meshgate gateway, 1,000 routes, --workers 1 / default
//   7a/b wrk → meshgate, 1 route with JWT (ES256 / RS256, 16 hot tokens) and a local rate limit
//        that never triggers, --workers 1
//   8a/b the same with a global rate limit in Redis (a redis-server on the load core)
//
// Per row: wrk -t1 -c50 (req/s, p50, p99) and wrk -t1 -c1 (p50, p99), each after a warm-up;
// every proxy runs from the start, and the rows are measured in interleaved rounds (medians).
// Pinning (2 cores): wrk and the upstream nginx share core 1, the proxy under test has core 0
// to itself, so every proxy gets the same one core and the same load generator. Row 1 is
// therefore the harness's own ceiling (wrk and the upstream on one core): a proxied row near
// it is bound by the harness, not by the proxy. meshgate's default worker count is not pinned.
//
// Env: BENCH_DURATION (s per measurement, 10), BENCH_WARMUP (s, 3), BENCH_ROUNDS (3),
// BENCH_GATEWAY_ROWS (e.g. 3,5a: only those rows), MESHGATE_BIN (the CLI to measure,
// bin/meshgate.js), BENCH_GATEWAY_CPU_PROF (a folder: meshgate's processes run with node
// --cpu-prof and write their profiles into a subfolder per row when they stop).
// Run alone: npm run bench -- gateway   or   node --import tsx bench/gateway.ts
// Writes the markdown report to bench/results/gateway-latest.md.

import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { formatTable, type Bench, type BenchRow } from './bench.ts';
import { writeApiManagement, type JwtAlg, type LimitKind } from './gateway/api-management.ts';
import { LISTENER_PORT, routePrefix, writeMeshgateConfig } from './gateway/meshgate-config.ts';
import { checkTargets, markdownReport } from './gateway/report.ts';
import { startProcess, stopProcess, type ManagedProcess } from './lib/child-processes.ts';
import { findExecutable } from './lib/ensure-tools.ts';
import {
  LOAD_CPU,
  measureSettingsFromEnv,
  NotAvailable,
  pinned,
  PROXY_CPU,
  rowsFromEnv,
  runLoopbackBench,
  type Harness,
  type RowSpec as LoopbackRowSpec,
} from './lib/loopback-bench.ts';
import { reverseProxyConfig, startNginx } from './lib/nginx.ts';
import {
  checkAnswersLikeUpstream,
  freePort,
  lastLines,
  probe,
  sleep,
  START_TIMEOUT_MS,
} from './lib/probe.ts';
import { benchRows, summaries } from './lib/results.ts';

const here = dirname(fileURLToPath(import.meta.url));
const REPO = join(here, '..');
const RESULTS_FILE = join(here, 'results', 'gateway-latest.md');
/** Another build or checkout of the CLI can be measured with MESHGATE_BIN=path/to/meshgate.js. */
const MESHGATE_BIN = process.env.MESHGATE_BIN || join(REPO, 'bin', 'meshgate.js');
const CPU_PROFILE_DIR = process.env.BENCH_GATEWAY_CPU_PROF
  ? resolve(process.env.BENCH_GATEWAY_CPU_PROF)
  : undefined;

const ROUTE_COUNT = 1_000;
/** Near the middle of the 1,000 routes; the one-route config has only this one. */
const TARGET_ROUTE = 500;
const REQUEST_PATH = `${routePrefix(TARGET_ROUTE)}/items`;
const MESHGATE_READY_TIMEOUT_MS = 60_000;

const log = (line: string) => process.stderr.write(`${line}\n`);

interface GatewayHarness extends Harness {
  /** The redis-server of the global rate-limit rows, started by the first of them. */
  redis?: Promise<string>;
}

type RowSpec = LoopbackRowSpec<GatewayHarness>;

function nodeProxyRow(id: string, name: string, script: string): RowSpec {
  return {
    id,
    name,
    cpu: (h) => (h.pin ? `core ${PROXY_CPU}` : 'unpinned'),
    async start(h) {
      const port = await freePort();
      const [cmd, args] = pinned(h, process.execPath, [
        '--import',
        'tsx',
        join(here, 'gateway', script),
        String(port),
        `http://127.0.0.1:${h.upstreamPort}`,
      ]);
      const proc = startProcess(name, cmd, args);
      const url = `http://127.0.0.1:${port}${REQUEST_PATH}`;
      try {
        await checkAnswersLikeUpstream(proc, url);
      } catch (err) {
        await stopProcess(proc);
        throw err;
      }
      return { url, procs: [proc] };
    },
  };
}

function meshgateRow(
  id: string,
  routes: number,
  workers: number | undefined,
  api?: { alg: JwtAlg; limit: LimitKind },
): RowSpec {
  const features = api
    ? `, JWT ${api.alg} + ${api.limit === 'local' ? 'local rate limit' : 'global rate limit (Redis)'}`
    : '';
  const name = `meshgate, ${routes === 1 ? '1 route' : `${routes.toLocaleString('en-US')} routes`}${features}, ${workers === undefined ? 'default workers' : `--workers ${workers}`}`;
  const single = workers === 1;
  return {
    id,
    name,
    cpu: (h) =>
      single && h.pin
        ? `core ${PROXY_CPU}`
        : `unpinned (${workers ?? `default = ${availableParallelism()}`} workers)`,
    async start(h) {
      // a folder per row: a running gateway may watch its folder
      const configDir = join(h.tmp, `meshgate-${id}`);
      const indexes =
        routes === 1 ? [TARGET_ROUTE] : Array.from({ length: routes }, (_, i) => i + 1);
      writeMeshgateConfig(configDir, indexes, h.upstreamPort);
      const managed = api
        ? await writeApiManagement(
            configDir,
            routePrefix(TARGET_ROUTE).slice(1),
            api.alg,
            api.limit,
          )
        : undefined;
      const redisUrl = api?.limit === 'global' ? await (h.redis ??= startRedis(h)) : undefined;
      // the Gateway listens on LISTENER_PORT; --port-offset moves it onto a free port
      let port = await freePort();
      while (port <= LISTENER_PORT) port = await freePort();
      const adminPort = await freePort();
      const args = [
        ...(CPU_PROFILE_DIR ? ['--cpu-prof', '--cpu-prof-dir', join(CPU_PROFILE_DIR, id)] : []),
        MESHGATE_BIN,
        'gateway',
        '--config',
        configDir,
        '--listen-host',
        '127.0.0.1',
        '--port-offset',
        String(port - LISTENER_PORT),
        '--admin-port',
        String(adminPort),
        '--access-log',
        'off',
        ...(workers === undefined ? [] : ['--workers', String(workers)]),
        ...(redisUrl ? ['--rate-limit-redis', redisUrl] : []),
      ];
      const [cmd, cmdArgs] = single ? pinned(h, process.execPath, args) : [process.execPath, args];
      log(`  $ meshgate ${args.slice(args.indexOf(MESHGATE_BIN) + 1).join(' ')}`);
      const proc = startProcess(name, cmd, cmdArgs);
      try {
        await waitForReady(proc, `http://127.0.0.1:${adminPort}/ready`);
        const url = `http://127.0.0.1:${port}${REQUEST_PATH}`;
        const headers: Record<string, string> = managed
          ? { authorization: `Bearer ${managed.token}` }
          : {};
        await checkAnswersLikeUpstream(proc, url, { headers });
        return { url, procs: [proc], ...(managed ? { wrkScript: managed.wrkScript } : {}) };
      } catch (err) {
        await stopProcess(proc);
        throw err;
      }
    },
  };
}

/**
 * Polls the admin /ready until 200. A CLI without the gateway command is "not available"; a
 * gateway that exits or never gets ready has failed.
 */
async function waitForReady(proc: ManagedProcess, readyUrl: string): Promise<void> {
  const deadline = Date.now() + MESHGATE_READY_TIMEOUT_MS;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (proc.hasExited()) {
      const code = await proc.exited;
      const out = proc.output();
      if (/unknown command "gateway"/.test(out)) {
        throw new NotAvailable('meshgate has no `gateway` command yet (unknown command "gateway")');
      }
      throw new Error(`meshgate gateway exited with ${code}: ${lastLines(out)}`);
    }
    try {
      const { status, body } = await probe(readyUrl);
      if (status === 200) return;
      last = `${status} ${body.slice(0, 80)}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(200);
  }
  throw new Error(
    `admin ${readyUrl} not 200 after ${MESHGATE_READY_TIMEOUT_MS / 1000} s (last: ${last}); output: ${lastLines(proc.output())}`,
  );
}

const ROWS: RowSpec[] = [
  {
    id: '1',
    name: 'direct to nginx upstream',
    cpu: (h) => (h.pin ? `(upstream on core ${LOAD_CPU}, with wrk)` : 'unpinned'),
    async start(h) {
      return { url: `http://127.0.0.1:${h.upstreamPort}${REQUEST_PATH}`, procs: [] };
    },
  },
  {
    id: '2',
    name: 'nginx reverse proxy, keepalive 64',
    cpu: (h) => (h.pin ? `core ${PROXY_CPU}` : 'unpinned'),
    async start(h) {
      const port = await freePort();
      const dir = join(h.tmp, 'nginx-proxy');
      const proc = startNginx(
        'nginx proxy',
        h.tools.nginx,
        dir,
        reverseProxyConfig(dir, port, h.upstreamPort),
        h.pin ? PROXY_CPU : undefined,
      );
      const url = `http://127.0.0.1:${port}${REQUEST_PATH}`;
      try {
        await checkAnswersLikeUpstream(proc, url);
      } catch (err) {
        await stopProcess(proc);
        throw err;
      }
      return { url, procs: [proc] };
    },
  },
  nodeProxyRow('3', 'bare Node proxy (node:http + undici Pool)', 'bare-undici-proxy.ts'),
  nodeProxyRow('4', '@fastify/http-proxy', 'fastify-proxy.ts'),
  meshgateRow('5a', 1, 1),
  meshgateRow('5b', 1, undefined),
  meshgateRow('6a', ROUTE_COUNT, 1),
  meshgateRow('6b', ROUTE_COUNT, undefined),
  meshgateRow('7a', 1, 1, { alg: 'ES256', limit: 'local' }),
  meshgateRow('7b', 1, 1, { alg: 'RS256', limit: 'local' }),
  meshgateRow('8a', 1, 1, { alg: 'ES256', limit: 'global' }),
  meshgateRow('8b', 1, 1, { alg: 'RS256', limit: 'global' }),
];

/**
 * The redis-server of the global rate-limit rows, on the load core with wrk and the upstream
 * (it is the harness's, like the upstream): started once, stopped with everything else.
 */
async function startRedis(h: GatewayHarness): Promise<string> {
  const bin = findExecutable('redis-server');
  if (!bin) throw new NotAvailable('redis-server is not installed (apt-get install redis-server)');
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  const [cmd, cmdArgs] = pinned(h, bin, args, LOAD_CPU);
  const proc = startProcess('redis-server', cmd, cmdArgs);
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (proc.hasExited()) throw new Error(`redis-server exited: ${lastLines(proc.output())}`);
    if (/Ready to accept connections/.test(proc.output())) return `redis://127.0.0.1:${port}`;
    await sleep(50);
  }
  throw new Error(`redis-server did not start: ${lastLines(proc.output())}`);
}

export async function runGatewayBench(): Promise<BenchRow[]> {
  const { results, conditions } = await runLoopbackBench<GatewayHarness>({
    name: 'gateway',
    requestPath: REQUEST_PATH,
    rows: ROWS,
    onlyRows: rowsFromEnv('BENCH_GATEWAY_ROWS'),
    settings: measureSettingsFromEnv(),
    extend: (base) => base,
  });
  const checks = checkTargets(summaries(results));
  const report = markdownReport(results, checks, conditions);
  mkdirSync(dirname(RESULTS_FILE), { recursive: true });
  writeFileSync(RESULTS_FILE, report);
  process.stdout.write(`\n${report}\n`);
  log(`gateway bench: report written to ${RESULTS_FILE}`);
  if (conditions.setupProblem) {
    return [
      { bench: 'gateway', case: 'setup', value: NaN, unit: '', note: conditions.setupProblem },
    ];
  }
  return benchRows('gateway', results, checks);
}

export const bench: Bench = { name: 'gateway', run: runGatewayBench };

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(formatTable(await runGatewayBench()));
}
