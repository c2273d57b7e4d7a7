// Passive health checking: Envoy's outlier detection (arch_overview outlier; source
// outlier_detection_impl.cc) for one backend, as Envoy Gateway's `healthCheck.passive` sets it.
//
// - Every response counts: a 5xx adds to the endpoint's consecutive-5xx count, a 502/503/504 also
//   to its consecutive-gateway-failure count; anything else resets both. When a count reaches its
//   threshold (exactly, as Envoy's `++count == threshold`), the endpoint is ejected and the count
//   restarts. 0 disables a threshold.
// - Failures that never reached the upstream (connect failure, reset, timeout) are "locally
//   originated". Without splitExternalLocalOriginErrors they count as the 503 (connect failure,
//   reset) or 504 (timeout) Envoy maps them to; with it they only feed the consecutive
//   local-origin count, and any response resets that count.
// - An ejection lasts baseEjectionTime × the endpoint's ejection multiplier (+1 per ejection,
//   −1 per interval spent healthy), capped at max(300 s, baseEjectionTime); it ends at the first
//   interval sweep after that time, and un-ejection resets the endpoint's counts.
// - At most maxEjectionPercent of the endpoints are ejected at once (checked as
//   100 × (ejected + 1) / endpoints ≤ max); alwaysEjectOneEndpoint allows one ejection regardless.
//   Envoy Gateway's default of 10% therefore ejects nothing in a backend of fewer than 10 endpoints.
// - failurePercentageThreshold: at each sweep, endpoints with at least 50 requests in the last
//   interval are ejected when their failure share is at or above it, provided at least 5 endpoints
//   had that volume (Envoy's defaults).
// - A passing active health check un-ejects (Envoy's successful_active_health_check_uneject_host).
//
// Deviation: Envoy enforces consecutive-gateway-failure and failure-percentage ejections with
// probability 0 unless `enforcing_*` is set, which Envoy Gateway does not set; meshgate enforces
// both whenever the policy sets their threshold, since that is what the field asks for.
//
// The interval sweep is not a timer: ticks at start + k × interval are processed when the
// detector is next used (`advance`), so an idle detector costs nothing and tests need no timers.

import type { Endpoint } from './endpoint-set.ts';
import type { EndpointHealth } from './endpoint-health.ts';

export interface OutlierDetectionConfig {
  intervalMs: number;
  baseEjectionMs: number;
  /** Envoy's max_ejection_time: max(300 s, baseEjectionMs) unless set. */
  maxEjectionMs: number;
  maxEjectionPercent: number;
  alwaysEjectOne: boolean;
  /** 0 disables. */
  consecutive5xx: number;
  /** 0 disables (the Envoy Gateway default: unset). */
  consecutiveGatewayFailure: number;
  splitExternalLocalOriginErrors: boolean;
  consecutiveLocalOriginFailure: number;
  failurePercentage?: { threshold: number; minimumHosts: number; requestVolume: number };
}

export type LocalOriginFailure = 'connect-failure' | 'reset' | 'timeout';

export interface OutlierSnapshot {
  ejectionsActive: number;
  ejectionsEnforcedTotal: number;
  /** Ejections not made because maxEjectionPercent was reached. */
  ejectionsOverflow: number;
  ejected: {
    endpoint: string;
    /** How long ago it was ejected, and how long until the next sweep may return it. */
    sinceMs: number;
    remainingMs: number;
    /** Times this endpoint was ejected. */
    ejections: number;
  }[];
}

export class OutlierDetector {
  private readonly size: number;
  private readonly c5xx: Uint32Array;
  private readonly cGateway: Uint32Array;
  private readonly cLocal: Uint32Array;
  private readonly ejectedAt: Float64Array;
  private readonly multiplier: Uint32Array;
  private readonly lastUneject: Float64Array;
  private readonly ejections: Uint32Array;
  private readonly total: Uint32Array;
  private readonly succeeded: Uint32Array;
  /** The next interval sweep; NaN until the detector first sees the time. */
  private nextTick = Number.NaN;
  private lastNow = 0;
  private ejectionsActive = 0;
  private ejectionsEnforced = 0;
  private ejectionsOverflow = 0;

