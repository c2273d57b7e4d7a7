// What a gateway process keeps for rate limits across snapshots: one lessee per kind of limit
// (local, global), the holders they lease from, and the housekeeping timer. A reload compiles new
// rules but keeps the buckets: a bucket's key names the policy rule, not the snapshot.
//
// Where the holders are:
//   - a worker of `meshgate gateway`: both over cluster IPC to the supervisor, which counts local
//     limits itself and passes global leases on to Redis (one connection per gateway);
//   - an in-process GatewayServer (tests, embedding): its own FixedWindowBudget for local limits
//     and its own RedisBudget for global ones. The request path is the same either way.
// Without a Redis URL, global rules are counted like local ones (per gateway) and the view says so.

import type { Logger } from 'pino';
import { FixedWindowBudget, type BudgetHolder } from './budget.ts';
import { LeaseClient, type FailureMode } from './lease-client.ts';
import { RedisBudget } from './redis-budget.ts';

export interface RateLimitSettings {
  /** Lease holders from outside (a worker's IPC channel); absent: in-process holders. */
  holders?: { local: BudgetHolder; global?: BudgetHolder };
  /** In-process only: the Redis that holds global limits ("redis://host:port"). */
  redisUrl?: string;
  /** While the global backend is unreachable: admit (open, the default) or refuse (closed). */
  failureMode?: FailureMode;
}

const SWEEP_MS = 1_000;

export class RateLimitRuntime {
  readonly local: LeaseClient;
  /** Undefined: no global backend, global rules use `local`. */
  readonly global: LeaseClient | undefined;
  readonly failureMode: FailureMode;
  private readonly ownLocal: FixedWindowBudget | undefined;
  private readonly ownRedis: RedisBudget | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(
    settings: RateLimitSettings,
    /** ms since the epoch (the windows are aligned to it). */
    readonly now: () => number,
    logger: Logger,
  ) {
    this.failureMode = settings.failureMode ?? 'open';
    let localHolder = settings.holders?.local;
    if (!localHolder) localHolder = this.ownLocal = new FixedWindowBudget();
    let globalHolder = settings.holders?.global;
    if (!settings.holders && settings.redisUrl)
      globalHolder = this.ownRedis = new RedisBudget({
        url: settings.redisUrl,
        logger,
        now,
        failureMode: this.failureMode,
      });
    this.local = new LeaseClient({ holder: localHolder, returnsTokens: true, now });
    this.global = globalHolder
      ? new LeaseClient({ holder: globalHolder, returnsTokens: false, now })
      : undefined;
    this.timer = setInterval(() => this.sweep(), SWEEP_MS);
    this.timer.unref();
  }

  /** Forgets finished windows and gives idle local tokens back. */
  sweep(now = this.now()): void {
    this.local.sweep(now);
    this.global?.sweep(now);
    this.ownLocal?.sweep(now);
  }

  /** Gives unspent local tokens back and closes what the runtime opened (Redis, the timer). */
  close(): void {
    clearInterval(this.timer);
    this.local.releaseAll();
    this.ownRedis?.close();
  }
}
