// SecurityPolicy `apiKeyAuth`: keys from Secrets, held only as SHA-256 digests (the snapshot never
// carries them in clear), looked up by digest and confirmed with a constant-time comparison.

import { createHash, timingSafeEqual } from 'node:crypto';
import type { APIKeyAuthSpec } from '../../shared/config/schemas/envoy-gateway.ts';
import type { EdgeRequest } from '../request-context.ts';
import { findCredential, removeCredential, type CredentialSource } from './credentials.ts';

export type ApiKeyOutcome =
  { kind: 'ok'; clientId: string } | { kind: 'missing' } | { kind: 'invalid'; reason: string };

export class ApiKeyAuthenticator {
  private readonly byDigest = new Map<string, { clientId: string; digest: Buffer }>();
  private readonly sources: CredentialSource[];
  private readonly forwardHeader: string | undefined;
  private readonly sanitize: boolean;

  /** `secrets`: Snapshot.policySecrets, whose API key values are "sha256:<hex>" digests. */
  constructor(spec: APIKeyAuthSpec, secrets: Record<string, Record<string, string>>) {
    for (const ref of spec.credentialRefs) {
      const data = secrets[`${ref.namespace ?? ''}/${ref.name}`] ?? {};
      for (const [clientId, value] of Object.entries(data)) {
        if (!value.startsWith('sha256:')) continue;
        const digest = Buffer.from(value.slice('sha256:'.length), 'hex');
        this.byDigest.set(digest.toString('hex'), { clientId, digest });
      }
    }
    this.sources = spec.extractFrom.flatMap((e) => [
      ...(e.headers ?? []).map((name) => ({
        kind: 'header' as const,
        name: name.toLowerCase(),
        prefix: '',
      })),
      ...(e.params ?? []).map((name) => ({ kind: 'param' as const, name })),
      ...(e.cookies ?? []).map((name) => ({ kind: 'cookie' as const, name })),
    ]);
    this.forwardHeader = spec.forwardClientIDHeader?.toLowerCase();
    this.sanitize = spec.sanitize ?? false;
  }

  get size(): number {
    return this.byDigest.size;
  }

  authenticate(r: EdgeRequest): ApiKeyOutcome {
    const found = findCredential(r, this.sources);
    if (!found) return { kind: 'missing' };
    const digest = createHash('sha256').update(found.value).digest();
    const entry = this.byDigest.get(digest.toString('hex'));
    if (!entry || !timingSafeEqual(entry.digest, digest))
      return {
        kind: 'invalid',
        reason: `unknown API key in ${found.source.kind} ${found.source.name}`,
      };
    if (this.sanitize) removeCredential(r, found);
    if (this.forwardHeader) r.client.headers[this.forwardHeader] = entry.clientId;
    return { kind: 'ok', clientId: entry.clientId };
  }
}
