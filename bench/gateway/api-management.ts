// What the API-management rows add to the one-route config, generated at bench time: a
// SecurityPolicy with one JWT provider (a key pair made now, its JWKS inline), a
// BackendTrafficPolicy whose rate limit is high enough never to trigger (local, or global in
// Redis), a small set of hot tokens signed with that key, and the wrk Lua script that sends them
// in turn (one Authorization header per request, the requests built once per thread).

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { NAMESPACE } from './meshgate-config.ts';

export type JwtAlg = 'ES256' | 'RS256';
export type LimitKind = 'local' | 'global';

const ISSUER = 'https://bench.meshgate.test';
const AUDIENCE = 'bench-api';
/** Hot tokens: few enough that each is verified once and then found in the verified-token cache. */
export const HOT_TOKENS = 16;
/** Never reached: a billion requests per second. */
const NEVER_REACHED = 1_000_000_000;

/**
 * Writes security.yaml and quota.yaml next to the one-route config in `dir` (route `route` of
 * namespace bench), and the wrk script; returns the script's path and one token for the probe.
 */
export async function writeApiManagement(
  dir: string,
  route: string,
  alg: JwtAlg,
  limit: LimitKind,
): Promise<{ wrkScript: string; token: string }> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: 'bench-1', alg, use: 'sig' };
  const tokens = await Promise.all(
    Array.from({ length: HOT_TOKENS }, (_, i) =>
      new SignJWT({ sub: `user-${i}`, scope: 'orders:read' })
        .setProtectedHeader({ alg, kid: 'bench-1' })
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setIssuedAt()
        .setExpirationTime('6h')
        .sign(privateKey),
    ),
  );
  const target = `[{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: ${route} }]`;
  writeFileSync(
    join(dir, 'security.yaml'),
    `apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata: { name: bench-jwt, namespace: ${NAMESPACE} }
spec:
  targetRefs: ${target}
  jwt:
    providers:
      - name: bench
        issuer: ${ISSUER}
        audiences: [${AUDIENCE}]
        localJWKS: { type: Inline, inline: '${JSON.stringify({ keys: [jwk] })}' }
`,
  );
  writeFileSync(
    join(dir, 'quota.yaml'),
    `apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: { name: bench-quota, namespace: ${NAMESPACE} }
spec:
  targetRefs: ${target}
  rateLimit:
    ${limit}:
      rules:
        - limit: { requests: ${NEVER_REACHED}, unit: Second }
`,
  );
  const wrkScript = join(dir, 'rotate-tokens.lua');
  writeFileSync(
    wrkScript,
    `-- One Authorization header per request, the ${HOT_TOKENS} tokens in turn.
local tokens = { ${tokens.map((t) => `"${t}"`).join(', ')} }
local requests = {}
local i = 0
init = function(args)
  for n, token in ipairs(tokens) do
    requests[n] = wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. token })
  end
end
request = function()
  i = (i % #requests) + 1
  return requests[i]
end
`,
  );
  return { wrkScript, token: tokens[0] as string };
}
