// The mesh benchmark: what mutual TLS between two hops costs a request, on loopback, in one run,
// with the gateway bench's load generator, upstream and machinery (bench/lib/).
//
//   1   wrk → nginx upstream, the "app" (direct)
//   2   naive baseline: wrk → @fastify/http-proxy A (plain HTTP) → HTTPS with a client certificate
//       → @fastify/http-proxy B (HTTPS, client certificate required) → upstream
//   3   wrk → nginx A → proxy_pass https with proxy_ssl_certificate and verify → nginx B
//       (listen ssl, ssl_verify_client on) → upstream
//   4   meshgate: wrk → sidecar A outbound (the Service in the Host header) → mTLS → sidecar B
//       inbound → upstream, with a real control plane and join tokens
//   5   the same, sidecar B enforcing an AuthorizationPolicy of 50 rules (the matching one last)
// and the sidecars' RSS with 100 generated Services (and EndpointSlices) in their view, read from
// /proc when idle (10 s without traffic), after a warm-up, after every round, 10 s after the
// last round, and their peak.
//
// Per row: wrk -t1 -c50 (req/s, p50, p99) and wrk -t1 -c1 (p50, p99), each after a warm-up;
// every proxy runs from the start, and the rows are measured in interleaved rounds (medians).
// Pinning (2 cores): wrk, the upstream nginx and the control plane share core 1; both hops of a
// two-hop row share core 0 (the report says so).
//
// Env: BENCH_DURATION (s per measurement, 10), BENCH_WARMUP (s, 3), BENCH_ROUNDS (3),
// BENCH_MESH_ROWS (e.g. 2,4: only those rows), MESHGATE_BIN (the CLI to measure,
// bin/meshgate.js; `npm run build` first, or it runs the sources through tsx),
// BENCH_MESH_CPU_PROF (a folder: the sidecars run with node --cpu-prof and write their profiles
// there when they stop).
// Run alone: npm run bench -- mesh   or   node --import tsx bench/mesh.ts
// Writes the markdown report to bench/results/mesh-latest.md.

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { formatTable, type Bench, type BenchRow } from './bench.ts';
import { startProcess, stopProcess, type ManagedProcess } from './lib/child-processes.ts';
import {
  LOAD_CPU,
  measureSettingsFromEnv,
  pinned,
  PROXY_CPU,
  rowsFromEnv,
  runLoopbackBench,
  type Harness,
  type RowSpec,
  type RunningRow,
} from './lib/loopback-bench.ts';
import { meshgateRunsFrom, type MeshgateBuild } from './lib/meshgate-build.ts';
import { startNginx } from './lib/nginx.ts';
import { checkAnswersLikeUpstream, freePort, sleep } from './lib/probe.ts';
import { benchRows } from './lib/results.ts';
import { runWrk } from './lib/wrk.ts';
import { issueBaselineTls, type BaselineTls } from './mesh/baseline-certificates.ts';
import {
  APP,
  APP_RBAC,
  CLIENT,
  MESH_NAMESPACE,
  SERVICE_PORT,
  writeMeshConfig,
} from './mesh/mesh-config.ts';
import {
  hostHeaderScript,
  joinTokenFile,
  servicesInView,
  startControlPlane,
  startSidecar,
  type ControlPlane,
  type Sidecar,
} from './mesh/mesh-processes.ts';
import { nginxHopAConfig, nginxHopBConfig } from './mesh/nginx-mtls.ts';
import { groupRss, processMemory } from './mesh/process-memory.ts';
import {
  checkMeshTargets,
  markdownReport,
  type ProxyMemory,
  type SidecarMemory,
} from './mesh/report.ts';

const here = dirname(fileURLToPath(import.meta.url));
const REPO = join(here, '..');
const RESULTS_FILE = join(here, 'results', 'mesh-latest.md');
const MESHGATE_BIN = process.env.MESHGATE_BIN || join(REPO, 'bin', 'meshgate.js');
const CPU_PROFILE_DIR = process.env.BENCH_MESH_CPU_PROF
  ? resolve(process.env.BENCH_MESH_CPU_PROF)
  : undefined;
