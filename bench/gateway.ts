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
// bin/meshgate.js).
// Run alone: npm run bench -- gateway   or   node --import tsx bench/gateway.ts
// Writes the markdown report to bench/results/gateway-latest.md.

import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Client } from 'undici';
import { formatTable, type Bench, type BenchRow } from './bench.ts';
import {
  killChildrenOnExit,
  leftoverGroups,
  startedGroups,
  startProcess,
  stopAll,
  stopProcess,
  type ManagedProcess,
} from './gateway/child-processes.ts';
import { writeApiManagement, type JwtAlg, type LimitKind } from './gateway/api-management.ts';
import { ensureTools, findExecutable, toolVersion, type Tools } from './gateway/ensure-tools.ts';
import {
  foreignCores,
  measureCpuStalls,
  ownProcessGroup,
  sampleProcessCpu,
  type CpuStalls,
} from './gateway/machine-noise.ts';
import { LISTENER_PORT, routePrefix, writeMeshgateConfig } from './gateway/meshgate-config.ts';
import {
  reverseProxyConfig,
  startNginx,
  upstreamConfig,
  UPSTREAM_BODY,
  UPSTREAM_PATH_HEADER,
} from './gateway/nginx.ts';
import {
  benchRows,
  checkTargets,
  fmtLatency,
  fmtRps,
  markdownReport,
  summarize,
  type RowResult,
  type Sample,
} from './gateway/report.ts';
import { runWrk } from './gateway/wrk.ts';

const here = dirname(fileURLToPath(import.meta.url));
const REPO = join(here, '..');
const RESULTS_FILE = join(here, 'results', 'gateway-latest.md');
/** Another build or checkout of the CLI can be measured with MESHGATE_BIN=path/to/meshgate.js. */
const MESHGATE_BIN = process.env.MESHGATE_BIN || join(REPO, 'bin', 'meshgate.js');

const DURATION_SEC = positiveIntEnv('BENCH_DURATION', 10);
const WARMUP_SEC = positiveIntEnv('BENCH_WARMUP', 3);
const ROUNDS = positiveIntEnv('BENCH_ROUNDS', 3);
const STALL_SECONDS = 3;
/** BENCH_GATEWAY_ROWS=3,5a: only those rows (the default is all). */
const onlyRows = (process.env.BENCH_GATEWAY_ROWS ?? '')
  .split(',')
  .map((s) => s.trim())
  .filter((s) => s !== '');
const ROUTE_COUNT = 1_000;
/** Near the middle of the 1,000 routes; the one-route config has only this one. */
const TARGET_ROUTE = 500;
const REQUEST_PATH = `${routePrefix(TARGET_ROUTE)}/items`;
const START_TIMEOUT_MS = 20_000;
const MESHGATE_READY_TIMEOUT_MS = 60_000;

const PROXY_CPU = 0;
const LOAD_CPU = 1;

function positiveIntEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer`);
  return n;
}

const log = (line: string) => process.stderr.write(`${line}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The row cannot be measured yet: the CLI has no gateway command. */
class NotAvailable extends Error {}

interface Harness {
  tools: Tools;
  tmp: string;
  upstreamPort: number;
  /** Whether to pin with taskset (2+ cores and taskset present). */
  pin: boolean;
  /** The redis-server of the global rate-limit rows, started by the first of them. */
  redis?: Promise<string>;
}

interface Target {
  url: string;
  procs: ManagedProcess[];
  /** A wrk Lua script (the rows that send an Authorization header). */
  wrkScript?: string;
}

interface RowSpec {
  id: string;
  name: string;
  cpu(h: Harness): string;
  start(h: Harness): Promise<Target>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject()));
    });
  });
}

interface ProbeResult {
  status: number;
  body: string;
  upstreamPath: string | undefined;
}

/** One GET with a fresh connection; the status and body, or the connection error. */
async function probe(url: string, headers: Record<string, string> = {}): Promise<ProbeResult> {
  const u = new URL(url);
  const client = new Client(u.origin, { headersTimeout: 5_000, bodyTimeout: 5_000 });
  try {
    const res = await client.request({
      path: `${u.pathname}${u.search}`,
      method: 'GET',
      headers,
    });
    const echoed = res.headers[UPSTREAM_PATH_HEADER];
    return {
      status: res.statusCode,
      body: await res.body.text(),
      upstreamPath: Array.isArray(echoed) ? echoed.join(',') : echoed,
    };
  } finally {
    await client.destroy();
  }
}

function lastLines(text: string, n = 3): string {
  return text.trim().split('\n').slice(-n).join(' | ').slice(0, 400);
}

