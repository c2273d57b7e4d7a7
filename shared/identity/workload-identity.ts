// The proxy's side of identity: a fresh key and CSR for each certificate, the current credentials,
// and renewal at half-life (of the life left when the certificate arrived). Renewal swaps the
// credentials in one assignment and emits 'rotated'; a server then calls `setSecureContext()`
// and a client builds new connection options, while connections already open keep the context
// they were made with, so none is dropped.

import { EventEmitter } from 'node:events';
import { createPrivateKey } from 'node:crypto';
import { createCsrInWorker } from './csr-worker.ts';
import { IdentityError } from './errors.ts';
import type { CertificateGrant } from './mesh-ca.ts';
import {
  identityFromCertificate,
  verifyCertificateChain,
  type MtlsCredentials,
} from './peer-verification.ts';
import { workloadSpiffeId, type WorkloadIdentityInput } from './spiffe.ts';

/** A key and the CSR that proves we hold it, for one identity. */
export interface WorkloadCsr {
  keyPem: string;
  csrPem: string;
}

/**
 * A new EC P-256 key and a CSR signed with it. The CSR names the SPIFFE id as a URI SAN for
 * readability only; the CA sets the SAN from the identity it authenticated.
 */
export async function createWorkloadCsr(identity: WorkloadIdentityInput): Promise<WorkloadCsr> {
  return createCsrInWorker(workloadSpiffeId(identity));
}

/**
 * When to renew: at half-life, as Istio's agent does, but of the life left when the certificate
 * arrived: from the later of notBefore and `receivedAt`. notBefore is backdated for clock skew
 * (mesh-ca.ts), and measured from it a certificate shorter than twice the backdate would be due
 * for renewal on arrival, renewed again at once, and so on in a loop.
 */
export function renewAt(validity: { notBefore: Date; notAfter: Date }, receivedAt: number): Date {
  const start = Math.max(validity.notBefore.getTime(), receivedAt);
  return new Date(start + (validity.notAfter.getTime() - start) / 2);
}

/** A proxy's current key and certificate; immutable, replaced whole on rotation. */
export interface WorkloadCredentials extends MtlsCredentials {
  spiffeId: string;
  keyPem: string;
  certificatePem: string;
  chainPem: readonly string[];
  rootPem: string;
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
  renewAt: Date;
}

/**
 * Checks what the control plane granted for `csr` and makes credentials of it: the certificate
 * chains to the root it came with, is valid now, holds our key, and names the identity we asked
 * for (a join token of another service account would give us an identity we do not claim).
 * `now` is when the grant arrived; renewal is timed from it (renewAt).
 */
export function credentialsFromGrant(
  csr: WorkloadCsr,
  grant: CertificateGrant,
  expectedSpiffeId: string,
  now: number = Date.now(),
): WorkloadCredentials {
  const chainPem = grant.chainPem?.length ? grant.chainPem : [grant.certificatePem, grant.rootPem];
  const leaf = verifyCertificateChain(chainPem, grant.rootPem, now);
  if (!leaf.checkPrivateKey(createPrivateKey(csr.keyPem)))
    throw new IdentityError('MG_ERR_CSR_INVALID', 'the granted certificate is not for our key');
  const { spiffeId } = identityFromCertificate(leaf);
  if (spiffeId !== expectedSpiffeId)
    throw new IdentityError(
      'MG_ERR_PEER_IDENTITY',
      `the control plane issued ${spiffeId}, but this proxy is ${expectedSpiffeId} (is the join token for another namespace or service account?)`,
    );
  const notBefore = new Date(leaf.validFrom);
  const notAfter = new Date(leaf.validTo);
  return Object.freeze({
    spiffeId,
    keyPem: csr.keyPem,
    certificatePem: grant.certificatePem,
    chainPem: Object.freeze([...chainPem]),
    rootPem: grant.rootPem,
    serialNumber: leaf.serialNumber,
    notBefore,
    notAfter,
    renewAt: renewAt({ notBefore, notAfter }, now),
  });
}

/** Asks the control plane to sign a CSR (after it authenticated this proxy). */
export type RequestCertificate = (csrPem: string) => Promise<CertificateGrant>;

/** The clock and timers the renewer uses; tests pass fake ones and move time by hand. */
export interface RenewalTimers {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Real time; timers are unref'd so a pending renewal never keeps the process alive. */
export const realTimers: RenewalTimers = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms).unref(),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface RenewalBackoff {
  /** First retry delay; 1 s by default. */
  initialMs?: number;
  /** Cap on the delay; 60 s by default. */
  maxMs?: number;
  /** Growth per failed attempt; 2 by default. */
  factor?: number;
  /** Up to this fraction of each delay is taken off at random (0–1); 0.2 by default. */
  jitter?: number;
}

export interface WorkloadCertificateRenewerOptions {
  identity: WorkloadIdentityInput;
  requestCertificate: RequestCertificate;
  timers?: RenewalTimers;
  backoff?: RenewalBackoff;
  /** Random numbers in [0, 1) for jitter. */
  random?: () => number;
}