/** Node options for the sidecars only (an experiment such as --max-semi-space-size=2). */
const SIDECAR_NODE_OPTIONS = (process.env.BENCH_MESH_SIDECAR_NODE_OPTIONS ?? '')
  .split(/\s+/)
  .filter((s) => s !== '');

const PATH_PREFIX = '/api/orders';
const REQUEST_PATH = `${PATH_PREFIX}/items`;

const log = (line: string) => process.stderr.write(`mesh bench: ${line}\n`);

interface MeshHarness extends Harness {
  /** The mesh CA's data folder: the baselines' certificates, then the control plane's. */
  dataDir: string;
  /** The baselines' certificates (issued by the first row that needs them). */
  tls?: Promise<BaselineTls>;
  /** The control plane of rows 4 and 5 (started by the first of them). */
  controlPlane?: Promise<ControlPlane>;
  sidecars: { row: string; sidecar: Sidecar; memory: SidecarMemory }[];
  /** What bin/meshgate.js ran each time a meshgate process started (dist/ or the sources). */
  meshgateFrom: Set<MeshgateBuild>;
}

/** Notes whether the meshgate process about to start runs the build or the sources. */
function noteMeshgateBuild(h: MeshHarness): void {
  const from = meshgateRunsFrom(MESHGATE_BIN);
  if (from === 'sources' && !h.meshgateFrom.has('sources'))
    log('meshgate runs from its TypeScript sources (dist/ is missing or stale): npm run build');
  h.meshgateFrom.add(from);
}

const bothHops = (h: Harness) => (h.pin ? `core ${PROXY_CPU}, both hops` : 'unpinned');

function baselineTls(h: MeshHarness): Promise<BaselineTls> {
  h.tls ??= issueBaselineTls(h.dataDir, join(h.tmp, 'baseline-tls'), MESH_NAMESPACE);
  return h.tls;
}

/** Stops what a row started when its check fails, then rethrows. */
async function checked(procs: ManagedProcess[], check: () => Promise<void>): Promise<void> {
  try {
    await check();
  } catch (err) {
    await Promise.all(procs.map((p) => stopProcess(p)));
    throw err;
  }
}

const direct: RowSpec<MeshHarness> = {
  id: '1',
  name: 'direct to nginx upstream (the app)',
  cpu: (h) => (h.pin ? `(upstream on core ${LOAD_CPU}, with wrk)` : 'unpinned'),
  async start(h) {
    return { url: `http://127.0.0.1:${h.upstreamPort}${REQUEST_PATH}`, procs: [] };
  },
};

const naive: RowSpec<MeshHarness> = {
  id: '2',
  name: 'naive: @fastify/http-proxy → mTLS → @fastify/http-proxy',
  cpu: bothHops,
  async start(h) {
    const tls = await baselineTls(h);
    const [portA, portB] = [await freePort(), await freePort()];
    const script = join(here, 'mesh', 'fastify-mtls-proxy.ts');
    const node = (args: string[]) =>
      pinned(h, process.execPath, ['--import', 'tsx', script, ...args]);
    const hopB = startProcess(
      'fastify hop B',
      ...node([
        '--port',
        String(portB),
        '--upstream',
        `http://127.0.0.1:${h.upstreamPort}`,
        '--server-cert',
        tls.serverCertFile,
        '--server-key',
        tls.serverKeyFile,
        '--client-ca',
        tls.rootFile,
      ]),
    );
    const hopA = startProcess(
      'fastify hop A',
      ...node([
        '--port',
        String(portA),
        '--upstream',
        `https://127.0.0.1:${portB}`,
        '--client-cert',
        tls.clientCertFile,
        '--client-key',
        tls.clientKeyFile,
        '--upstream-ca',
        tls.rootFile,
      ]),
    );
    const url = `http://127.0.0.1:${portA}${REQUEST_PATH}`;
    // hop B may still be starting when hop A answers: wait for the 200
    await checked([hopA, hopB], () =>
      checkAnswersLikeUpstream([hopA, hopB], url, { untilOk: true }),
    );
    return { url, procs: [hopA, hopB] };
  },
};

