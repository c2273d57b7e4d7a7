import { mkdir, mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JwksCache } from '../../../gateway/auth/jwks-cache.ts';
import {
  authorizeInbound,
  compileInboundPolicy,
  type InboundDecision,
  type InboundRequest,
} from '../../../shared/authz/evaluate.ts';
import type { JwksProvider } from '../../../shared/authz/request-authentication.ts';
import type { WorkloadCredentials } from '../../../shared/identity/workload-identity.ts';
import {
  CONFORMANCE_TABLE,
  renderPolicyText,
  rowName,
  rowRequest,
  signAllTokens,
  type ConformanceRow,
  type SignedTokens,
} from '../../authz/istio-conformance-table.ts';
import { meshgate } from '../../helpers/cli.ts';
import {
  closeAll,
  startTestControlPlane,
  type TestControlPlane,
} from '../../helpers/control-plane.ts';
import { startEchoServer, type EchoServer } from '../../helpers/echo-server.ts';
import {
  CALLERS,
  castServicesYaml,
  compileTexts,
  ISTIO_ROOT_NAMESPACE,
  PORT,
  readConformance,
  WORKLOADS,
} from '../../helpers/istio-cast.ts';
import { startJwksServer, type JwksServer } from '../../helpers/jwks-server.ts';
import { issueCredentials, mtlsPool } from '../../helpers/mesh-credentials.ts';
import { killSidecars, startSidecar, type SidecarProcess } from '../../helpers/sidecar-process.ts';

// "The sidecar's inbound authorization and `meshgate explain` call the same evaluator", checked
// on every row of the authorization table of test/authz (Istio's own security integration tests,
// 242 requests over 33 policy sets): each row is sent to a real sidecar (one per workload and
// port of the cast, all joined to the real control plane, whose folder holds the row's policy
// set), as the caller the row names (mTLS with that principal's certificate, or plaintext), with
// its method, path, Host, headers and tokens; the sidecar's answer and access log give its
// decision. The same request, with the facts the sidecar saw, goes through the evaluator
// directly and through `meshgate explain --requests --json`. All three must agree on every row.
//
// On loopback the connection's addresses are 127.0.0.1, not the cast's pod IPs, and the cast's
// workload ports are mapped to free ports (in the policies too): rows whose decision depends on
// source.ip, destination.ip or the SNI are compared on the facts the sidecar saw. Every row whose
// decision the loopback facts do not change must also match the table's expectation.

const groups = new Map<string, ConformanceRow[]>();
for (const row of CONFORMANCE_TABLE) {
  const key = row.files.join('+');
  groups.set(key, [...(groups.get(key) ?? []), row]);
}
/** Every (workload, port) a row is sent to gets its own sidecar. */
const targets = [...new Set(CONFORMANCE_TABLE.map((r) => `${r.to}|${r.port ?? PORT.http}`))];

let cp: TestControlPlane;
let jwksServer: JwksServer;
let tokens: SignedTokens;
let jwks: JwksProvider;
let explainRoot: string;
/** The cast's workload ports → free ports on loopback. */
const portMap = new Map<number, number>();
const apps: EchoServer[] = [];
const sidecars = new Map<string, SidecarProcess>();
const inboundPorts = new Map<string, number>();
const callers = new Map<string, WorkloadCredentials>();
let marker = 0;

/** The cast's port numbers, in policies and Services, as the free ports the apps listen on. */
function mapPorts(text: string): string {
  let out = text;
  for (const [from, to] of portMap) out = out.replace(new RegExp(`\\b${from}\\b`, 'g'), String(to));
  return out;
}

const mapped = (port: number) => portMap.get(port) ?? port;

