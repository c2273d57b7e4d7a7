// Which endpoints of one backend may take traffic: outlier detection ejects, active health
// checks fail, and Envoy's panic threshold decides what happens when too few are left.
//
// Envoy's rule (arch_overview load_balancing/panic_threshold): when the healthy share of hosts
// drops below the panic threshold (default 50%), the balancer ignores health and spreads traffic
// over every host; a threshold of 0 disables panic mode, and then no healthy host means no host
// (503 UH). Ejected and actively-failed endpoints both count as unhealthy here.

/** What a balancer reads: the endpoints it may choose from right now. */
export interface EndpointAvailability {
  /** Changes whenever `available` may answer differently (hash tables rebuild on change). */
  readonly version: number;
  readonly availableCount: number;
  available(index: number): boolean;
}

/** Every endpoint always available: a backend without health checking. */
export class AllAvailable implements EndpointAvailability {
  readonly version = 0;
  constructor(readonly availableCount: number) {}
  available(): boolean {
    return true;
  }
}

export const DEFAULT_PANIC_THRESHOLD = 50;

export class EndpointHealth implements EndpointAvailability {
  version = 0;
  private readonly ejected: Uint8Array;
  private readonly activeFailed: Uint8Array;
  private unhealthy = 0;
  private panicking = false;

  constructor(
    readonly size: number,
    /** Percent of healthy endpoints below which health is ignored; 0 disables panic mode. */
    private readonly panicThreshold = DEFAULT_PANIC_THRESHOLD,
  ) {
    this.ejected = new Uint8Array(size);
    this.activeFailed = new Uint8Array(size);
  }

  /** Whether every endpoint is being offered because too few are healthy. */
  get panic(): boolean {
    return this.panicking;
  }

  get healthyCount(): number {
    return this.size - this.unhealthy;
  }

  get availableCount(): number {
    return this.panicking ? this.size : this.size - this.unhealthy;
  }

  available(i: number): boolean {
    return this.panicking || (this.ejected[i] === 0 && this.activeFailed[i] === 0);
  }

  /** Healthy by both checks (what the endpoint is, panic aside). */
  healthy(i: number): boolean {
    return this.ejected[i] === 0 && this.activeFailed[i] === 0;
  }

  isEjected(i: number): boolean {
    return this.ejected[i] === 1;
  }

  isActiveFailed(i: number): boolean {
    return this.activeFailed[i] === 1;
  }

  setEjected(i: number, ejected: boolean): void {
    this.set(this.ejected, i, ejected);
  }

  setActiveFailed(i: number, failed: boolean): void {
    this.set(this.activeFailed, i, failed);
  }

  private set(flags: Uint8Array, i: number, on: boolean): void {
    if (i < 0 || i >= this.size || (flags[i] === 1) === on) return;
    const wasHealthy = this.healthy(i);
    flags[i] = on ? 1 : 0;
    const isHealthy = this.healthy(i);
    if (wasHealthy && !isHealthy) this.unhealthy++;
    else if (!wasHealthy && isHealthy) this.unhealthy--;
    this.panicking =
      this.panicThreshold > 0 &&
      this.size > 0 &&
      (100 * (this.size - this.unhealthy)) / this.size < this.panicThreshold;
    this.version++;
  }
}
