// Pushes: a config change reaches only the proxies whose own view changed; a NACK shows as NACKED
// in /status and `meshgate status`; a config that does not parse is never pushed.

import { afterEach, describe, expect, it } from 'vitest';
import type { ProxyView } from '../../../shared/discovery/protocol.ts';
import { meshgate } from '../../helpers/cli.ts';
import {
  admin,
  closeAll,
  connectClient,
  sidecarHello,
  startTestControlPlane,
  statusWhen,
  type RecordingClient,
  type TestControlPlane,
} from '../../helpers/control-plane.ts';

afterEach(closeAll);

const SERVICES = `apiVersion: v1
kind: Service
metadata: { name: productpage, namespace: bookinfo }
spec:
  selector: { app: productpage }
  ports: [{ name: http, port: 9080 }]
---
apiVersion: v1
kind: Service
metadata: { name: reviews, namespace: bookinfo }
spec:
  selector: { app: reviews }
  ports: [{ name: http, port: 9080 }]
`;

const RATINGS = `---
apiVersion: v1
kind: Service
metadata: { name: ratings, namespace: bookinfo }
spec:
  selector: { app: ratings }
  ports: [{ name: http, port: 9080 }]
`;

const allowOnly = (app: string) => `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: ${app}-callers, namespace: bookinfo }
spec:
  selector: { matchLabels: { app: ${app} } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: [cluster.local/ns/bookinfo/sa/productpage] } }]
`;

const hasService = (v: ProxyView | undefined, name: string) =>
  v?.services.some((s) => s.name === name) ?? false;

async function twoSidecars(): Promise<{
  cp: TestControlPlane;
  productpage: RecordingClient;
  reviews: RecordingClient;
}> {
  const cp = await startTestControlPlane({ 'services.yaml': SERVICES });
  const productpage = await connectClient(cp, sidecarHello('productpage', { inboundPort: 16000 }));
  const reviews = await connectClient(cp, sidecarHello('reviews', { inboundPort: 16001 }));
  await Promise.all([productpage.client.start(), reviews.client.start()]);
  // Each one's registration changes the other's view: wait until both are settled and acked.
  await statusWhen(
    cp,
    (p) =>
      p.length === 2 &&
      p.every((x) => x.state === 'SYNCED') &&
      productpage.client.currentView?.meshEndpoints['bookinfo/reviews:9080'] !== undefined &&
      reviews.client.currentView?.meshEndpoints['bookinfo/productpage:9080'] !== undefined,
    'both sidecars registered and synced',
  );
  return { cp, productpage, reviews };
}

