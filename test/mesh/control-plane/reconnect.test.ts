// The client while the control plane is away: it keeps its last good view, reconnects with
// exponential backoff (on its own clock, moved by the test), and after a restart gets the same
// view version without the view being sent again (hello.currentVersion). And a stream that goes
// quiet is given up after three ping intervals.

import { afterEach, describe, expect, it } from 'vitest';
import { HEARTBEAT_INTERVAL_MS, PING_INTERVAL_MS } from '../../../shared/discovery/protocol.ts';
import type { WorkloadCredentials } from '../../../shared/identity/workload-identity.ts';
import {
  admin,
  closeAll,
  connectClient,
  sidecarHello,
  startTestControlPlane,
  statusWhen,
} from '../../helpers/control-plane.ts';
import { ManualTimers } from '../../helpers/manual-timers.ts';

afterEach(closeAll);

const SERVICES = `apiVersion: v1
kind: Service
metadata: { name: reviews, namespace: bookinfo }
spec:
  selector: { app: reviews }
  ports: [{ name: http, port: 9080 }]
`;

describe('reconnect', () => {
  it('after a control plane restart, reconnects with backoff and gets the same version, not resent', async () => {
    const cp = await startTestControlPlane({ 'services.yaml': SERVICES });
    const clock = new ManualTimers(Date.now());
    const client = await connectClient(cp, sidecarHello('reviews'), {
      timers: clock,
      random: () => 0, // no jitter: the delays are exact
      reconnectBackoff: { initialMs: 100, maxMs: 400, factor: 2, jitter: 0.5 },
    });
    const disconnects: { reason: string; retryInMs: number }[] = [];
    client.client.on('disconnected', (reason, retryInMs) =>
      disconnects.push({ reason, retryInMs }),
    );
    await client.client.start();
    const view = await client.client.firstView;
    await statusWhen(cp, (p) => p[0]?.state === 'SYNCED', 'synced');

    await cp.stop();
    await client.until(() => disconnects.length === 1, 'the goaway');
    // The goaway's retryAfterMs (50 in tests), plus no jitter.
    expect(disconnects[0]).toEqual({
      reason: 'goaway: the control plane is shutting down',
      retryInMs: 50,
    });

    // While it is down: each attempt fails and the next waits twice as long, up to the cap.
    let waited = 50;
    for (const expected of [100, 200, 400, 400]) {
      const n = disconnects.length;
      clock.advance(waited);
      await client.until(() => disconnects.length > n, 'a failed attempt');
      expect(disconnects[n]?.retryInMs).toBe(expected);
      expect(disconnects[n]?.reason).toMatch(/ECONNREFUSED|connect/);
      waited = expected;
    }
    expect(client.client.currentView).toBe(view);

    const restarted = await cp.restart();
    const connected = new Promise((resolve) =>
      client.client.once('connected', () => resolve(undefined)),
    );
    clock.advance(waited);
    await connected;
    const rows = await statusWhen(restarted, (p) => p.length === 1, 'the proxy back');
    expect(rows[0]).toMatchObject({
      proxyId: 'sidecar~bookinfo~reviews',
      state: 'SYNCED',
      latestVersion: view.version,
      ackedVersion: view.version,
    });
    // Not sent again: apply() ran once.
    expect(client.views.map((v) => v.version)).toEqual([view.version]);
    expect(client.client.connected).toBe(true);
  });

  it('gives up a stream that has been quiet for three ping intervals, and opens a new one', async () => {
    const cp = await startTestControlPlane({ 'services.yaml': SERVICES });
    const clock = new ManualTimers(Date.now());
    const client = await connectClient(cp, sidecarHello('reviews'), {
      timers: clock,
      random: () => 0,
    });
    const reasons: string[] = [];
    client.client.on('disconnected', (reason) => reasons.push(reason));
    await client.client.start();
    await client.client.firstView;
    await statusWhen(cp, (p) => p[0]?.state === 'SYNCED', 'synced');
    // The control plane's pings run on real time (15 s), so none arrives while this clock jumps.
    const reconnected = new Promise((resolve) =>
      client.client.once('connected', () => resolve(undefined)),
    );
    clock.advance(3 * PING_INTERVAL_MS);
    await client.until(() => reasons.length === 1, 'the watchdog');
    expect(reasons[0]).toBe(`no message from the control plane in ${3 * PING_INTERVAL_MS} ms`);
    clock.advance(20); // the first backoff step (initialMs 20 in tests)
    await reconnected;
    const rows = await statusWhen(
      cp,
      (p) => p.length === 1 && p[0]?.state === 'SYNCED',
      'synced again',
    );
    expect(rows[0]?.ackedVersion).toBe(client.version);
    expect(client.views).toHaveLength(1);
  });

  it('renews its certificate at half-life with the current one, and the control plane reports the new expiry', async () => {
    const cp = await startTestControlPlane(
      { 'services.yaml': SERVICES },
      { workloadCertTtlMs: 20 * 60_000 },
    );
    const clock = new ManualTimers(Date.now());
    const client = await connectClient(cp, sidecarHello('reviews'), {
      timers: clock,
      random: () => 0,
    });
    const first = await client.client.start();
    await client.client.firstView;
    await statusWhen(
      cp,
      (p) => p[0]?.certificateExpiry === first.notAfter.toISOString(),
      'first expiry',
    );

    const rotated = new Promise<[WorkloadCredentials, WorkloadCredentials]>((resolve) =>
      client.client.once('rotated', (current, previous) => resolve([current, previous])),
    );
    // Past half-life: the stream's watchdog also fires on the way (no pings on this clock), so
    // the client reconnects as well; the renewal is what this test is about.
    clock.advanceTo(first.renewAt.getTime());
    const [current, previous] = await rotated;
    expect(previous).toBe(first);
    expect(current.spiffeId).toBe(first.spiffeId);
    expect(current.serialNumber).not.toBe(first.serialNumber);
    expect(client.client.credentials).toBe(current);
    await client.until(() => !client.client.connected, 'the watchdog');
    const reconnected = new Promise((resolve) =>
      client.client.once('connected', () => resolve(undefined)),
    );
    clock.advance(1000);
    await reconnected;
    // The next call is made with the new certificate: the control plane sees its expiry.
    const beat = new Promise((resolve) =>
      client.client.once('heartbeat', () => resolve(undefined)),
    );
    clock.advance(HEARTBEAT_INTERVAL_MS);
    await beat;
    await statusWhen(
      cp,
      (p) => p[0]?.certificateExpiry === current.notAfter.toISOString(),
      'new expiry',
    );
    const metrics = await admin(cp, '/metrics');
    expect(metrics.text).toMatch(
      /meshgate_control_plane_certificates_issued_total\{auth="certificate"\} [1-9]/,
    );
  });
});
