import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JwksCache } from '../../gateway/auth/jwks-cache.ts';
import { authorizeInbound, compileInboundPolicy } from '../../shared/authz/evaluate.ts';
import type { JwksProvider } from '../../shared/authz/request-authentication.ts';
import {
  CONFORMANCE_TABLE,
  renderPolicyText,
  rowName,
  rowRequest,
  signAllTokens,
  type ConformanceRow,
  type SignedTokens,
} from '../authz/istio-conformance-table.ts';
import { meshgate } from '../helpers/cli.ts';
import { ConfigFolder } from '../helpers/config-folder.ts';
import {
  castServicesYaml,
  compileTexts,
  readConformance,
  WORKLOADS,
} from '../helpers/istio-cast.ts';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.ts';

// `meshgate explain DIR --service NS/NAME (--from-principal P | --plaintext) …` on Istio's
// rendered test policies plus Services for the cast, with --root-namespace istio-system.

let server: JwksServer;
let tokens: SignedTokens;
const folders: ConfigFolder[] = [];

async function folderWith(files: string[]): Promise<ConfigFolder> {
  const contents: Record<string, string> = { 'cast.yaml': castServicesYaml() };
  for (const f of files) contents[f] = renderPolicyText(await readConformance(f), server.uri);
  const folder = await ConfigFolder.create(contents);
  folders.push(folder);
  return folder;
}

beforeAll(async () => {
  server = await startJwksServer();
  tokens = await signAllTokens(server);
});
afterAll(async () => {
  await Promise.all(folders.map((f) => f.remove()));
  await server.close();
});

const ISTIO = ['--root-namespace', 'istio-system'];

