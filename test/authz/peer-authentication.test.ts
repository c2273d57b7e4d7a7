import { describe, expect, it } from 'vitest';
import { evaluateInbound } from '../../shared/authz/evaluate.ts';
import {
  compilePeerAuthentication,
  mtlsModeForPort,
  mtlsModeSource,
} from '../../shared/authz/peer-authentication.ts';
import type { WorkloadRef } from '../../shared/authz/workload-selection.ts';
import { by, decide, inbound, plaintext, req, ROOT, snapshotOf } from './policy-fixtures.ts';

const FINANCE: WorkloadRef = { namespace: 'foo', labels: { app: 'finance' } };
const OTHER: WorkloadRef = { namespace: 'foo', labels: { app: 'web' } };

function pa(name: string, namespace: string, body: string, created?: string): string {
  return `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: ${name}, namespace: ${namespace}${created ? `, creationTimestamp: "${created}"` : ''} }
spec:
${body
  .split('\n')
  .map((l) => `  ${l}`)
  .join('\n')}
`;
}

function modeOf(yaml: string, workload: WorkloadRef, port = 8080) {
  const c = compilePeerAuthentication(
    snapshotOf(yaml).meshSecurity.peerAuthentications,
    workload,
    ROOT,
  );
  return { mode: mtlsModeForPort(c, port), from: mtlsModeSource(c, port), compiled: c };
}

describe('PeerAuthentication: the effective mTLS mode', () => {
  // peer_authentication.proto: "Policies to allow both mTLS & plaintext traffic for all workloads
  // under namespace `foo`, but require mTLS for workload `finance`." (namespace PERMISSIVE +
  // selector app: finance STRICT). "For mesh level, put the policy in root-namespace."
  const docExample = [
    pa('default', 'foo', 'mtls: { mode: PERMISSIVE }'),
    pa('finance', 'foo', 'selector: { matchLabels: { app: finance } }\nmtls: { mode: STRICT }'),
  ].join('---\n');

  it.each([
    ['no policy at all: PERMISSIVE ("Otherwise treated as PERMISSIVE")', '', FINANCE, 'PERMISSIVE'],
    [
      'mesh STRICT in the root namespace',
      pa('default', ROOT, 'mtls: { mode: STRICT }'),
      FINANCE,
      'STRICT',
    ],
    [
      'namespace over mesh',
      [
        pa('default', ROOT, 'mtls: { mode: STRICT }'),
        pa('ns', 'foo', 'mtls: { mode: DISABLE }'),
      ].join('---\n'),
      FINANCE,
      'DISABLE',
    ],
    ['doc example: finance is STRICT', docExample, FINANCE, 'STRICT'],
    ['doc example: other workloads PERMISSIVE', docExample, OTHER, 'PERMISSIVE'],
    [
      'a namespace policy of another namespace does not apply',
      pa('default', 'bar', 'mtls: { mode: STRICT }'),
      FINANCE,
      'PERMISSIVE',
    ],
    [
      'workload UNSET inherits from the namespace ("Inherit from parent, if has one")',
      [
        pa('ns', 'foo', 'mtls: { mode: STRICT }'),
        pa('wl', 'foo', 'selector: { matchLabels: { app: finance } }\nmtls: { mode: UNSET }'),
      ].join('---\n'),
      FINANCE,
      'STRICT',
    ],
    [
      'namespace UNSET inherits from the mesh',
      [pa('default', ROOT, 'mtls: { mode: DISABLE }'), pa('ns', 'foo', 'mtls: {}')].join('---\n'),
      FINANCE,
      'DISABLE',
    ],
    [
      'a selector in the root namespace is not a workload policy: ignored',
      pa('rootsel', ROOT, 'selector: { matchLabels: { app: finance } }\nmtls: { mode: STRICT }'),
      FINANCE,
      'PERMISSIVE',
    ],
  ] as const)('%s', (_, yaml, workload, want) => {
    expect(modeOf(yaml, workload).mode).toBe(want);
  });

  // "Policy to allow mTLS strict for all workloads, but leave port 8080 to plaintext" and
  // "Policy to inherit mTLS mode from namespace (or mesh) settings, and overwrite settings for
  // port 8080". portLevelMtls is keyed by the workload port.
  it.each([
    [
      'STRICT with port 8080 DISABLE',
      pa(
        'default',
        'foo',
        'selector: { matchLabels: { app: finance } }\nmtls: { mode: STRICT }\nportLevelMtls: { "8080": { mode: DISABLE } }',
      ),
      { 8080: 'DISABLE', 9090: 'STRICT' },
    ],
    [
      'UNSET workload mode inherits the namespace; port 8080 overridden',
      [
        pa('ns', 'foo', 'mtls: { mode: PERMISSIVE }'),
        pa(
          'wl',
          'foo',
          'selector: { matchLabels: { app: finance } }\nmtls: { mode: UNSET }\nportLevelMtls: { "8080": { mode: DISABLE } }',
        ),
      ].join('---\n'),
      { 8080: 'DISABLE', 9090: 'PERMISSIVE' },
    ],
    [
      'an UNSET port inherits the workload mode',
      pa(
        'wl',
        'foo',
        'selector: { matchLabels: { app: finance } }\nmtls: { mode: STRICT }\nportLevelMtls: { "8080": { mode: UNSET } }',
      ),
      { 8080: 'STRICT', 9090: 'STRICT' },
    ],
  ] as const)('%s', (_, yaml, want) => {
    for (const [port, mode] of Object.entries(want))
      expect(modeOf(yaml, FINANCE, Number(port)).mode, `port ${port}`).toBe(mode);
  });

  // ComposePeerAuthentication: "When there are more than one policy in the same scope (i.e
  // workload-level), the oldest one win."
  it('the oldest policy of a scope wins, whatever its name', () => {
    const yaml = [
      pa('a-newer', 'foo', 'mtls: { mode: DISABLE }', '2024-02-01T00:00:00Z'),
      pa('z-older', 'foo', 'mtls: { mode: STRICT }', '2024-01-01T00:00:00Z'),
      pa(
        'wl-newer',
        'foo',
        'selector: { matchLabels: { app: finance } }\nmtls: { mode: PERMISSIVE }',
        '2024-03-02T00:00:00Z',
      ),
      pa(
        'wl-older',
        'foo',
        'selector: { matchLabels: { app: finance } }\nmtls: { mode: DISABLE }',
        '2024-03-01T00:00:00Z',
      ),
    ].join('---\n');
    expect(modeOf(yaml, OTHER).mode).toBe('STRICT');
    const finance = modeOf(yaml, FINANCE);
    expect(finance.mode).toBe('DISABLE');
    expect(finance.from).toBe('workload policy foo/wl-older');
    expect(finance.compiled.passedOver).toEqual([
      { policy: 'foo/a-newer', reason: 'foo/z-older is older (namespace level)' },
      { policy: 'foo/wl-newer', reason: 'foo/wl-older is older (workload level)' },
    ]);
  });
});