/** Retries `url` until something answers; throws if `proc` exits or time runs out. */
async function waitForAnswer(
  proc: ManagedProcess,
  url: string,
  timeoutMs: number,
  headers: Record<string, string> = {},
): Promise<ProbeResult> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  while (Date.now() < deadline) {
    if (proc.hasExited()) {
      throw new Error(`${proc.name} exited with ${await proc.exited}: ${lastLines(proc.output())}`);
    }
    try {
      return await probe(url, headers);
    } catch (err) {
      lastError = (err as Error).message;
      await sleep(100);
    }
  }
  throw new Error(`${proc.name}: nothing answered ${url} in ${timeoutMs} ms (${lastError})`);
}

/** The check before measuring: one request through the proxy returns nginx's 200 and body. */
async function checkAnswersLikeUpstream(
  proc: ManagedProcess,
  url: string,
  timeoutMs = START_TIMEOUT_MS,
  headers: Record<string, string> = {},
): Promise<void> {
  const { status, body, upstreamPath } = await waitForAnswer(proc, url, timeoutMs, headers);
  const path = new URL(url).pathname;
  if (status !== 200 || body !== UPSTREAM_BODY) {
    throw new Error(
      `GET ${path} answered ${status} with ${JSON.stringify(body.slice(0, 120))}, not the upstream's 200 and body`,
    );
  }
  if (upstreamPath !== path) {
    throw new Error(`GET ${path} reached the upstream as ${upstreamPath ?? '(no echo header)'}`);
  }
}

function pinned(h: Harness, command: string, args: string[]): [string, string[]] {
  return h.pin ? ['taskset', ['-c', String(PROXY_CPU), command, ...args]] : [command, args];
}

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
      log(`  $ meshgate ${args.slice(1).join(' ')}`);
      const proc = startProcess(name, cmd, cmdArgs);
      try {
        await waitForReady(proc, `http://127.0.0.1:${adminPort}/ready`);
        const url = `http://127.0.0.1:${port}${REQUEST_PATH}`;
        const headers: Record<string, string> = managed
          ? { authorization: `Bearer ${managed.token}` }
          : {};
        await checkAnswersLikeUpstream(proc, url, START_TIMEOUT_MS, headers);
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
async function startRedis(h: Harness): Promise<string> {
  const bin = findExecutable('redis-server');
  if (!bin) throw new NotAvailable('redis-server is not installed (apt-get install redis-server)');
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  const [cmd, cmdArgs] = h.pin ? ['taskset', ['-c', String(LOAD_CPU), bin, ...args]] : [bin, args];
  const proc = startProcess('redis-server', cmd, cmdArgs);
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (proc.hasExited()) throw new Error(`redis-server exited: ${lastLines(proc.output())}`);
    if (/Ready to accept connections/.test(proc.output())) return `redis://127.0.0.1:${port}`;
    await sleep(50);
  }
  throw new Error(`redis-server did not start: ${lastLines(proc.output())}`);
}

async function measureOnce(h: Harness, url: string, script?: string): Promise<Sample> {
  const ours = startedGroups();
  const own = ownProcessGroup();
  if (own !== undefined) ours.add(own);
  const wrk = (connections: number, durationSec: number) =>
    runWrk({
      wrk: h.tools.wrk,
      url,
      connections,
      durationSec,
      cpu: h.pin ? LOAD_CPU : undefined,
      ...(script ? { script } : {}),
    });
  const measured = async (connections: number) => {
    await wrk(connections, WARMUP_SEC);
    const before = sampleProcessCpu();
    const t0 = performance.now();
    const result = await wrk(connections, DURATION_SEC);
    const seconds = (performance.now() - t0) / 1_000;
    return { result, foreign: foreignCores(before, sampleProcessCpu(), ours, seconds) };
  };
  const c50 = await measured(50);
  const c1 = await measured(1);
  return { c50: c50.result, c1: c1.result, foreignCores: Math.max(c50.foreign, c1.foreign) };
}

function machineLine(tools: Tools | undefined): string {
  let cpu = 'unknown CPU';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpu = (m[1] as string).trim();
  } catch {
    // not Linux
  }
  const versions = tools
    ? `, ${toolVersion(tools.nginx, ['-v']).replace(/^nginx version: /, '')}, ${toolVersion(tools.wrk, ['-v']).split(' [')[0]}`
    : '';
  return `${cpu}, ${availableParallelism()} cores, Node ${process.version}${versions}`;
}

function problemOf(err: unknown): string {
  const msg = (err as Error).message.replace(/\s+/g, ' ');
  return err instanceof NotAvailable ? `not available: ${msg}` : `FAILED: ${msg}`;
}

