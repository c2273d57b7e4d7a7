// The registry: a sidecar's endpoint appears in the other proxies' views (with its SPIFFE id, in
// every Service whose selector picks its labels: reviews v1/v2 subsets) when its stream opens, and
// goes when the stream closes or its heartbeats lapse (the lapse in paused time).

import { afterEach, describe, expect, it } from 'vitest';
import { HEARTBEAT_INTERVAL_MS } from '../../../shared/discovery/protocol.ts';
import type { ProxyView } from '../../../shared/discovery/protocol.ts';
import { ManualTimers } from '../../helpers/manual-timers.ts';
import {
  closeAll,
  connectClient,
  sidecarHello,
  startTestControlPlane,
  statusWhen,
} from '../../helpers/control-plane.ts';

afterEach(closeAll);

const service = (name: string, selector: string, port = 9080, targetPort = port) => `---
apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: bookinfo }
spec:
  selector: ${selector}
  ports: [{ name: http, port: ${port}, targetPort: ${targetPort} }]
`;

const CONFIG = {
  'services.yaml': [
    service('productpage', '{ app: productpage }'),
    service('reviews', '{ app: reviews }'),
    service('reviews-v1', '{ app: reviews, version: v1 }'),
    service('reviews-v2', '{ app: reviews, version: v2 }'),
    // The sidecars' app port is 9080: a Service that targets 9443 gets none of them.
    service('reviews-admin', '{ app: reviews }', 443, 9443),
    `---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: reviews-static
  namespace: bookinfo
  labels: { kubernetes.io/service-name: reviews }
addressType: IPv4
ports: [{ name: http, port: 9080 }]
endpoints: [{ addresses: [10.0.0.9] }]
`,
  ].join(''),
};

const REVIEWS_SPIFFE = 'spiffe://cluster.local/ns/bookinfo/sa/reviews';

function endpointsOf(view: ProxyView | undefined, key: string): string[] {
  const [svc, port] = key.split(':');
  const s = view?.services.find((x) => `${x.namespace}/${x.name}` === svc);
  return (
    s?.ports.find((p) => p.port === Number(port))?.endpoints.map((e) => `${e.address}:${e.port}`) ??
    []
  );
}

const reviews = (version: string, inboundPort: number) =>
  sidecarHello('reviews', {
    proxyId: `sidecar~bookinfo~reviews-${version}`,
    labels: { app: 'reviews', version },
    inboundPort,
  });

describe('registry', () => {
  it('a sidecar appears in another proxy view with its SPIFFE id, by label subset, and goes when its stream closes', async () => {
    const cp = await startTestControlPlane(CONFIG);
    const observer = await connectClient(cp, sidecarHello('productpage', { inboundPort: 16000 }));
    await observer.client.start();
    await observer.client.firstView;
    expect(endpointsOf(observer.client.currentView, 'bookinfo/reviews:9080')).toEqual([
      '10.0.0.9:9080',
    ]);

    const v1 = await connectClient(cp, reviews('v1', 16001));
    const v2 = await connectClient(cp, reviews('v2', 16002));
    await Promise.all([v1.client.start(), v2.client.start()]);
    const view = await observer.until(() => {
      const v = observer.client.currentView;
      return v?.meshEndpoints['bookinfo/reviews:9080']?.length === 2 ? v : undefined;
    }, 'both reviews sidecars in the observer view');

    // Static endpoints first, then the sidecars (sorted), each subset with its own.
    expect(endpointsOf(view, 'bookinfo/reviews:9080')).toEqual([
      '10.0.0.9:9080',
      '127.0.0.1:16001',
      '127.0.0.1:16002',
    ]);
    expect(endpointsOf(view, 'bookinfo/reviews-v1:9080')).toEqual(['127.0.0.1:16001']);
    expect(endpointsOf(view, 'bookinfo/reviews-v2:9080')).toEqual(['127.0.0.1:16002']);
    expect(endpointsOf(view, 'bookinfo/reviews-admin:443')).toEqual([]);
    expect(view.meshEndpoints['bookinfo/reviews-v2:9080']).toEqual([
      { address: '127.0.0.1', port: 16002, spiffeId: REVIEWS_SPIFFE },
    ]);
    // The static endpoint is plain HTTP: not a mesh endpoint.
    expect(view.meshEndpoints['bookinfo/reviews:9080']?.map((e) => e.port)).toEqual([16001, 16002]);
    expect(view.meshEndpoints['bookinfo/productpage:9080']).toEqual([
      {
        address: '127.0.0.1',
        port: 16000,
        spiffeId: 'spiffe://cluster.local/ns/bookinfo/sa/productpage',
      },
    ]);

    await v2.client.stop();
    const after = await observer.until(() => {
      const v = observer.client.currentView;
      return v?.meshEndpoints['bookinfo/reviews-v2:9080'] === undefined ? v : undefined;
    }, 'v2 gone from the observer view');
    expect(endpointsOf(after, 'bookinfo/reviews:9080')).toEqual([
      '10.0.0.9:9080',
      '127.0.0.1:16001',
    ]);
    expect(endpointsOf(after, 'bookinfo/reviews-v2:9080')).toEqual([]);
    await statusWhen(cp, (p) => p.length === 2, 'v2 gone from /status');
  });

  it('drops a registration whose heartbeats lapse (paused time)', async () => {
    const start = Date.now();
    const server = new ManualTimers(start);
    const cp = await startTestControlPlane(CONFIG, { timers: server });
    // The observer heartbeats when the test moves its clock; the lapsing sidecar's clock never moves.
    const observerTime = new ManualTimers(start);
    const observer = await connectClient(cp, sidecarHello('productpage', { inboundPort: 16000 }), {
      timers: observerTime,
    });
    await observer.client.start();
    await observer.client.firstView;
    const silent = await connectClient(cp, reviews('v1', 16001), {
      timers: new ManualTimers(start),
    });
    await silent.client.start();
    await silent.client.firstView;

    // The push after a registration waits for the debounce, on the control plane's clock.
    const seen = observer.views.length;
    server.advance(100);
    await observer.until(
      () =>
        observer.views.length > seen &&
        observer.client.currentView?.meshEndpoints['bookinfo/reviews-v1:9080'],
      'the sidecar in the observer view',
    );

    // 4 × 10 s: the observer heartbeats each time; the silent sidecar lapses at 35 s.
    for (let i = 0; i < 4; i++) {
      const beat = new Promise((resolve) =>
        observer.client.once('heartbeat', () => resolve(undefined)),
      );
      observerTime.advance(HEARTBEAT_INTERVAL_MS);
      await beat;
      server.advance(HEARTBEAT_INTERVAL_MS);
    }
    const view = await observer.until(() => {
      const v = observer.client.currentView;
      return v && v.meshEndpoints['bookinfo/reviews-v1:9080'] === undefined ? v : undefined;
    }, 'the lapsed sidecar gone from the observer view');
    expect(endpointsOf(view, 'bookinfo/reviews:9080')).toEqual(['10.0.0.9:9080']);
    const proxies = await statusWhen(cp, (p) => p.length === 1, 'the lapsed proxy gone');
    expect(proxies[0]?.proxyId).toBe('sidecar~bookinfo~productpage');
    // The silent sidecar's stream was cut; it keeps its last good view.
    await silent.until(() => !silent.client.connected, 'the silent sidecar disconnected');
    expect(silent.client.currentView?.version).toBe(silent.views[0]?.version);
  });
});