describe('push', () => {
  it('pushes a config change only to the proxies whose view it changes', async () => {
    const { cp, productpage, reviews } = await twoSidecars();
    const before = await statusWhen(cp, () => true, 'status');
    const pViews = productpage.views.length;
    const rViews = reviews.views.length;

    // Selects the reviews workload only: its inbound policies change, productpage's view does not.
    await cp.folder.write('authz.yaml', allowOnly('reviews'));
    const changed = await reviews.until(
      () =>
        reviews.views.length > rViews &&
        reviews.client.currentView?.inbound?.authorizationPolicies.length === 1 &&
        reviews.client.currentView,
      'the policy in the reviews view',
    );
    expect(changed.inbound?.authorizationPolicies[0]).toMatchObject({ name: 'reviews-callers' });
    const after = await statusWhen(cp, (p) => p.every((x) => x.state === 'SYNCED'), 'synced');
    const latest = (rows: typeof after, id: string) =>
      rows.find((r) => r.proxyId === id)?.latestVersion;
    expect(latest(after, 'sidecar~bookinfo~productpage')).toBe(
      latest(before, 'sidecar~bookinfo~productpage'),
    );
    expect(latest(after, 'sidecar~bookinfo~reviews')).not.toBe(
      latest(before, 'sidecar~bookinfo~reviews'),
    );

    // A change both views see: on productpage's stream it must be the very next view.
    await cp.folder.write('ratings.yaml', RATINGS);
    await productpage.until(() => hasService(productpage.client.currentView, 'ratings'), 'ratings');
    await reviews.until(() => hasService(reviews.client.currentView, 'ratings'), 'ratings');
    expect(productpage.views.length).toBe(pViews + 1);
    expect(reviews.views.length).toBe(rViews + 2);
  });

  it('shows a NACK as NACKED with the reason in /status and `meshgate status`', async () => {
    const { cp, productpage } = await twoSidecars();
    const good = productpage.version;
    productpage.refuse = (v) =>
      v.inbound?.authorizationPolicies.length
        ? 'authorization engine: rule 0 is not supported'
        : undefined;
    await cp.folder.write('authz.yaml', allowOnly('productpage'));
    await productpage.until(() => productpage.nacks.length === 1, 'the NACK');
    const rows = await statusWhen(
      cp,
      (p) => p.some((x) => x.state === 'NACKED'),
      'NACKED in /status',
    );
    const row = rows.find((r) => r.proxyId === 'sidecar~bookinfo~productpage');
    expect(row).toMatchObject({
      state: 'NACKED',
      ackedVersion: good,
      latestVersion: productpage.nacks[0]?.version,
      nackError: 'authorization engine: rule 0 is not supported',
    });
    // It keeps serving the previous view.
    expect(productpage.version).toBe(good);
    expect(rows.find((r) => r.proxyId === 'sidecar~bookinfo~reviews')?.state).toBe('SYNCED');

    const text = await meshgate(['status', '--control-plane', cp.adminUrl]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(
      /sidecar~bookinfo~productpage\s+sidecar\s+spiffe:\/\/cluster\.local\/ns\/bookinfo\/sa\/productpage\s+NACKED/,
    );
    expect(text.stdout).toContain('authorization engine: rule 0 is not supported');
    expect(text.stdout).toMatch(/sidecar~bookinfo~reviews\s+.*SYNCED/);

    const json = await meshgate(['status', '--control-plane', cp.adminUrl, '--json']);
    expect(json.code, json.stderr).toBe(0);
    const parsed = JSON.parse(json.stdout) as {
      version: string;
      proxies: { state: string; nackError?: string }[];
    };
    expect(parsed.proxies.map((p) => p.state)).toEqual(['NACKED', 'SYNCED']);
    expect(parsed.proxies[0]?.nackError).toBe('authorization engine: rule 0 is not supported');

    const metrics = await admin(cp, '/metrics');
    expect(metrics.text).toMatch(/meshgate_control_plane_nacks_total\{kind="sidecar"\} [1-9]/);
  });

  it('never pushes a config that does not parse; proxies keep their version', async () => {
    const { cp, productpage, reviews } = await twoSidecars();
    const versions = [productpage.version, reviews.version];
    const counts = [productpage.views.length, reviews.views.length];
    const snapshot = (await admin<{ version: string }>(cp, '/status')).body.version;

    await cp.folder.write('services.yaml', `${SERVICES}---\nkind: Service\n  metadata: [oops\n`);
    let status:
      { version: string; rejected: { errors: { location: string }[] } | null } | undefined;
    for (let i = 0; i < 200 && !status?.rejected; i++) {
      status = (await admin<NonNullable<typeof status>>(cp, '/status')).body;
      if (!status.rejected) await new Promise((resolve) => setTimeout(resolve, 25));
    }
    expect(status?.rejected?.errors[0]?.location).toMatch(/^services\.yaml/);
    expect(status?.version).toBe(snapshot);
    const rows = await statusWhen(cp, () => true, 'status');
    expect(rows.map((r) => r.state)).toEqual(['SYNCED', 'SYNCED']);
    expect([productpage.version, reviews.version]).toEqual(versions);
    expect([productpage.views.length, reviews.views.length]).toEqual(counts);
    const cli = await meshgate(['status', '--control-plane', cp.adminUrl]);
    expect(cli.stdout).toContain('last reload REJECTED');
    expect((await admin(cp, '/config_dump')).body).toMatchObject({ version: snapshot });

    // The next good config goes out, and the rejection is cleared.
    await cp.folder.write('services.yaml', `${SERVICES}${RATINGS}`);
    await productpage.until(() => hasService(productpage.client.currentView, 'ratings'), 'ratings');
    await reviews.until(() => hasService(reviews.client.currentView, 'ratings'), 'ratings');
    expect([productpage.views.length, reviews.views.length]).toEqual(counts.map((n) => n + 1));
    expect((await admin<{ rejected: unknown }>(cp, '/status')).body.rejected).toBeNull();
  });
});
