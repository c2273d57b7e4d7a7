import type { JWTVerifyGetKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JwksCache } from '../../gateway/auth/jwks-cache.ts';
import {
  authorizeInbound,
  compileInboundPolicy,
  type CompiledInbound,
  type InboundDecision,
} from '../../shared/authz/evaluate.ts';
import type { JwksProvider } from '../../shared/authz/request-authentication.ts';
import { compileTexts, readConformance, WORKLOADS } from '../helpers/istio-cast.ts';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.ts';
import {
  checkTable,
  CONFORMANCE_TABLE,
  renderPolicyText,
  rowName,
  rowRequest,
  signAllTokens,
  type ConformanceRow,
  type SignedTokens,
} from './istio-conformance-table.ts';

// Istio's own security integration tests (authz_test.go, jwt_test.go, the reachability tests)
// replayed against the rendered policies with the evaluator the sidecar runs, root namespace
// istio-system. `{JWKS_URI}` is rendered as a JWKS server on loopback; the tokens carry the
// payloads of Istio's sample tokens, signed with a test key.

/** Projection compared per row. */
export function outcome(d: InboundDecision) {
  return {
    allow: d.allow,
    status: d.status,
    by: d.decidedBy ? `${d.decidedBy.policy} rule ${d.decidedBy.rule}` : undefined,
    mtls: d.mtls,
    plaintextRefused: d.plaintextRefused,
  };
}

export function expected(row: ConformanceRow, mtls: string) {
  const e = row.expect;
  return {
    allow: e.allow,
    status: e.status ?? (e.allow ? 200 : 403),
    by: e.by,
    mtls: e.mtls ?? mtls,
    plaintextRefused: e.plaintextRefused ?? false,
  };
}

describe('Istio conformance table through the inbound evaluator', () => {
  let server: JwksServer;
  let tokens: SignedTokens;
  let jwks: JwksProvider;
  const compiled = new Map<string, CompiledInbound>();

  beforeAll(async () => {
    server = await startJwksServer();
    tokens = await signAllTokens(server);
    const cache = new JwksCache({ now: Date.now, cooldownMs: 0, fetchTimeoutMs: 2000 });
    // Only the loopback JWKS is reachable; any other jwksUri (invalid-jwks names one on
    // raw.githubusercontent.com) fails as an unreachable JWKS does, without touching the network.
    const unreachable: JWTVerifyGetKey = async () => {
      throw new Error('JWKS is not available');
    };
    jwks = {
      resolver: (uri, maxAgeMs) =>
        uri === server.uri ? cache.resolver(uri, maxAgeMs) : unreachable,
    };
  });
  afterAll(async () => {
    await server.close();
  });

  async function compiledFor(row: ConformanceRow): Promise<CompiledInbound> {
    const key = `${row.files.join('+')} ${row.to} ${JSON.stringify(row.normalization ?? {})}`;
    let c = compiled.get(key);
    if (!c) {
      const texts = await Promise.all(
        row.files.map(async (file) => ({
          file,
          text: renderPolicyText(await readConformance(file), server.uri),
        })),
      );
      c = compileInboundPolicy(
        compileTexts(texts),
        WORKLOADS[row.to] as (typeof WORKLOADS)[string],
        {
          jwks,
          ...(row.normalization ? { pathNormalization: row.normalization } : {}),
        },
      );
      compiled.set(key, c);
    }
    return c;
  }

  it('covers at least 60 requests, every one against a known member of the cast', () => {
    expect(checkTable(CONFORMANCE_TABLE)).toEqual([]);
    expect(CONFORMANCE_TABLE.length).toBeGreaterThanOrEqual(60);
    const names = CONFORMANCE_TABLE.map(rowName);
    expect(new Set(names).size).toBe(names.length);
  });

  it.each(CONFORMANCE_TABLE.map((row) => [rowName(row), row] as const))('%s', async (_, row) => {
    const c = await compiledFor(row);
    const request = rowRequest(row, tokens);
    const decision = await authorizeInbound(c, request);
    const mtlsDefault = decision.mtls;
    expect(outcome(decision)).toEqual(expected(row, mtlsDefault));
    // The explain path (trace on) decides exactly as the hot path does.
    const traced = await authorizeInbound(c, request, { trace: true });
    expect(outcome(traced)).toEqual(outcome(decision));
    if (traced.decidedBy)
      expect(traced.policies.find((p) => p.decided)?.policy).toBe(traced.decidedBy.policy);
    if (row.expect.payloadHeader) {
      const token = request.headers?.authorization?.toString().slice('Bearer '.length) ?? '';
      expect(decision.headers?.set[row.expect.payloadHeader]).toBe(token.split('.')[1]);
    }
    if (row.expect.tokenForwarded !== undefined)
      expect(decision.headers?.remove.includes('authorization') ?? false).toBe(
        !row.expect.tokenForwarded,
      );
  });
});