export interface RenewalFailure {
  /** 1 for the first failure since the last success. */
  attempt: number;
  retryInMs: number;
  /** When the current certificate expires (undefined before the first one). */
  expiresAt: Date | undefined;
}

interface RenewerEvents {
  /** New credentials replaced `previous`; not emitted for the first certificate. */
  rotated: [current: WorkloadCredentials, previous: WorkloadCredentials];
  renewalFailed: [error: Error, failure: RenewalFailure];
}

/** setTimeout's longest delay (2^31 − 1 ms, ~24.8 days); longer waits are done in steps. */
const MAX_TIMER_MS = 2_147_483_647;

/**
 * Holds a proxy's credentials and keeps them fresh: the first certificate on `start()`, then a
 * new key and certificate at each half-life, retrying failures with exponential backoff.
 */
export class WorkloadCertificateRenewer extends EventEmitter<RenewerEvents> {
  readonly spiffeId: string;
  private credentials: WorkloadCredentials | undefined;
  private readonly timers: RenewalTimers;
  private readonly backoff: Required<RenewalBackoff>;
  private readonly random: () => number;
  private timer: unknown;
  private hasTimer = false;
  private failures = 0;
  private inFlight: Promise<void> | undefined;
  private stopped = false;
  private started: Promise<WorkloadCredentials> | undefined;
  private firstIssued: ((c: WorkloadCredentials) => void) | undefined;
  private firstFailed: ((err: Error) => void) | undefined;

  constructor(private readonly options: WorkloadCertificateRenewerOptions) {
    super();
    this.spiffeId = workloadSpiffeId(options.identity);
    this.timers = options.timers ?? realTimers;
    this.backoff = {
      initialMs: options.backoff?.initialMs ?? 1000,
      maxMs: options.backoff?.maxMs ?? 60_000,
      factor: options.backoff?.factor ?? 2,
      jitter: options.backoff?.jitter ?? 0.2,
    };
    this.random = options.random ?? Math.random;
  }

  /** The current credentials; undefined until the first certificate arrives. */
  get current(): WorkloadCredentials | undefined {
    return this.credentials;
  }

  /**
   * Gets the first certificate (retrying with backoff while the control plane is unreachable or
   * refuses) and schedules renewals. Resolves with the first credentials; rejects if stopped first.
   */
  start(): Promise<WorkloadCredentials> {
    if (this.stopped) return Promise.reject(new Error('the renewer is stopped'));
    this.started ??= new Promise<WorkloadCredentials>((resolve, reject) => {
      this.firstIssued = resolve;
      this.firstFailed = reject;
      void this.renew();
    });
    return this.started;
  }

  /** Renews now instead of at half-life (for example when the mesh root changed). */
  renewNow(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.clearTimer();
    return this.renew();
  }

  /** Cancels the pending renewal; a request in flight is let finish and its result dropped. */
  stop(): void {
    this.stopped = true;
    this.clearTimer();
    this.firstFailed?.(new Error('the renewer was stopped before the first certificate arrived'));
    this.firstIssued = this.firstFailed = undefined;
  }

  private renew(): Promise<void> {
    this.inFlight ??= this.attempt();
    return this.inFlight;
  }

  private async attempt(): Promise<void> {
    let next: WorkloadCredentials | undefined;
    let error: Error | undefined;
    try {
      const csr = await createWorkloadCsr(this.options.identity);
      const grant = await this.options.requestCertificate(csr.csrPem);
      next = credentialsFromGrant(csr, grant, this.spiffeId, this.timers.now());
    } catch (err) {
      error = err instanceof Error ? err : new Error(String(err));
    }
    // Cleared before anyone is told, so a renewal they ask for starts a new attempt.
    this.inFlight = undefined;
    if (this.stopped) return;
    if (!next) {
      this.failures += 1;
      const base = Math.min(
        this.backoff.maxMs,
        this.backoff.initialMs * this.backoff.factor ** (this.failures - 1),
      );
      const retryInMs = Math.round(base * (1 - this.backoff.jitter * this.random()));
      this.scheduleAt(this.timers.now() + retryInMs);
      this.emit('renewalFailed', error as Error, {
        attempt: this.failures,
        retryInMs,
        expiresAt: this.credentials?.notAfter,
      });
      return;
    }
    this.failures = 0;
    const previous = this.credentials;
    this.credentials = next; // the swap: readers see the old or the new credentials, never a mix
    this.scheduleAt(next.renewAt.getTime());
    if (previous) this.emit('rotated', next, previous);
    else {
      this.firstIssued?.(next);
      this.firstIssued = this.firstFailed = undefined;
    }
  }

  private scheduleAt(at: number): void {
    this.clearTimer();
    if (this.stopped) return;
    const delay = Math.max(0, at - this.timers.now());
    this.hasTimer = true;
    this.timer = this.timers.setTimeout(
      () => {
        this.hasTimer = false;
        if (this.timers.now() < at) this.scheduleAt(at);
        else void this.renew();
      },
      Math.min(delay, MAX_TIMER_MS),
    );
  }

  private clearTimer(): void {
    if (this.hasTimer) this.timers.clearTimeout(this.timer);
    this.hasTimer = false;
  }
}
