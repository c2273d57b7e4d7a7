// The restart warm-up (shared/discovery/protocol.ts): a restarted control plane has an empty
// registry, so for a while a reconnecting proxy's view keeps the sidecars it reported knowing
// (hello.knownMeshEndpoints) until they register again; whoever has not come back when the
// warm-up ends is dropped. The restarted control plane runs on a manual clock, so the warm-up's
// end is exact; the sidecar that comes back late reconnects on its own manual clock.

import { afterEach, describe, expect, it } from 'vitest';
import type { ProxyView } from '../../../shared/discovery/protocol.ts';
import {
  closeAll,
  connectClient,
  sidecarHello,
  startTestControlPlane,
  statusWhen,
  type RecordingClient,
  type TestControlPlane,
} from '../../helpers/control-plane.ts';
import { ManualTimers } from '../../helpers/manual-timers.ts';

afterEach(closeAll);

const service = (name: string) => `---
apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: bookinfo }
spec:
  selector: { app: ${name} }
  ports: [{ name: http, port: 9080 }]
`;
const CONFIG = { 'services.yaml': ['productpage', 'reviews', 'details'].map(service).join('') };
const REVIEWS = 'bookinfo/reviews:9080';
const WARM_UP_MS = 5_000;

const reviewsOf = (view: ProxyView | undefined) =>
  view?.meshEndpoints[REVIEWS]?.map((e) => `${e.address}:${e.port}`) ?? [];

/** A control plane, productpage (real time) and reviews (its own clock) connected to it. */
async function meshOfTwo() {
  const cp = await startTestControlPlane(CONFIG);
  const reviewsClock = new ManualTimers(Date.now());
  const reviews = await connectClient(cp, sidecarHello('reviews', { inboundPort: 16001 }), {
    timers: reviewsClock,
    random: () => 0,
  });
  await reviews.client.start();
  await reviews.client.firstView;
  const productpage = await connectClient(cp, sidecarHello('productpage', { inboundPort: 16000 }));
  await productpage.client.start();
  const before = await productpage.until(
    () => (reviewsOf(productpage.client.currentView).length > 0 ? productpage.version : undefined),
    'reviews in the productpage view',
  );
  return { cp, reviews, reviewsClock, productpage, before };
}

/** Stops `cp` and starts another on its folders and ports, on a manual clock. */
async function restartOnClock(
  cp: TestControlPlane,
  reconnecting: RecordingClient,
  whileDown: () => Promise<void> = async () => undefined,
): Promise<{ next: TestControlPlane; clock: ManualTimers }> {
  await cp.stop();
  await reconnecting.until(() => !reconnecting.client.connected, 'the goaway');
  await whileDown();
  const clock = new ManualTimers(Date.now());
  const next = await startTestControlPlane(CONFIG, {
    folder: cp.folder,
    dataDir: cp.dataDir,
    discoveryPort: cp.discoveryPort,
    adminPort: cp.adminPort,
    timers: clock,
    restartWarmUpMs: WARM_UP_MS,
  });
  return { next, clock };
}

describe('restart warm-up', () => {
  // Regression: after a restart, the first view sent to a proxy that reconnected before its peers
  // omitted them, and its calls failed with 503 UH until they had reconnected too.
  it('keeps the sidecars a reconnecting proxy knew until they register again: its view is not even resent', async () => {
    const { cp, reviewsClock, productpage, before } = await meshOfTwo();
    const applied = productpage.views.length;
    const { next, clock } = await restartOnClock(cp, productpage);
    await statusWhen(next, (p) => p.length === 1 && p[0]?.state === 'SYNCED', 'productpage back');
    // Same version: the view with reviews kept is the one productpage already serves.
    expect(productpage.client.currentView?.version).toBe(before);
    expect(productpage.views).toHaveLength(applied);

    // reviews comes back; the push round leaves productpage alone, as does the warm-up's end.
    reviewsClock.advance(60_000);
    await statusWhen(next, (p) => p.length === 2, 'reviews back');
    clock.advance(100);
    clock.advance(WARM_UP_MS);
    clock.advance(100);
    await statusWhen(next, (p) => p.every((r) => r.state === 'SYNCED'), 'both synced');
    expect(productpage.views).toHaveLength(applied);
    expect(productpage.version).toBe(before);
    expect(reviewsOf(productpage.client.currentView)).toEqual(['127.0.0.1:16001']);
  });

  it('drops a known sidecar that has not come back when the warm-up ends; a new proxy never sees it', async () => {
    const { cp, reviews, productpage, before } = await meshOfTwo();
    // reviews goes away for good while the control plane is down.
    const { next, clock } = await restartOnClock(cp, productpage, () => reviews.client.stop());
    await statusWhen(next, (p) => p.length === 1 && p[0]?.state === 'SYNCED', 'productpage back');
    expect(productpage.version).toBe(before);

    // What productpage reported shapes its own view only.
    const details = await connectClient(next, sidecarHello('details', { inboundPort: 16002 }));
    await details.client.start();
    expect(reviewsOf(await details.client.firstView)).toEqual([]);

    clock.advance(WARM_UP_MS - 1);
    clock.advance(1_000);
    const after = await productpage.until(
      () => (reviewsOf(productpage.client.currentView).length === 0 ? productpage.version : false),
      'reviews dropped at the end of the warm-up',
    );
    expect(after).not.toBe(before);
  });
});