  constructor(
    readonly config: OutlierDetectionConfig,
    private readonly endpoints: readonly Endpoint[],
    private readonly health: EndpointHealth,
  ) {
    const n = (this.size = endpoints.length);
    this.c5xx = new Uint32Array(n);
    this.cGateway = new Uint32Array(n);
    this.cLocal = new Uint32Array(n);
    this.ejectedAt = new Float64Array(n);
    this.multiplier = new Uint32Array(n);
    this.lastUneject = new Float64Array(n).fill(Number.NaN);
    this.ejections = new Uint32Array(n);
    this.total = new Uint32Array(n);
    this.succeeded = new Uint32Array(n);
  }

  /** Takes over what a previous detector learned about endpoints that are still here (reload). */
  carryFrom(previous: OutlierDetector): void {
    const byOrigin = new Map(previous.endpoints.map((e, i) => [e.origin, i]));
    this.nextTick = previous.nextTick;
    this.lastNow = previous.lastNow;
    for (let i = 0; i < this.size; i++) {
      const j = byOrigin.get((this.endpoints[i] as Endpoint).origin);
      if (j === undefined) continue;
      this.c5xx[i] = previous.c5xx[j] as number;
      this.cGateway[i] = previous.cGateway[j] as number;
      this.cLocal[i] = previous.cLocal[j] as number;
      this.ejectedAt[i] = previous.ejectedAt[j] as number;
      this.multiplier[i] = previous.multiplier[j] as number;
      this.lastUneject[i] = previous.lastUneject[j] as number;
      this.ejections[i] = previous.ejections[j] as number;
      if (previous.health.isEjected(j)) {
        this.health.setEjected(i, true);
        this.ejectionsActive++;
      }
    }
    this.ejectionsEnforced = previous.ejectionsEnforced;
    this.ejectionsOverflow = previous.ejectionsOverflow;
  }

  /** Runs the interval sweeps that are due. Cheap when none is. */
  advance(now: number): void {
    this.lastNow = now;
    if (now < this.nextTick) return;
    const interval = this.config.intervalMs;
    // The sweeps run on a grid that starts when the detector is first used (Envoy arms its
    // interval timer when the cluster is created).
    if (Number.isNaN(this.nextTick)) {
      this.nextTick = now + interval;
      return;
    }
    for (let steps = 0; now >= this.nextTick; steps++) {
      if (steps === 1000) {
        this.catchUp(now);
        return;
      }
      this.sweep(this.nextTick);
      this.nextTick += interval;
    }
  }

  /** An answer from the upstream (its status line). */
  onResponse(i: number, status: number, now: number): void {
    if (i < 0 || i >= this.size) return;
    this.advance(now);
    if (this.config.splitExternalLocalOriginErrors) this.cLocal[i] = 0;
    this.putHttpStatus(i, status, now);
  }

  /** A failure that never got an answer from the upstream. */
  onLocalOriginFailure(i: number, kind: LocalOriginFailure, now: number): void {
    if (i < 0 || i >= this.size) return;
    this.advance(now);
    if (!this.config.splitExternalLocalOriginErrors) {
      this.putHttpStatus(i, kind === 'timeout' ? 504 : 503, now);
      return;
    }
    this.cLocal[i] = (this.cLocal[i] as number) + 1;
    if (this.cLocal[i] === this.config.consecutiveLocalOriginFailure && !this.health.isEjected(i)) {
      this.eject(i, now);
      this.cLocal[i] = 0;
    }
  }

  /** An active health check passed: an ejected endpoint comes back at once. */
  onActiveHealthCheckPassed(i: number, now = this.lastNow): void {
    if (i < 0 || i >= this.size) return;
    this.advance(now);
    if (this.health.isEjected(i)) this.uneject(i, now);
  }

  isEjected(i: number): boolean {
    return this.health.isEjected(i);
  }

  snapshot(now: number): OutlierSnapshot {
    this.advance(now);
    const ejected: OutlierSnapshot['ejected'] = [];
    for (let i = 0; i < this.size; i++) {
      if (!this.health.isEjected(i)) continue;
      const since = now - (this.ejectedAt[i] as number);
      const due = this.ejectionDurationMs(i);
      // Un-ejection happens at the first sweep at or after the due time.
      let tick = Number.isNaN(this.nextTick) ? now : this.nextTick;
      while (tick - (this.ejectedAt[i] as number) < due) tick += this.config.intervalMs;
      ejected.push({
        endpoint: (this.endpoints[i] as Endpoint).origin,
        sinceMs: since,
        remainingMs: Math.max(0, tick - now),
        ejections: this.ejections[i] as number,
      });
    }
    return {
      ejectionsActive: this.ejectionsActive,
      ejectionsEnforcedTotal: this.ejectionsEnforced,
      ejectionsOverflow: this.ejectionsOverflow,
      ejected,
    };
  }