const nginxPair: RowSpec<MeshHarness> = {
  id: '3',
  name: 'nginx → mTLS → nginx',
  cpu: bothHops,
  async start(h) {
    const tls = await baselineTls(h);
    const [portA, portB] = [await freePort(), await freePort()];
    const cpu = h.pin ? PROXY_CPU : undefined;
    const dirB = join(h.tmp, 'nginx-mtls-b');
    const hopB = startNginx(
      'nginx hop B',
      h.tools.nginx,
      dirB,
      nginxHopBConfig(dirB, portB, h.upstreamPort, tls),
      cpu,
    );
    const dirA = join(h.tmp, 'nginx-mtls-a');
    const hopA = startNginx(
      'nginx hop A',
      h.tools.nginx,
      dirA,
      nginxHopAConfig(dirA, portA, portB, tls),
      cpu,
    );
    const url = `http://127.0.0.1:${portA}${REQUEST_PATH}`;
    await checked([hopA, hopB], () =>
      checkAnswersLikeUpstream([hopA, hopB], url, { untilOk: true }),
    );
    return { url, procs: [hopA, hopB] };
  },
};

async function controlPlane(h: MeshHarness): Promise<ControlPlane> {
  h.controlPlane ??= (async () => {
    // the root first: the control plane loads it from the data folder
    await baselineTls(h);
    const configDir = join(h.tmp, 'mesh-config');
    writeMeshConfig(configDir, h.upstreamPort, PATH_PREFIX);
    log(`$ meshgate control-plane --config ${configDir} --data ${h.dataDir}`);
    noteMeshgateBuild(h);
    return startControlPlane(h, MESHGATE_BIN, configDir, h.dataDir);
  })();
  return h.controlPlane;
}

/**
 * How long a sidecar sits without traffic before its idle RSS is read. V8 shrinks the heap it grew
 * while starting (the young generation back to 1 MB) a few seconds after activity stops; read at
 * once, the figure is that of a process that just did work (10 MB more, or 30).
 */
const IDLE_SETTLE_MS = 10_000;

/** RSS now, of every sidecar of `row`, into `field`. */
function sampleSidecars(h: MeshHarness, row: string, field: 'idle' | 'warm'): void {
  for (const s of h.sidecars) {
    if (s.row !== row) continue;
    const m = processMemory(s.sidecar.proc.child.pid);
    s.memory[field] = m?.rssBytes;
    if (field === 'idle' && m)
      Object.assign(s.memory, { idleAnon: m.anonBytes, idleFile: m.fileBytes });
  }
}

function meshRow(id: string, name: string, app: string): RowSpec<MeshHarness> {
  return {
    id,
    name,
    cpu: bothHops,
    async start(h) {
      const cp = await controlPlane(h);
      const tls = await baselineTls(h);
      const nodeArgs = (role: 'A' | 'B') => [
        ...SIDECAR_NODE_OPTIONS,
        ...(CPU_PROFILE_DIR
          ? [
              '--cpu-prof',
              '--cpu-prof-dir',
              CPU_PROFILE_DIR,
              '--cpu-prof-name',
              `row${id}-sidecar-${role}.cpuprofile`,
            ]
          : []),
      ];
      const start = async (role: 'A' | 'B', service: string) => {
        noteMeshgateBuild(h);
        return startSidecar(h, MESHGATE_BIN, cp, {
          name: `sidecar ${role} (${service}, row ${id})`,
          service,
          namespace: MESH_NAMESPACE,
          appPort: h.upstreamPort,
          tokenFile: await joinTokenFile(
            MESHGATE_BIN,
            cp,
            MESH_NAMESPACE,
            service,
            join(h.tmp, `token-${id}-${role}`),
          ),
          rootFile: tls.rootFile,
          nodeArgs: nodeArgs(role),
        });
      };
      const b = await start('B', app);
      const a = await start('A', CLIENT);
      const procs = [a.proc, b.proc];
      const host = `${app}.${MESH_NAMESPACE}:${SERVICE_PORT}`;
      const url = `http://127.0.0.1:${a.ports.outbound}${REQUEST_PATH}`;
      // sidecar A learns sidecar B's endpoint in a push after B registered: 404/503 until then
      await checked(procs, () =>
        checkAnswersLikeUpstream(procs, url, {
          headers: { host },
          untilOk: true,
          timeoutMs: 60_000,
        }),
      );
      for (const sidecar of [a, b])
        h.sidecars.push({
          row: id,
          sidecar,
          memory: { row: id, name: sidecar.proc.name, services: await servicesInView(sidecar) },
        });
      const wrkScript = hostHeaderScript(h.tmp, host);
      await sleep(IDLE_SETTLE_MS);
      sampleSidecars(h, id, 'idle');
      await runWrk({
        wrk: h.tools.wrk,
        url,
        connections: 50,
        durationSec: h.settings.warmupSec,
        script: wrkScript,
        ...(h.pin ? { cpu: LOAD_CPU } : {}),
      });
      sampleSidecars(h, id, 'warm');
      return { url, procs, wrkScript };
    },
  };
}