describe('meshgate explain: an authorization decision', () => {
  it('names the policy and rule that denied, and why the others did not match', async () => {
    const dir = (await folderWith(['TestAuthz_DenyPrincipal.yaml'])).dir;
    const r = await meshgate([
      'explain',
      dir,
      ...ISTIO,
      '--service',
      'ns1/b',
      '--port',
      '80',
      '--from-principal',
      'cluster.local/ns/ns2/sa/a',
      '--method',
      'GET',
      '--path',
      '/deny',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe(
      'GET b.ns1.svc.cluster.local/deny at Service ns1/b port 80 → workload port 18080 (namespace ns1, labels app=b)',
    );
    expect(lines).toContain('  caller: cluster.local/ns/ns2/sa/a over mTLS');
    expect(lines).toContain('  peer authentication: STRICT (workload policy ns1/b)');
    expect(lines).toContain(
      '    DENY   istio-system/policy-deny-system (mesh-wide (root namespace)): no match',
    );
    expect(lines).toContain('      rule 0: to: path /deny not in paths [/global-deny*]');
    expect(lines).toContain('    DENY   ns1/b (selector app=b): matches rule 0  ← decides');
    expect(lines.at(-2)).toBe('  decision: DENY (403): denied by ns1/b rule 0');
  });

  it('--plaintext against STRICT: refused before any policy', async () => {
    const dir = (await folderWith(['TestAuthz_DenyPrincipal.yaml'])).dir;
    const r = await meshgate([
      'explain',
      dir,
      ...ISTIO,
      '--service',
      'ns1/b',
      '--plaintext',
      '--path',
      '/',
      '--json',
    ]);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(out).toMatchObject({
      allow: false,
      status: 403,
      mtls: 'STRICT',
      plaintextRefused: true,
      peerAuthentication: { mode: 'STRICT', from: 'workload policy ns1/b' },
      requestAuthentication: { outcome: 'not reached' },
      policies: [],
    });
    expect(out.decidedBy).toBeUndefined();
  });

  it('--json gives the decision, the deciding rule and every policy in order', async () => {
    const dir = (await folderWith(['TestAuthz_Conditions.yaml'])).dir;
    const r = await meshgate([
      'explain',
      dir,
      ...ISTIO,
      '--service',
      'ns1/b',
      '--from-principal',
      'cluster.local/ns/ns1/sa/a',
      '--header',
      'X-Foo=foo',
      '--path',
      '/request-headers?x=1',
      '--json',
    ]);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as {
      allow: boolean;
      status: number;
      decidedBy: unknown;
      policies: { policy: string; action: string; matched: boolean; decided?: boolean }[];
    };
    expect(out).toMatchObject({
      service: 'ns1/b',
      workload: { namespace: 'ns1', labels: { app: 'b' } },
      port: 80,
      workloadPort: 18080,
      allow: true,
      status: 200,
      mtls: 'STRICT',
      decidedBy: { policy: 'ns1/b-request-headers', action: 'ALLOW', rule: 0 },
      reason: 'allowed by ns1/b-request-headers rule 0',
      peerPrincipal: 'cluster.local/ns/ns1/sa/a',
      normalizedPath: '/request-headers',
    });
    expect(out.policies.map((p) => p.policy)).toEqual([
      'ns1/b-connection-sni',
      'ns1/b-destination-ip',
      'ns1/b-destination-port',
      'ns1/b-request-headers',
      'ns1/b-source-ip',
      'ns1/b-source-namespace',
      'ns1/b-source-principal',
      'ns1/b-source-trust-domain',
    ]);
    expect(out.policies.filter((p) => p.decided).map((p) => p.policy)).toEqual([
      'ns1/b-request-headers',
    ]);
  });

  it('--root-namespace decides what is mesh-wide (default meshgate-system)', async () => {
    const dir = (await folderWith(['TestAuthz_DenyPrincipal.yaml'])).dir;
    const args = [
      '--service',
      'ns1/c',
      '--from-principal',
      'cluster.local/ns/ns1/sa/a',
      '--path',
      '/global-deny',
      '--json',
    ];
    const istio = JSON.parse((await meshgate(['explain', dir, ...ISTIO, ...args])).stdout);
    expect(istio).toMatchObject({
      allow: false,
      decidedBy: { policy: 'istio-system/policy-deny-system', action: 'DENY', rule: 0 },
    });
    // With meshgate's default root namespace, istio-system is an ordinary namespace.
    const ours = JSON.parse((await meshgate(['explain', dir, ...args])).stdout);
    expect(ours).toMatchObject({ allow: true, policies: [] });
  });

  it('--jwt FILE is verified against the jwtRules (jwksUri fetched); --jwt-claims FILE is taken as verified', async () => {
    const folder = await folderWith(['TestAuthz_JWT.yaml']);
    const jwtFile = join(folder.dir, '..', `${folder.dir.split('/').at(-1)}-token.jwt`);
    await writeFile(jwtFile, `${tokens.good.TokenIssuer2}\n`);
    const base = [
      'explain',
      folder.dir,
      ...ISTIO,
      '--service',
      'ns1/b',
      '--from-principal',
      'cluster.local/ns/ns1/sa/a',
      '--json',
    ];
    const withJwt = JSON.parse(
      (await meshgate([...base, '--jwt', jwtFile, '--path', '/token2'])).stdout,
    );
    expect(withJwt).toMatchObject({
      allow: true,
      requestPrincipal: 'test-issuer-2@istio.io/sub-2',
      decidedBy: { policy: 'ns1/b', rule: 1 },
      requestAuthentication: { rule: 'ns1/default jwtRules[1]' },
    });
    await writeFile(jwtFile, tokens.bad.TokenIssuer1);
    const bad = JSON.parse(
      (await meshgate([...base, '--jwt', jwtFile, '--path', '/token1'])).stdout,
    );
    expect(bad).toMatchObject({ allow: false, status: 401 });
    expect(bad.reason).toMatch(/^request authentication failed: ns1\/default jwtRules\[0\]: /);

    const claimsFile = join(folder.dir, 'claims.json.txt');
    await writeFile(
      claimsFile,
      JSON.stringify({ iss: 'test-issuer-1@istio.io', sub: 'sub-1', nested: { key2: 'valueC' } }),
    );
    const claims = JSON.parse(
      (await meshgate([...base, '--jwt-claims', claimsFile, '--path', '/nested-key2'])).stdout,
    );
    expect(claims).toMatchObject({ allow: true, decidedBy: { policy: 'ns1/b', rule: 10 } });
    const none = JSON.parse((await meshgate([...base, '--path', '/tokenAny'])).stdout);
    expect(none).toMatchObject({
      allow: false,
      status: 403,
      requestAuthentication: { outcome: 'no token: no request principal' },
    });
  });

  it('refuses contradictory or incomplete flags (exit 2)', async () => {
    const dir = (await folderWith(['TestAuthz_NotPort.yaml'])).dir;
    const cases: [string[], RegExp][] = [
      [
        ['--service', 'ns1/b', '--plaintext', '--from-principal', 'x', '--path', '/'],
        /either --from-principal or --plaintext/,
      ],
      [['--plaintext', '--path', '/'], /--service NS\/NAME/],
      [['--service', 'ns1/b', '--plaintext'], /--path is required/],
      [['--service', 'ns9/zz', '--plaintext', '--path', '/'], /no Service ns9\/zz/],
    ];
    for (const [args, message] of cases) {
      const r = await meshgate(['explain', dir, ...ISTIO, ...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
    }
  });
});

describe('meshgate explain --requests: authorization lines', () => {
  it('checks expectations; a mismatch fails the run (exit 1)', async () => {
    const folder = await folderWith(['TestAuthz_PathPrecedence.yaml']);
    const file = join(folder.dir, 'checks.jsonl.txt');
    const line = (o: object) => JSON.stringify(o);
    const from = 'cluster.local/ns/ns1/sa/a';
    await writeFile(
      file,
      [
        line({
          service: 'ns1/b',
          fromPrincipal: from,
          method: 'GET',
          path: '/allow',
          expect: { allow: true },
        }),
        line({
          service: 'ns1/b',
          fromPrincipal: from,
          method: 'GET',
          path: '/allow/admin',
          expect: { allow: false, status: 403, decidedBy: 'ns1/policy-b-deny rule 0' },
        }),
        '# a comment',
        line({
          service: 'ns1/b',
          plaintext: true,
          method: 'GET',
          path: '/allow/x',
          expect: { allow: true },
        }),
      ].join('\n'),
    );
    const ok = await meshgate(['explain', folder.dir, ...ISTIO, '--requests', file]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain(
      `checks.jsonl.txt:2 GET /allow/admin at ns1/b from ${from} → DENY 403 (denied by ns1/policy-b-deny rule 0) ✓`,
    );
    expect(ok.stdout).toContain('3 requests, 0 failed');

    await writeFile(
      file,
      line({
        service: 'ns1/b',
        fromPrincipal: from,
        path: '/allow/admin',
        expect: { allow: true },
      }),
    );
    const bad = await meshgate(['explain', folder.dir, ...ISTIO, '--requests', file, '--json']);
    expect(bad.code).toBe(1);
    const out = JSON.parse(bad.stdout.trim()) as {
      expectation: { ok: boolean; mismatches: string[] };
    };
    expect(out.expectation).toEqual({
      ok: false,
      mismatches: ['expected allow=true, got false (denied by ns1/policy-b-deny rule 0)'],
    });
  });

  // The sidecar's inbound authorization and explain call the same evaluator: every row of the
  // Istio conformance table, explained by the CLI, decides exactly as authorizeInbound does.
  // (Rows that change the path normalization are left out: explain uses the default one.)
  it(
    'agrees with the sidecar evaluator on the whole conformance table',
    { timeout: 180_000 },
    async () => {
      // The same JWKS cache the CLI builds, so that a JWKS that cannot be fetched fails alike.
      const jwks: JwksProvider = new JwksCache({
        now: Date.now,
        cooldownMs: 30_000,
        fetchTimeoutMs: 5000,
      });
      const rows = CONFORMANCE_TABLE.filter((r) => !r.normalization);
      const groups = new Map<string, ConformanceRow[]>();
      for (const r of rows) {
        const key = r.files.join('+');
        groups.set(key, [...(groups.get(key) ?? []), r]);
      }
      let compared = 0;
      const runGroup = async (files: string[], group: ConformanceRow[]) => {
        const folder = await folderWith(files);
        const snapshot = compileTexts([
          { file: 'cast.yaml', text: castServicesYaml() },
          ...(await Promise.all(
            files.map(async (f) => ({
              file: f,
              text: renderPolicyText(await readConformance(f), server.uri),
            })),
          )),
        ]);
        const requests = group.map((row) => {
          const q = rowRequest(row, tokens);
          return {
            service: row.to,
            port: q.port,
            ...(q.peerPrincipal ? { fromPrincipal: q.peerPrincipal } : { plaintext: true }),
            sourceIp: q.sourceIp,
            remoteIp: q.remoteIp,
            destinationIp: q.destinationIp,
            ...(q.sni ? { sni: q.sni } : {}),
            method: q.method,
            path: q.path,
            host: q.host,
            headers: q.headers,
          };
        });
        const file = join(folder.dir, 'requests.jsonl.txt');
        await writeFile(file, requests.map((x) => JSON.stringify(x)).join('\n'));
        const r = await meshgate(['explain', folder.dir, ...ISTIO, '--requests', file, '--json']);
        expect(r.code, r.stderr).toBe(0);
        const explained = r.stdout
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as Record<string, unknown>);
        expect(explained.length).toBe(group.length);
        for (const [i, row] of group.entries()) {
          const compiled = compileInboundPolicy(
            snapshot,
            WORKLOADS[row.to] as (typeof WORKLOADS)[string],
            { jwks },
          );
          const d = await authorizeInbound(compiled, rowRequest(row, tokens));
          const e = explained[i] as Record<string, unknown>;
          const pick = (x: Record<string, unknown>) => ({
            allow: x.allow,
            status: x.status,
            mtls: x.mtls,
            plaintextRefused: x.plaintextRefused,
            decidedBy: x.decidedBy,
            reason: x.reason,
            requestPrincipal: x.requestPrincipal,
          });
          expect(pick(e), rowName(row)).toEqual(pick(d as unknown as Record<string, unknown>));
          compared++;
        }
      };
      const entries = [...groups.entries()];
      for (let i = 0; i < entries.length; i += 6)
        await Promise.all(
          entries.slice(i, i + 6).map(([key, group]) => runGroup(key.split('+'), group)),
        );
      expect(compared).toBe(rows.length);
      expect(compared).toBeGreaterThanOrEqual(60);
    },
  );
});