  private putHttpStatus(i: number, status: number, now: number): void {
    this.total[i] = (this.total[i] as number) + 1;
    if (status < 500 || status > 599) {
      this.succeeded[i] = (this.succeeded[i] as number) + 1;
      this.c5xx[i] = 0;
      this.cGateway[i] = 0;
      return;
    }
    if (status >= 502 && status <= 504) {
      this.cGateway[i] = (this.cGateway[i] as number) + 1;
      if (this.cGateway[i] === this.config.consecutiveGatewayFailure && !this.health.isEjected(i)) {
        this.eject(i, now);
        this.cGateway[i] = 0;
      }
    } else this.cGateway[i] = 0;
    this.c5xx[i] = (this.c5xx[i] as number) + 1;
    if (this.c5xx[i] === this.config.consecutive5xx && !this.health.isEjected(i)) {
      this.eject(i, now);
      this.c5xx[i] = 0;
    }
  }

  private ejectionDurationMs(i: number): number {
    return Math.min(
      this.config.baseEjectionMs * (this.multiplier[i] as number),
      this.config.maxEjectionMs,
    );
  }

  private eject(i: number, now: number): void {
    const c = this.config;
    let allowed = (100 * (this.ejectionsActive + 1)) / this.size <= c.maxEjectionPercent;
    if (c.alwaysEjectOne && this.ejectionsActive === 0) allowed = true;
    if (!allowed) {
      this.ejectionsOverflow++;
      return;
    }
    this.ejectionsActive++;
    this.ejectionsEnforced++;
    this.ejections[i] = (this.ejections[i] as number) + 1;
    this.ejectedAt[i] = now;
    if ((this.multiplier[i] as number) * c.baseEjectionMs < c.maxEjectionMs + c.baseEjectionMs)
      this.multiplier[i] = (this.multiplier[i] as number) + 1;
    this.health.setEjected(i, true);
  }

  private uneject(i: number, now: number): void {
    this.ejectionsActive--;
    this.health.setEjected(i, false);
    this.c5xx[i] = 0;
    this.cGateway[i] = 0;
    this.cLocal[i] = 0;
    this.lastUneject[i] = now;
  }

  private sweep(at: number): void {
    const c = this.config;
    for (let i = 0; i < this.size; i++)
      if (
        this.health.isEjected(i) &&
        this.ejectionDurationMs(i) <= at - (this.ejectedAt[i] as number)
      )
        this.uneject(i, at);
    const fp = c.failurePercentage;
    if (fp && this.size >= fp.minimumHosts) {
      let qualified = 0;
      for (let i = 0; i < this.size; i++)
        if (!this.health.isEjected(i) && (this.total[i] as number) >= fp.requestVolume) qualified++;
      if (qualified >= fp.minimumHosts)
        for (let i = 0; i < this.size; i++) {
          const total = this.total[i] as number;
          if (this.health.isEjected(i) || total < fp.requestVolume) continue;
          const failed = (100 * (total - (this.succeeded[i] as number))) / total;
          if (failed >= fp.threshold) this.eject(i, at);
        }
    }
    this.total.fill(0);
    this.succeeded.fill(0);
    for (let i = 0; i < this.size; i++) {
      const since = at - (this.lastUneject[i] as number);
      if (!this.health.isEjected(i) && since >= c.intervalMs && (this.multiplier[i] as number) > 0)
        this.multiplier[i] = (this.multiplier[i] as number) - 1;
    }
  }

  /** After a long idle stretch: the remaining sweeps at once (no traffic fell in them). */
  private catchUp(now: number): void {
    const interval = this.config.intervalMs;
    const ticks = Math.floor((now - this.nextTick) / interval) + 1;
    const last = this.nextTick + (ticks - 1) * interval;
    for (let i = 0; i < this.size; i++) {
      if (
        this.health.isEjected(i) &&
        this.ejectionDurationMs(i) <= last - (this.ejectedAt[i] as number)
      )
        this.uneject(i, last);
      else if (!this.health.isEjected(i))
        this.multiplier[i] = Math.max(0, (this.multiplier[i] as number) - ticks);
    }
    this.total.fill(0);
    this.succeeded.fill(0);
    this.nextTick = last + interval;
  }
}