describe('PeerAuthentication in the inbound decision', () => {
  const strict = pa('default', 'foo', 'mtls: { mode: STRICT }');

  it('STRICT refuses a plaintext caller before authorization', () => {
    const c = inbound(strict);
    const d = decide(c, plaintext());
    expect(d).toMatchObject({ allow: false, plaintextRefused: true, mtls: 'STRICT', status: 403 });
    expect(d.reason).toMatch(/^plaintext refused: PeerAuthentication STRICT on port 8080/);
    expect(decide(c, req())).toMatchObject({ allow: true, plaintextRefused: false });
  });

  it('PERMISSIVE accepts both; DISABLE does not see the caller identity', () => {
    const allowSleep = `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: only-sleep, namespace: foo }
spec:
  rules: [{ from: [{ source: { principals: ["cluster.local/ns/default/sa/sleep"] } }] }]
`;
    const permissive = inbound(pa('default', 'foo', 'mtls: { mode: PERMISSIVE }') + allowSleep);
    expect(decide(permissive, req())).toMatchObject({ allow: true, mtls: 'PERMISSIVE' });
    expect(decide(permissive, plaintext())).toMatchObject({ allow: false, mtls: 'PERMISSIVE' });
    const disabled = inbound(pa('default', 'foo', 'mtls: { mode: DISABLE }') + allowSleep);
    const d = evaluateTraced(disabled);
    expect(d).toMatchObject({ allow: false, mtls: 'DISABLE' });
    expect(by(d)).toBe('');
    expect(d.peerPrincipal).toBeUndefined();
    expect(d.trace?.notes[0]).toMatch(/mTLS is DISABLE on port 8080/);
  });
});

function evaluateTraced(c: ReturnType<typeof inbound>) {
  return evaluateInbound(c, req(), { trace: true });
}
