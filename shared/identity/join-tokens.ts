// Join tokens: how a proxy on one machine proves who it is before it has a certificate (DESIGN:
// "on one machine a join token issued by the control plane"; in Kubernetes a projected
// ServiceAccount token does this job). A token names one namespace and service account and
// expires; the control plane issues a certificate for that identity to whoever presents it.
//
// The store is `<dataDir>/tokens.json` (mode 0600), holding only SHA-256 hashes: a token is 32
// random bytes, so a plain hash is enough (no salt or slow KDF is needed against guessing), and
// reading the file does not reveal a usable token.
//
// A token may be redeemed any number of times until it expires, on purpose: a sidecar that
// restarts, or renews after the control plane lost its state, presents the same token file
// again. Its lifetime is what bounds its use; keep it short and the file readable only by the
// workload.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { IdentityError } from './errors.ts';
import { namespaceProblem, serviceAccountProblem } from './spiffe.ts';

export const JOIN_TOKEN_PREFIX = 'mgjt_';
export const TOKENS_FILE = 'tokens.json';
export const DEFAULT_JOIN_TOKEN_TTL_MS = 24 * 3_600_000;

/** `mgjt_` and 32 random bytes in base64url (43 characters). */
const TOKEN_FORMAT = /^mgjt_[A-Za-z0-9_-]{43}$/;
const LOCK_STALE_MS = 10_000;
const LOCK_WAIT_MS = 5_000;

/** The identity a valid token stands for. */
export interface JoinTokenIdentity {
  namespace: string;
  serviceAccount: string;
  expiresAt: Date;
}

export interface CreatedJoinToken extends JoinTokenIdentity {
  /** The secret: shown once, never stored. */
  token: string;
}

export interface CreateJoinTokenRequest {
  namespace: string;
  serviceAccount: string;
  /** Lifetime; 24 h by default. */
  ttlMs?: number;
}

/** One entry of tokens.json: the hash of a token and what it stands for. */
export interface StoredJoinToken {
  sha256: string;
  namespace: string;
  serviceAccount: string;
  createdAt: string;
  expiresAt: string;
}

interface TokenFile {
  version: 1;
  tokens: StoredJoinToken[];
}

function storeError(detail: string, cause?: unknown): IdentityError {
  return new IdentityError(
    'MG_ERR_JOIN_TOKEN_STORE',
    detail,
    cause === undefined ? undefined : { cause },
  );
}

