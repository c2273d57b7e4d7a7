// Rate-limit leases over the cluster IPC channel of `meshgate gateway` (the messages are listed
// in worker.ts's protocol comment). A worker's lessees ask the supervisor for leases; the
// supervisor counts local limits itself (one count per gateway, whatever the worker count) and
// passes global leases on to Redis, so a gateway keeps one Redis connection and logs a Redis
// outage once.

import type { Logger } from 'pino';
import type {
  RateLimitAcquireMessage,
  RateLimitGrantMessage,
  RateLimitReleaseMessage,
} from '../worker.ts';
import {
  FixedWindowBudget,
  type BudgetHolder,
  type LeaseGrant,
  type LeaseRequest,
} from './budget.ts';
import type { RateLimitKind } from './compile-rate-limit.ts';
import type { FailureMode } from './lease-client.ts';
import { RedisBudget } from './redis-budget.ts';

/** A lease the supervisor has not answered in this long fails (the failure mode applies). */
const LEASE_TIMEOUT_MS = 2_000;

interface Waiting {
  resolve: (grant: LeaseGrant) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/** The worker's end: BudgetHolders whose leases are answered by the supervisor. */
export class IpcLeaseChannel {
  private nextId = 1;
  private readonly waiting = new Map<number, Waiting>();

  constructor(
    private readonly send: (m: RateLimitAcquireMessage | RateLimitReleaseMessage) => void,
  ) {}

  holder(kind: RateLimitKind): BudgetHolder {
    return {
      acquire: (request) => this.acquire(kind, request),
      release: (key, windowStart, tokens) =>
        this.send({ type: 'rl-release', kind, key, windowStart, tokens }),
    };
  }

  private acquire(kind: RateLimitKind, request: LeaseRequest): Promise<LeaseGrant> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`no answer from the supervisor to a ${kind} rate-limit lease`));
      }, LEASE_TIMEOUT_MS);
      this.waiting.set(id, { resolve, reject, timer });
      this.send({ type: 'rl-acquire', id, kind, request });
    });
  }

  /** A supervisor's answer (the worker's message handler passes them here). */
  answer(m: RateLimitGrantMessage): void {
    const w = this.waiting.get(m.id);
    if (!w) return;
    this.waiting.delete(m.id);
    clearTimeout(w.timer);
    if (m.error !== undefined) w.reject(new Error(m.error));
    else w.resolve({ granted: m.granted, remaining: m.remaining });
  }

  close(): void {
    for (const w of this.waiting.values()) {
      clearTimeout(w.timer);
      w.reject(new Error('the worker is closing'));
    }
    this.waiting.clear();
  }
}

export function isRateLimitGrant(m: unknown): m is RateLimitGrantMessage {
  return (m as { type?: unknown } | null)?.type === 'rl-grant';
}

/** The supervisor's end: the holders every worker leases from. */
export class SupervisorBudgets {
  private readonly local: FixedWindowBudget;
  private readonly redis: RedisBudget | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(options: {
    /** How many workers lease (lease sizes shrink with it). */
    workers: () => number;
    redisUrl?: string;
    failureMode: FailureMode;
    logger: Logger;
    now?: () => number;
  }) {
    const now = options.now ?? (() => Date.now());
    this.local = new FixedWindowBudget(options.workers);
    if (options.redisUrl)
      this.redis = new RedisBudget({
        url: options.redisUrl,
        logger: options.logger,
        now,
        lessees: options.workers,
        failureMode: options.failureMode,
      });
    this.timer = setInterval(() => this.local.sweep(now()), 1_000);
    this.timer.unref();
  }

  get hasGlobal(): boolean {
    return this.redis !== undefined;
  }

  /** Answers a worker's lease request (never rejects: a failure is an answer with `error`). */
  async answer(m: RateLimitAcquireMessage): Promise<RateLimitGrantMessage> {
    try {
      const holder = m.kind === 'global' ? this.redis : this.local;
      if (!holder) throw new Error('no global rate-limit backend is configured');
      const grant = await holder.acquire(m.request);
      return { type: 'rl-grant', id: m.id, granted: grant.granted, remaining: grant.remaining };
    } catch (err) {
      return {
        type: 'rl-grant',
        id: m.id,
        granted: 0,
        remaining: 0,
        error: (err as Error).message,
      };
    }
  }

  release(m: RateLimitReleaseMessage): void {
    if (m.kind === 'local') this.local.release(m.key, m.windowStart, m.tokens);
  }

  close(): void {
    clearInterval(this.timer);
    this.redis?.close();
  }
}