beforeAll(async () => {
  jwksServer = await startJwksServer();
  tokens = await signAllTokens(jwksServer);
  const cache = new JwksCache({ now: Date.now, cooldownMs: 30_000, fetchTimeoutMs: 2_000 });
  jwks = { resolver: (uri, maxAgeMs) => cache.resolver(uri, maxAgeMs) };
  for (const port of [PORT.http, PORT.http2, PORT.grpc, PORT.httpWorkloadOnly]) {
    const app = await startEchoServer(`app-${port}`);
    apps.push(app);
    portMap.set(port, app.port);
  }
  explainRoot = await mkdtemp(join(tmpdir(), 'meshgate-authz-agreement-'));
  cp = await startTestControlPlane(
    { 'cast.yaml': mapPorts(castServicesYaml()) },
    { rootNamespace: ISTIO_ROOT_NAMESPACE, pushDebounceMs: 20, configDebounceMs: 20 },
  );
  for (const target of targets) {
    const [to, port] = target.split('|') as [string, string];
    const w = WORKLOADS[to] as (typeof WORKLOADS)[string];
    const name = to.slice(to.indexOf('/') + 1);
    sidecars.set(
      target,
      await startSidecar(cp, {
        service: name,
        namespace: w.namespace,
        labels: { ...w.labels },
        appPort: mapped(Number(port)),
        accessLog: 'stdout',
      }),
    );
  }
  await Promise.all([...sidecars.values()].map((s) => s.ready()));
  for (const [target, s] of sidecars) inboundPorts.set(target, (await s.ports()).inbound);
  for (const [key, caller] of Object.entries(CALLERS)) {
    const [, , ns, , sa] = caller.principal.split('/') as string[];
    callers.set(key, await issueCredentials(cp.dataDir, ns as string, sa as string));
  }
}, 120_000);

afterAll(async () => {
  await killSidecars();
  await closeAll();
  await jwksServer?.close();
  await Promise.all(apps.map((a) => a.close()));
  if (explainRoot) await rm(explainRoot, { recursive: true, force: true });
});

interface Outcome {
  allow: boolean;
  status: number;
  by: string | undefined;
  mtls: string;
  plaintextRefused: boolean;
}

function outcomeOf(d: {
  allow: boolean;
  status: number;
  decidedBy?: { policy: string; rule: number } | undefined;
  mtls: string;
  plaintextRefused: boolean;
}): Outcome {
  return {
    allow: d.allow,
    status: d.status,
    by: d.decidedBy ? `${d.decidedBy.policy} rule ${d.decidedBy.rule}` : undefined,
    mtls: d.mtls,
    plaintextRefused: d.plaintextRefused,
  };
}