const ROWS: RowSpec<MeshHarness>[] = [
  direct,
  naive,
  nginxPair,
  meshRow('4', 'meshgate: sidecar → mTLS → sidecar', APP),
  meshRow('5', 'meshgate, 50-rule AuthorizationPolicy on B', APP_RBAC),
];

export async function runMeshBench(): Promise<BenchRow[]> {
  if (CPU_PROFILE_DIR) mkdirSync(CPU_PROFILE_DIR, { recursive: true });
  const sidecarMemory: SidecarMemory[] = [];
  const meshgateFrom = new Set<MeshgateBuild>();
  const proxyMemory: ProxyMemory[] = [];
  const { results, conditions } = await runLoopbackBench<MeshHarness>({
    name: 'mesh',
    requestPath: REQUEST_PATH,
    rows: ROWS,
    onlyRows: rowsFromEnv('BENCH_MESH_ROWS'),
    settings: measureSettingsFromEnv(),
    extend: (base) => ({
      ...base,
      dataDir: join(base.tmp, 'control-plane-data'),
      sidecars: [],
      meshgateFrom,
    }),
    async afterRounds(h: MeshHarness, running: RunningRow[]) {
      for (const s of h.sidecars) {
        const m = processMemory(s.sidecar.proc.child.pid);
        if (m)
          Object.assign(s.memory, {
            load: m.rssBytes,
            loadAnon: m.anonBytes,
            loadFile: m.fileBytes,
            peak: m.peakBytes,
          });
        sidecarMemory.push(s.memory);
      }
      // And once the load has stopped and the heap has had time to shrink again.
      if (h.sidecars.length > 0) await sleep(IDLE_SETTLE_MS);
      for (const s of h.sidecars)
        s.memory.rested = processMemory(s.sidecar.proc.child.pid)?.rssBytes;
      for (const { row, target } of running)
        for (const p of target.procs)
          proxyMemory.push({ row: row.id, name: p.name, rss: groupRss(p.child.pid) });
    },
  });
  const from = (['sources', 'custom', 'dist'] as const).find((b) => meshgateFrom.has(b));
  const checks = checkMeshTargets(results, sidecarMemory, from);
  const report = markdownReport(results, checks, {
    ...conditions,
    meshgateFrom: from,
    sidecarNodeOptions: SIDECAR_NODE_OPTIONS,
    sidecars: sidecarMemory,
    proxies: proxyMemory,
  });
  mkdirSync(dirname(RESULTS_FILE), { recursive: true });
  writeFileSync(RESULTS_FILE, report);
  process.stdout.write(`\n${report}\n`);
  log(`report written to ${RESULTS_FILE}`);
  if (CPU_PROFILE_DIR) log(`sidecar CPU profiles in ${CPU_PROFILE_DIR}`);
  if (conditions.setupProblem) {
    return [{ bench: 'mesh', case: 'setup', value: NaN, unit: '', note: conditions.setupProblem }];
  }
  return benchRows('mesh', results, checks);
}

export const bench: Bench = { name: 'mesh', run: runMeshBench };

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(formatTable(await runMeshBench()));
}
