import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compile } from '../../shared/config/compile/compile.ts';
import { allConditions, isProblem } from '../../shared/config/compile/conditions.ts';
import { formatConfigError } from '../../shared/config/errors.ts';
import { parseTexts } from '../../shared/config/parse.ts';

// Istio's own authorization and authentication integration-test policies
// (tests/integration/security/testdata, rendered) run through the compiler, file by file, with
// Istio's root namespace.

const CONFORMANCE = fileURLToPath(
  new URL('../../../shared/conformance/istio-authz/policies', import.meta.url),
);
const SECURITY_KINDS = new Set([
  'PeerAuthentication',
  'AuthorizationPolicy',
  'RequestAuthentication',
]);

/**
 * Policies meshgate refuses, by "file kind/namespace/name", with why. All of them are
 * RequestAuthentications whose jwksUri is the unrendered template `{JWKS_URI}` (Istio's harness
 * fills it in with its test JWKS server): not a URL, which Istio's own webhook (ParseJwksURI)
 * refuses too. The second test renders the placeholder and expects no refusal at all.
 */
const JWKS_TEMPLATE = 'jwksUri is the unrendered template {JWKS_URI}, not an http(s) URL';
const EXPECTED_REFUSALS: Record<string, string> = {
  'TestAuthz_JWT.yaml RequestAuthentication/ns1/default': JWKS_TEMPLATE,
  'TestIngressRequestAuthentication.yaml RequestAuthentication/istio-system/default': JWKS_TEMPLATE,
  'TestRequestAuthentication__aud.yaml RequestAuthentication/ns1/b-part1': JWKS_TEMPLATE,
  'TestRequestAuthentication__aud.yaml RequestAuthentication/ns1/b-part2': JWKS_TEMPLATE,
  'TestRequestAuthentication__authn-authz.yaml RequestAuthentication/ns1/b': JWKS_TEMPLATE,
  'TestRequestAuthentication__authn-only.yaml RequestAuthentication/ns1/b': JWKS_TEMPLATE,
  'TestRequestAuthentication__forward.yaml RequestAuthentication/ns1/b': JWKS_TEMPLATE,
  'TestRequestAuthentication__headers-params.yaml RequestAuthentication/ns1/b': JWKS_TEMPLATE,
  'TestRequestAuthentication__remote.yaml RequestAuthentication/ns1/b': JWKS_TEMPLATE,
  'TestRequestAuthentication__timeout.yaml RequestAuthentication/ns1/b': JWKS_TEMPLATE,
};

async function compileEach(render: (text: string) => string) {
  const files = (await readdir(CONFORMANCE)).filter((f) => f.endsWith('.yaml')).sort();
  expect(files.length).toBeGreaterThan(30);
  const problems: Record<string, string> = {};
  let compiled = 0;
  let inSnapshot = 0;
  let documents = 0;
  for (const file of files) {
    const text = render(await readFile(`${CONFORMANCE}/${file}`, 'utf8'));
    documents += (text.match(/^apiVersion: security\.istio\.io\//gm) ?? []).length;
    const parsed = parseTexts([{ file, text }]);
    expect(parsed.errors.map(formatConfigError), file).toEqual([]);
    const { snapshot, statuses } = compile(parsed.resources, { rootNamespace: 'istio-system' });
    for (const s of statuses) {
      if (!SECURITY_KINDS.has(s.kind)) continue;
      compiled++;
      const bad = allConditions(s.status).filter(isProblem);
      if (bad.length > 0)
        problems[`${file} ${s.kind}/${s.metadata.namespace}/${s.metadata.name}`] = bad
          .map((c) => `${c.type} ${c.reason}: ${c.message}`)
          .join('; ');
    }
    const m = snapshot.meshSecurity;
    inSnapshot +=
      m.peerAuthentications.length +
      m.authorizationPolicies.length +
      m.requestAuthentications.length;
  }
  // Every security document got a status of its own.
  expect(compiled).toBe(documents);
  return { problems, compiled, inSnapshot };
}

describe('Istio conformance policies through compile', () => {
  it('compile with no problem but the refusals listed, each for its reason', async () => {
    const { problems, compiled, inSnapshot } = await compileEach((t) => t);
    expect(Object.keys(problems).sort()).toEqual(Object.keys(EXPECTED_REFUSALS).sort());
    for (const [key, message] of Object.entries(problems)) {
      expect(message, key).toMatch(
        /^Accepted Invalid: .*jwksUri: "\{JWKS_URI\}[^"]*" is not an http\(s\) URL/,
      );
    }
    expect(inSnapshot).toBe(compiled - Object.keys(EXPECTED_REFUSALS).length);
  });

  it('compile with no problem at all once {JWKS_URI} is rendered as Istio does', async () => {
    const { problems, compiled, inSnapshot } = await compileEach((t) =>
      t.replaceAll('{JWKS_URI}', 'https://jwks.istio-system.svc.cluster.local:8000/jwks'),
    );
    expect(problems).toEqual({});
    expect(inSnapshot).toBe(compiled);
  });
});
