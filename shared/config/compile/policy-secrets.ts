import { createHash } from 'node:crypto';
import type { SecretBody } from '../schemas/kubernetes.ts';
import type { EffectivePolicyIR } from '../snapshot.ts';
import type { CompileContext } from './context.ts';
import { secretValue } from './tls-secrets.ts';

/** Hash under which API keys travel in the snapshot and sit in proxy memory: never the key itself. */
export function apiKeyDigest(key: string): string {
  return `sha256:${createHash('sha256').update(key).digest('hex')}`;
}

interface SecretRef {
  name: string;
  namespace?: string;
}

/**
 * The Secret data the data plane needs for accepted policies, keyed "namespace/name": API key
 * Secrets with every value replaced by its digest, OIDC and token introspection client
 * credentials as they are. The policy compiler has already checked that each ref resolves and is
 * allowed.
 */
export function collectPolicySecrets(
  ctx: CompileContext,
  effective: Record<string, EffectivePolicyIR>,
): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  const read = (ref: SecretRef, transform: (v: string) => string) => {
    const ns = ref.namespace ?? '';
    const key = `${ns}/${ref.name}`;
    if (out[key]) return;
    const secret = ctx.get<SecretBody>('Secret', ns, ref.name);
    if (!secret) return;
    const data: Record<string, string> = {};
    for (const k of new Set([
      ...Object.keys(secret.spec.data ?? {}),
      ...Object.keys(secret.spec.stringData ?? {}),
    ])) {
      const v = secretValue(secret, k);
      if (v !== undefined) data[k] = transform(v.trim());
    }
    out[key] = data;
  };
  for (const p of Object.values(effective)) {
    if (p.kind === 'TokenIntrospectionPolicy') {
      const ref = (p.spec as { clientSecretRef?: SecretRef }).clientSecretRef;
      if (ref) read(ref, (v) => v);
      continue;
    }
    if (p.kind !== 'SecurityPolicy') continue;
    const spec = p.spec as {
      apiKeyAuth?: { credentialRefs?: SecretRef[] };
      oidc?: { clientSecret?: SecretRef; clientIDRef?: SecretRef };
    };
    for (const ref of spec.apiKeyAuth?.credentialRefs ?? []) read(ref, apiKeyDigest);
    if (spec.oidc?.clientSecret) read(spec.oidc.clientSecret, (v) => v);
    if (spec.oidc?.clientIDRef) read(spec.oidc.clientIDRef, (v) => v);
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : 1)));
}
