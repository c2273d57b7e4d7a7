// What the admin API shows of snapshots and views: never a private key or a Secret's value. TLS
// keys are left out and policy Secret values replaced, their names kept, as the gateway's
// /config_dump does.

import type { Snapshot, TLSCertificateIR } from '../../shared/config/snapshot.ts';
import type { ProxyView } from '../../shared/discovery/protocol.ts';

export const REDACTED = '[redacted]';

function withoutKeys(certs: readonly TLSCertificateIR[]): Omit<TLSCertificateIR, 'keyPem'>[] {
  return certs.map(({ keyPem: _key, ...rest }) => rest);
}

function redactSecrets(
  secrets: Record<string, Record<string, string>>,
): Record<string, Record<string, string>> {
  return Object.fromEntries(
    Object.entries(secrets).map(([name, data]) => [
      name,
      Object.fromEntries(Object.keys(data).map((k) => [k, REDACTED])),
    ]),
  );
}

export function redactSnapshot(snapshot: Snapshot): Record<string, unknown> {
  return {
    ...snapshot,
    tlsCertificates: withoutKeys(snapshot.tlsCertificates),
    policySecrets: redactSecrets(snapshot.policySecrets),
  };
}

/** A view as the admin API shows it; `version` is still the version of the real view. */
export function redactView(view: ProxyView): ProxyView {
  return {
    ...view,
    tlsCertificates: withoutKeys(view.tlsCertificates).map((c) => ({ ...c, keyPem: REDACTED })),
    policySecrets: redactSecrets(view.policySecrets),
  };
}