function sha256(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

/** Checks a create request; throws MG_ERR_SPIFFE_ID_INVALID or a RangeError for the TTL. */
export function checkJoinTokenRequest(request: CreateJoinTokenRequest): void {
  const problem =
    namespaceProblem(request.namespace) ?? serviceAccountProblem(request.serviceAccount);
  if (problem) throw new IdentityError('MG_ERR_SPIFFE_ID_INVALID', problem);
  const ttl = request.ttlMs ?? DEFAULT_JOIN_TOKEN_TTL_MS;
  if (!Number.isFinite(ttl) || ttl <= 0) throw new RangeError('the token TTL must be positive');
}

/** The join token store in a data folder. Every call reads the file, so tokens written by
 * `meshgate token create --data DIR` while the control plane runs are seen at once. */
export class JoinTokenStore {
  readonly path: string;
  private readonly now: () => number;

  constructor(
    readonly dataDir: string,
    options: { now?: () => number } = {},
  ) {
    this.path = join(dataDir, TOKENS_FILE);
    this.now = options.now ?? Date.now;
  }

  /** Creates a token for an identity, stores its hash, and prunes expired ones. */
  async create(request: CreateJoinTokenRequest): Promise<CreatedJoinToken> {
    checkJoinTokenRequest(request);
    const token = `${JOIN_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
    const now = this.now();
    const expiresAt = new Date(now + (request.ttlMs ?? DEFAULT_JOIN_TOKEN_TTL_MS));
    await this.update((live) => [
      ...live,
      {
        sha256: sha256(token).toString('hex'),
        namespace: request.namespace,
        serviceAccount: request.serviceAccount,
        createdAt: new Date(now).toISOString(),
        expiresAt: expiresAt.toISOString(),
      },
    ]);
    return {
      token,
      namespace: request.namespace,
      serviceAccount: request.serviceAccount,
      expiresAt,
    };
  }

  /**
   * The identity of a valid, unexpired token, or undefined. Hashes are compared in constant
   * time and every entry is compared, so timing says nothing about which bytes matched.
   */
  async redeem(token: string): Promise<JoinTokenIdentity | undefined> {
    if (typeof token !== 'string') return undefined;
    token = token.trim();
    if (!TOKEN_FORMAT.test(token)) return undefined;
    const digest = sha256(token);
    const now = this.now();
    let found: StoredJoinToken | undefined;
    for (const entry of (await this.read()).tokens) {
      const stored = Buffer.from(entry.sha256, 'hex');
      if (stored.length === digest.length && timingSafeEqual(stored, digest) && !found)
        found = entry;
    }
    if (!found || Date.parse(found.expiresAt) <= now) return undefined;
    return {
      namespace: found.namespace,
      serviceAccount: found.serviceAccount,
      expiresAt: new Date(found.expiresAt),
    };
  }

  /** Removes expired tokens; returns how many. */
  prune(): Promise<number> {
    return this.update();
  }

  /** The stored entries (hashes, never tokens), for listing and tests. */
  async list(): Promise<readonly StoredJoinToken[]> {
    return (await this.read()).tokens;
  }

  private async read(): Promise<TokenFile> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, tokens: [] };
      throw storeError(`cannot read ${this.path}: ${(err as Error).message}`, err);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw storeError(`${this.path} is not valid JSON; fix or remove it`, err);
    }
    if (!isTokenFile(parsed))
      throw storeError(`${this.path} is not a meshgate token store (version 1); fix or remove it`);
    return parsed;
  }

  /**
   * Reads, drops expired entries, applies `change` and writes back, under a lock file so that
   * the control plane and the CLI writing at once lose no token. The write is the rename of a
   * fully written 0600 file. Returns how many expired entries were dropped.
   */
  private async update(change?: (live: StoredJoinToken[]) => StoredJoinToken[]): Promise<number> {
    await mkdir(this.dataDir, { recursive: true });
    const release = await this.lock();
    try {
      const now = this.now();
      const all = (await this.read()).tokens;
      const live = all.filter((t) => Date.parse(t.expiresAt) > now);
      const expired = all.length - live.length;
      if (!change && expired === 0) return 0;
      const tokens = change ? change(live) : live;
      await writeAtomically(this.path, `${JSON.stringify({ version: 1, tokens }, null, 2)}\n`);
      return expired;
    } finally {
      await release();
    }
  }

  private async lock(): Promise<() => Promise<void>> {
    const lockPath = `${this.path}.lock`;
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        const handle = await open(lockPath, 'wx', 0o600);
        await handle.close();
        return () => rm(lockPath, { force: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST')
          throw storeError(`cannot lock ${this.path}: ${(err as Error).message}`, err);
      }
      // A holder that died leaves its lock behind; a lock this old is not being held.
      const held = await stat(lockPath).catch(() => undefined);
      if (held && Date.now() - held.mtimeMs > LOCK_STALE_MS) {
        await rm(lockPath, { force: true });
        continue;
      }
      if (Date.now() > deadline)
        throw storeError(`${lockPath} is held by another process; remove it if none is running`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

async function writeAtomically(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const handle = await open(tmp, 'wx', 0o600);
    try {
      await handle.writeFile(text, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw storeError(`cannot write ${path}: ${(err as Error).message}`, err);
  }
}

function isTokenFile(value: unknown): value is TokenFile {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as { version?: unknown; tokens?: unknown };
  return (
    v.version === 1 &&
    Array.isArray(v.tokens) &&
    v.tokens.every(
      (t: unknown) =>
        typeof t === 'object' &&
        t !== null &&
        typeof (t as StoredJoinToken).sha256 === 'string' &&
        /^[0-9a-f]{64}$/.test((t as StoredJoinToken).sha256) &&
        typeof (t as StoredJoinToken).namespace === 'string' &&
        typeof (t as StoredJoinToken).serviceAccount === 'string' &&
        typeof (t as StoredJoinToken).expiresAt === 'string' &&
        !Number.isNaN(Date.parse((t as StoredJoinToken).expiresAt)),
    )
  );
}
