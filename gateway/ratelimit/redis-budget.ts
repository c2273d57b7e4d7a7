// The holder of global rate limits: Redis, shared by every gateway replica. One counter per bucket
// and window (the window start is in the key); a Lua script debits, grants a lease with the same
// rule as the in-memory holder (budget.ts leaseSize) and sets the expiry on first use, all in one
// atomic step. ioredis: the maintained Redis client for Node (the Redis project's own), with
// defineCommand (EVALSHA, falling back to EVAL when the server does not know the script yet),
// reconnection by itself, and a switch to fail commands at once while disconnected instead of
// queueing them (enableOfflineQueue: false), so requests do not pile up behind a dead Redis.
//
// Unspent tokens are not given back: they expire with the window's key.

import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { BudgetHolder, LeaseGrant, LeaseRequest } from './budget.ts';
import { rateLimitBackendErrors, rateLimitBackendUp } from './metrics.ts';

/**
 * KEYS[1] the counter of one bucket for one window.
 * ARGV limit, need, want, spread, debit, ttl (ms): see budget.ts leaseSize for the grant rule.
 * Returns { granted, remaining }.
 */
export const LEASE_SCRIPT = `
local limit = tonumber(ARGV[1])
local need = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local spread = tonumber(ARGV[4])
local used = redis.call('INCRBY', KEYS[1], tonumber(ARGV[5]))
local remaining = limit - used
local granted = 0
if remaining > 0 and remaining >= need then
  granted = math.ceil(remaining / spread)
  if granted > want then granted = want end
  if granted < need then granted = need end
  if granted > remaining then granted = remaining end
  used = redis.call('INCRBY', KEYS[1], granted)
end
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[6]) end
return { granted, limit - used }
`;

const KEY_PREFIX = 'meshgate:ratelimit:';
/** Keys outlive their window by this much, so a slow clock elsewhere still finds the count. */
const KEY_SLACK_MS = 5_000;

export interface RedisBudgetOptions {
  url: string;
  logger: Logger;
  /** ms since the epoch. */
  now: () => number;
  /**
   * The lessees of this gateway (its workers). A gateway cannot know how many replicas share
   * Redis, so leases are sized as if there were at least two lessees.
   */
  lessees?: () => number;
  /** What happens to requests while Redis is down ("open" admits them), for the log line. */
  failureMode: 'open' | 'closed';
}

type LeaseCommand = (
  key: string,
  limit: number,
  need: number,
  want: number,
  spread: number,
  debit: number,
  ttlMs: number,
) => Promise<[number, number]>;

export class RedisBudget implements BudgetHolder {
  private readonly redis: Redis;
  private readonly lease: LeaseCommand;
  /** undefined until the first connection or failure. */
  private up: boolean | undefined;
  private downSince = 0;
  private errorsWhileDown = 0;
  private closed = false;
  /** Settles at the first connection or the first failure, whichever comes first. */
  private readonly firstAttempt: Promise<void>;
  private settleFirstAttempt: () => void = () => {};

  constructor(private readonly options: RedisBudgetOptions) {
    rateLimitBackendUp.set({ backend: 'redis' }, 0);
    this.firstAttempt = new Promise((resolve) => (this.settleFirstAttempt = resolve));
    this.redis = new Redis(options.url, {
      enableOfflineQueue: false,
      // A lease is on a request's path: it is answered now, or the failure mode decides.
      maxRetriesPerRequest: 0,
      connectTimeout: 1_000,
      commandTimeout: 500,
      // Reconnects forever, 100 ms after the first failure, backing off to one try a second.
      retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times - 1, 4), 1_000),
      lazyConnect: false,
    });
    this.redis.defineCommand('meshgateLease', { numberOfKeys: 1, lua: LEASE_SCRIPT });
    this.lease = (this.redis as unknown as { meshgateLease: LeaseCommand }).meshgateLease.bind(
      this.redis,
    );
    this.redis.on('ready', () => this.markUp());
    this.redis.on('close', () => this.markDown('connection closed'));
    // ioredis reports each failed connection attempt; the outage is logged once, in markDown.
    this.redis.on('error', (err: Error) => {
      rateLimitBackendErrors.inc({ backend: 'redis' });
      if (this.up === false) this.errorsWhileDown++;
      else this.markDown(err.message);
    });
  }

  async acquire(r: LeaseRequest): Promise<LeaseGrant> {
    // Leases asked for while the first connection is being made wait for it (connectTimeout at
    // most) rather than fail: a gateway that just started is not in an outage.
    if (this.up === undefined) await this.firstAttempt;
    const now = this.options.now();
    const ttl = Math.max(1, r.windowStart + r.windowMs - now) + KEY_SLACK_MS;
    const spread = 2 * Math.max(2, this.options.lessees?.() ?? 1);
    try {
      const [granted, remaining] = await this.lease(
        `${KEY_PREFIX}${r.key}:${r.windowStart}`,
        r.limit,
        r.need,
        r.want,
        spread,
        r.debit,
        ttl,
      );
      return { granted: Number(granted), remaining: Math.max(0, Number(remaining)) };
    } catch (err) {
      rateLimitBackendErrors.inc({ backend: 'redis' });
      if (this.up === false) this.errorsWhileDown++;
      throw err;
    }
  }

  release(): void {
    // Tokens leased from Redis expire with their window.
  }

  get reachable(): boolean {
    return this.up === true;
  }

  private markUp(): void {
    this.settleFirstAttempt();
    if (this.up === true) return;
    const wasDown = this.up === false;
    this.up = true;
    rateLimitBackendUp.set({ backend: 'redis' }, 1);
    const backend = redactUrl(this.options.url);
    if (wasDown)
      this.options.logger.info(
        {
          backend,
          downForMs: this.options.now() - this.downSince,
          errors: this.errorsWhileDown,
        },
        'rate limit backend reachable again: global limits apply',
      );
    else this.options.logger.info({ backend }, 'rate limit backend connected');
  }

  /** One log line per outage: only the transition to down is logged, not each failure. */
  private markDown(reason: string): void {
    this.settleFirstAttempt();
    if (this.up === false || this.closed) return;
    this.up = false;
    this.downSince = this.options.now();
    this.errorsWhileDown = 0;
    rateLimitBackendUp.set({ backend: 'redis' }, 0);
    this.options.logger.warn(
      { backend: redactUrl(this.options.url), reason, failureMode: this.options.failureMode },
      this.options.failureMode === 'open'
        ? 'rate limit backend unreachable: global limits fail open (requests admitted) until it is back'
        : 'rate limit backend unreachable: requests under global limits are refused until it is back',
    );
  }

  close(): void {
    this.closed = true;
    this.settleFirstAttempt();
    this.redis.disconnect();
  }
}

/** The URL without its credentials, for logs. */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return 'redis';
  }
}