/** Installs a policy set: the cast, the set's files, and a marker that changes every view. */
let installed: string[] = [];
async function install(files: string[]): Promise<Map<string, string>> {
  const texts = new Map<string, string>();
  for (const f of files)
    texts.set(f, mapPorts(renderPolicyText(await readConformance(f), jwksServer.uri)));
  for (const f of installed) if (!files.includes(f)) await unlink(join(cp.folder.dir, f));
  for (const [f, text] of texts) await cp.folder.write(f, text);
  marker++;
  await cp.folder.write(
    'marker.yaml',
    `apiVersion: v1\nkind: Service\nmetadata: { name: marker-${marker}, namespace: default }\nspec:\n  ports: [{ port: 80 }]\n`,
  );
  installed = files;
  // The control plane compiled the new folder, and every sidecar serves a view cut from it.
  let version = '';
  for (let i = 0; i < 400; i++) {
    const dump = (await (
      await fetch(`${cp.adminUrl}/config_dump`)
    )
      .json()
      .catch(() => undefined)) as
      { snapshot?: { services?: { name: string }[] }; version?: string } | undefined;
    if (dump?.snapshot?.services?.some((s) => s.name === `marker-${marker}`)) {
      version = dump.version ?? '';
      break;
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  expect(version, `the control plane never loaded ${files.join(', ')}`).not.toBe('');
  for (const s of sidecars.values())
    for (let i = 0; ; i++) {
      const v = (await s.admin<{ view: { snapshotVersion: string } }>('/config_dump')).body.view;
      if (v.snapshotVersion === version) break;
      if (i > 400) throw new Error(`a sidecar never got snapshot ${version}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  return texts;
}

interface SentRow {
  row: ConformanceRow;
  requestId: string;
  /** The request with the facts the sidecar saw. */
  request: InboundRequest;
  sidecar: Outcome;
}

/** Sends one row to its sidecar; returns what the sidecar decided and the facts it saw. */
async function sendRow(row: ConformanceRow, index: number, pools: Pool[]): Promise<SentRow> {
  const target = `${row.to}|${row.port ?? PORT.http}`;
  const sidecar = sidecars.get(target) as SidecarProcess;
  const inbound = inboundPorts.get(target) as number;
  const mode = (await sidecar.admin<{ view: { inbound: { mtls: string } } }>('/config_dump')).body
    .view.inbound.mtls;
  // The row's request with the cast's facts; the connection's own facts are the loopback's.
  const original = rowRequest(row, tokens);
  const credentials = original.peerPrincipal ? callers.get(row.from) : undefined;
  // As Istio's auto mTLS does: a caller with an identity speaks mTLS unless the port is DISABLE.
  const tls = credentials !== undefined && mode !== 'DISABLE';
  const requestId = `row-${index}`;
  const headers: Record<string, string> = {
    ...(original.headers as Record<string, string>),
    host: original.host as string,
    'x-request-id': requestId,
  };
  if (row.remoteIp) headers['x-forwarded-for'] = row.remoteIp;
  const pool = tls
    ? mtlsPool(`https://127.0.0.1:${inbound}`, credentials, {
        rootPem: cp.rootPem,
        ...(original.sni ? { servername: original.sni } : {}),
      })
    : new Pool(`http://127.0.0.1:${inbound}`);
  pools.push(pool);
  const request: InboundRequest = {
    port: mapped(row.port ?? PORT.http),
    ...(tls ? { peerPrincipal: original.peerPrincipal as string } : {}),
    sourceIp: '127.0.0.1',
    remoteIp: row.remoteIp ?? '127.0.0.1',
    destinationIp: '127.0.0.1',
    ...(tls && original.sni ? { sni: original.sni } : {}),
    method: original.method,
    path: original.path,
    host: original.host as string,
    headers: original.headers as Record<string, string>,
  };
  let status: number;
  try {
    const res = await pool.request({
      method: original.method as 'GET',
      path: original.path,
      headers,
    });
    status = res.statusCode;
    await res.body.dump();
  } catch {
    // No HTTP answer: the connection was refused (plaintext at a STRICT port).
    return {
      row,
      requestId,
      request,
      sidecar: { allow: false, status: 403, by: undefined, mtls: mode, plaintextRefused: true },
    };
  }
  const line = await sidecar.accessLog(requestId);
  return {
    row,
    requestId,
    request,
    sidecar: {
      allow: line.authz === 'allow',
      status,
      by:
        line.policy !== undefined
          ? `${line.policy as string} rule ${line.rule as number}`
          : undefined,
      mtls: line.mode as string,
      plaintextRefused: false,
    },
  };
}

describe('the sidecar and `meshgate explain` decide every row of the authorization table alike', () => {
  it(`${CONFORMANCE_TABLE.length} requests over ${groups.size} policy sets: sidecar = evaluator = explain`, async () => {
    const sent: SentRow[] = [];
    const explainRuns: { dir: string; file: string; rows: SentRow[] }[] = [];
    let index = 0;
    for (const rows of groups.values()) {
      const texts = await install(rows[0]?.files ?? []);
      const pools: Pool[] = [];
      const groupSent: SentRow[] = [];
      for (const row of rows) groupSent.push(await sendRow(row, index++, pools));
      await Promise.all(pools.map((p) => p.destroy()));
      sent.push(...groupSent);
      // The same folder for explain (without the marker), and one request line per row.
      const dir = join(explainRoot, `set-${explainRuns.length}`);
      await mkdir(dir);
      await writeFile(join(dir, 'cast.yaml'), mapPorts(castServicesYaml()));
      for (const [f, text] of texts) await writeFile(join(dir, f), text);
      const file = join(explainRoot, `set-${explainRuns.length}.jsonl`);
      await writeFile(
        file,
        groupSent
          .map(({ row, request }) =>
            JSON.stringify({
              service: row.to,
              port: request.port,
              ...(request.peerPrincipal
                ? { fromPrincipal: request.peerPrincipal }
                : { plaintext: true }),
              sourceIp: request.sourceIp,
              remoteIp: request.remoteIp,
              destinationIp: request.destinationIp,
              ...(request.sni ? { sni: request.sni } : {}),
              method: request.method,
              path: request.path,
              host: request.host,
              headers: request.headers,
            }),
          )
          .join('\n'),
      );
      explainRuns.push({ dir, file, rows: groupSent });
    }

    // The evaluator, directly, on the facts the sidecar saw.
    const disagreements: string[] = [];
    const compiled = new Map<string, ReturnType<typeof compileInboundPolicy>>();
    const evaluate = async (row: ConformanceRow, request: InboundRequest, original: boolean) => {
      const texts = await Promise.all(
        row.files.map(async (file) => ({
          file,
          text: original
            ? renderPolicyText(await readConformance(file), jwksServer.uri)
            : mapPorts(renderPolicyText(await readConformance(file), jwksServer.uri)),
        })),
      );
      const key = `${original}|${row.files.join('+')}|${row.to}|${JSON.stringify(original ? (row.normalization ?? {}) : {})}`;
      let c = compiled.get(key);
      if (!c) {
        c = compileInboundPolicy(
          compileTexts(texts),
          WORKLOADS[row.to] as (typeof WORKLOADS)[string],
          {
            jwks,
            ...(original && row.normalization ? { pathNormalization: row.normalization } : {}),
          },
        );
        compiled.set(key, c);
      }
      return outcomeOf(await authorizeInbound(c, request));
    };

    // `meshgate explain --requests FILE --json`, one run per policy set, a few at a time.
    const explained = new Map<SentRow, Outcome>();
    const queue = [...explainRuns];
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let run = queue.shift(); run; run = queue.shift()) {
          const r = await meshgate([
            'explain',
            run.dir,
            '--root-namespace',
            ISTIO_ROOT_NAMESPACE,
            '--requests',
            run.file,
            '--json',
          ]);
          const lines = r.stdout
            .trim()
            .split('\n')
            .map((l) => JSON.parse(l) as InboundDecision);
          expect(lines.length, r.stderr).toBe(run.rows.length);
          run.rows.forEach((s, i) => explained.set(s, outcomeOf(lines[i] as InboundDecision)));
        }
      }),
    );

    let matchingTable = 0;
    let loopbackDiffers = 0;
    for (const s of sent) {
      const direct = await evaluate(s.row, s.request, false);
      const viaExplain = explained.get(s) as Outcome;
      const name = rowName(s.row);
      if (JSON.stringify(s.sidecar) !== JSON.stringify(direct))
        disagreements.push(
          `${name}\n  sidecar:   ${JSON.stringify(s.sidecar)}\n  evaluator: ${JSON.stringify(direct)}`,
        );
      if (JSON.stringify(viaExplain) !== JSON.stringify(direct))
        disagreements.push(
          `${name}\n  explain:   ${JSON.stringify(viaExplain)}\n  evaluator: ${JSON.stringify(direct)}`,
        );
      // With the cast's own facts (pod IPs, SNI, the row's normalization), the evaluator gives
      // the table's answer (test/authz checks that); when the loopback facts decide the same,
      // the sidecar has given the table's answer too.
      const asInTable = await evaluate(s.row, rowRequest(s.row, tokens), true);
      if (JSON.stringify(asInTable) === JSON.stringify(direct)) {
        matchingTable++;
        const e = s.row.expect;
        const want = {
          allow: e.allow,
          status: e.status ?? (e.allow ? 200 : 403),
          ...(e.by ? { by: e.by } : {}),
          plaintextRefused: e.plaintextRefused ?? false,
        };
        const got = {
          allow: s.sidecar.allow,
          status: s.sidecar.status,
          ...(e.by ? { by: s.sidecar.by } : {}),
          plaintextRefused: s.sidecar.plaintextRefused,
        };
        if (JSON.stringify(got) !== JSON.stringify(want))
          disagreements.push(
            `${name}\n  sidecar: ${JSON.stringify(got)}\n  table:   ${JSON.stringify(want)}`,
          );
      } else loopbackDiffers++;
    }
    expect(disagreements.join('\n')).toBe('');
    expect(sent.length).toBe(CONFORMANCE_TABLE.length);
    // Most rows do not depend on pod addresses: they reproduce the table exactly.
    expect(matchingTable).toBeGreaterThanOrEqual(230);
    expect(matchingTable + loopbackDiffers).toBe(CONFORMANCE_TABLE.length);
  }, 600_000);
});