export async function runGatewayBench(): Promise<BenchRow[]> {
  const stopCatching = killChildrenOnExit();
  let tools: Tools | undefined;
  let pin = false;
  let stalls: CpuStalls[] = [];
  let setupProblem: string | undefined;
  let removeTmpOnExit: (() => void) | undefined;
  const results: RowResult[] = [];
  try {
    tools = ensureTools(log);
    pin = availableParallelism() >= 2 && tools.taskset !== undefined;
    log(`gateway bench: measuring CPU stalls (${STALL_SECONDS} s)`);
    stalls = await measureCpuStalls(pin ? [PROXY_CPU, LOAD_CPU] : [0], STALL_SECONDS, pin);
    const tmp = mkdtempSync(join(tmpdir(), 'meshgate-gateway-bench-'));
    // Ctrl-C ends the process without reaching `finally`
    removeTmpOnExit = () => rmSync(tmp, { recursive: true, force: true });
    process.on('exit', removeTmpOnExit);
    // nginx's workers (user nobody) must reach their temp paths below it
    chmodSync(tmp, 0o755);
    const upstreamPort = await freePort();
    const upstreamDir = join(tmp, 'nginx-upstream');
    const upstream = startNginx(
      'nginx upstream',
      tools.nginx,
      upstreamDir,
      upstreamConfig(upstreamDir, upstreamPort),
      pin ? LOAD_CPU : undefined,
    );
    await checkAnswersLikeUpstream(upstream, `http://127.0.0.1:${upstreamPort}${REQUEST_PATH}`);
    const h: Harness = { tools, tmp, upstreamPort, pin };

    // Every proxy is started and checked first, then measured in rounds, the rows interleaved
    // and the order reversed every other round, so that a noisy minute on a shared machine
    // does not land on one row only. An idle proxy costs nothing while another is measured.
    const running: { row: RowResult; target: Target }[] = [];
    for (const spec of ROWS.filter((r) => onlyRows.length === 0 || onlyRows.includes(r.id))) {
      const row: RowResult = { id: spec.id, name: spec.name, cpu: spec.cpu(h), samples: [] };
      results.push(row);
      log(`gateway bench: starting row ${spec.id}, ${spec.name}`);
      try {
        running.push({ row, target: await spec.start(h) });
      } catch (err) {
        row.problem = problemOf(err);
        log(`  ${row.problem}`);
      }
    }
    for (let round = 1; round <= ROUNDS; round++) {
      const order = round % 2 === 1 ? running : [...running].reverse();
      for (const { row, target } of order) {
        if (row.problem) continue;
        const dead = target.procs.find((p) => p.hasExited());
        if (dead) {
          row.problem = `FAILED: ${dead.name} exited during the run: ${lastLines(dead.output())}`;
          log(`  ${row.problem}`);
          continue;
        }
        log(`gateway bench: round ${round}/${ROUNDS}, row ${row.id}, ${row.name}`);
        try {
          const sample = await measureOnce(h, target.url, target.wrkScript);
          row.samples.push(sample);
          log(
            `  ${fmtRps(sample.c50.requestsPerSec)} req/s @50, p50 @1 ${fmtLatency(sample.c1.p50Us)}` +
              (sample.foreignCores >= 0.05
                ? `, other processes used ${sample.foreignCores.toFixed(2)} cores`
                : ''),
          );
        } catch (err) {
          row.problem = problemOf(err);
          log(`  ${row.problem}`);
        }
      }
    }
  } catch (err) {
    setupProblem = (err as Error).message;
    log(`gateway bench: ${setupProblem}`);
  } finally {
    await stopAll();
    const left = leftoverGroups();
    if (left.length > 0) log(`gateway bench: WARNING, process groups still alive: ${left}`);
    if (removeTmpOnExit) {
      removeTmpOnExit();
      process.off('exit', removeTmpOnExit);
    }
    stopCatching();
  }
  const checks = checkTargets(new Map(results.map((r) => [r.id, summarize(r)])));
  const report = markdownReport(results, checks, {
    machine: machineLine(tools),
    durationSec: DURATION_SEC,
    warmupSec: WARMUP_SEC,
    rounds: ROUNDS,
    requestPath: REQUEST_PATH,
    bodyBytes: Buffer.byteLength(UPSTREAM_BODY),
    pin,
    proxyCpu: PROXY_CPU,
    loadCpu: LOAD_CPU,
    stalls,
    setupProblem,
  });
  mkdirSync(dirname(RESULTS_FILE), { recursive: true });
  writeFileSync(RESULTS_FILE, report);
  process.stdout.write(`\n${report}\n`);
  log(`gateway bench: report written to ${RESULTS_FILE}`);
  if (setupProblem) {
    return [{ bench: 'gateway', case: 'setup', value: NaN, unit: '', note: setupProblem }];
  }
  return benchRows(results, checks);
}

export const bench: Bench = { name: 'gateway', run: runGatewayBench };

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(formatTable(await runGatewayBench()));
}
