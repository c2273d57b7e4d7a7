// Endpoint selection within one backend (a Service port), as Envoy Gateway's BackendTrafficPolicy
// `loadBalancer` configures it. Balancers see endpoints by index and choose only among those the
// EndpointAvailability offers (outlier ejection, active health, panic mode: endpoint-health.ts).
//
// - RoundRobin: the next available endpoint in order.
// - Random: uniform among the available endpoints.
// - LeastRequest: Envoy's default for equal weights, "power of two choices": two endpoints drawn
//   at random, the one with fewer requests in flight wins (ties: the first). meshgate draws the two
//   without replacement, so with two endpoints the idle one always wins; Envoy draws with
//   replacement (a 1 in 4 chance of comparing an endpoint with itself).
// - ConsistentHash: Maglev (what Envoy Gateway configures, table size 65537 by default), built
//   once per endpoint set and availability; a request without a hash key gets a random one, as
//   Envoy does. When an endpoint leaves, only the keys it owned move (test/backend).

import type { Endpoint } from './endpoint-set.ts';
import type { EndpointAvailability } from './endpoint-health.ts';
import { combineHash, hashString } from './hash.ts';

export type LoadBalancerType = 'RoundRobin' | 'Random' | 'LeastRequest' | 'ConsistentHash';

export interface LoadBalancer {
  readonly type: LoadBalancerType;
  /**
   * An endpoint index, or -1 when none is available. `hash` is the request's key (ConsistentHash
   * only; undefined: random); `attempt` > 0 re-selects after the retry host predicate refused
   * the previous choice, as Envoy's `host_selection_retry_max_attempts` does.
   */
  pick(random: () => number, hash: number | undefined, attempt: number): number;
  /** Requests in flight per endpoint (LeastRequest reads them). */
  onRequestStart(index: number): void;
  onRequestEnd(index: number): void;
}

/** Envoy Gateway's retry host predicate: up to 5 selections avoiding hosts already tried. */
export const HOST_SELECTION_MAX_ATTEMPTS = 5;

/**
 * Picks an endpoint, avoiding those in `tried` (Envoy's previous_hosts retry predicate, which
 * Envoy Gateway installs on every retry policy). After the last attempt the choice stands.
 */
export function chooseEndpoint(
  lb: LoadBalancer,
  random: () => number,
  hash: number | undefined,
  tried: readonly number[] | undefined,
): number {
  let chosen = lb.pick(random, hash, 0);
  if (!tried || tried.length === 0) return chosen;
  for (let attempt = 1; chosen >= 0 && tried.includes(chosen); attempt++) {
    if (attempt >= HOST_SELECTION_MAX_ATTEMPTS) break;
    chosen = lb.pick(random, hash, attempt);
  }
  return chosen;
}

/** The k-th (0-based) available endpoint, walking in index order. */
function nthAvailable(availability: EndpointAvailability, size: number, k: number): number {
  if (availability.availableCount === size) return k;
  for (let i = 0; i < size; i++) if (availability.available(i) && k-- === 0) return i;
  return -1;
}

export class RoundRobinBalancer implements LoadBalancer {
  readonly type = 'RoundRobin';
  private next = 0;
  constructor(
    private readonly size: number,
    private readonly availability: EndpointAvailability,
  ) {}

  pick(): number {
    const n = this.size;
    for (let k = 0; k < n; k++) {
      const i = this.next;
      this.next = i + 1 === n ? 0 : i + 1;
      if (this.availability.available(i)) return i;
    }
    return -1;
  }

  onRequestStart(): void {}
  onRequestEnd(): void {}
}

export class RandomBalancer implements LoadBalancer {
  readonly type = 'Random';
  constructor(
    private readonly size: number,
    private readonly availability: EndpointAvailability,
  ) {}

  pick(random: () => number): number {
    const count = this.availability.availableCount;
    if (count === 0) return -1;
    return nthAvailable(this.availability, this.size, Math.floor(random() * count));
  }

  onRequestStart(): void {}
  onRequestEnd(): void {}
}

export class LeastRequestBalancer implements LoadBalancer {
  readonly type = 'LeastRequest';
  /** Requests in flight per endpoint, through this balancer. */
  readonly active: Uint32Array;
  constructor(
    private readonly size: number,
    private readonly availability: EndpointAvailability,
  ) {
    this.active = new Uint32Array(size);
  }

  pick(random: () => number): number {
    const count = this.availability.availableCount;
    if (count === 0) return -1;
    const ka = Math.floor(random() * count);
    const a = nthAvailable(this.availability, this.size, ka);
    if (count === 1) return a;
    let kb = Math.floor(random() * (count - 1));
    if (kb >= ka) kb++;
    const b = nthAvailable(this.availability, this.size, kb);
    return (this.active[b] as number) < (this.active[a] as number) ? b : a;
  }

  onRequestStart(i: number): void {
    if (i >= 0 && i < this.size) this.active[i] = (this.active[i] as number) + 1;
  }

  onRequestEnd(i: number): void {
    if (i >= 0 && i < this.size && (this.active[i] as number) > 0)
      this.active[i] = (this.active[i] as number) - 1;
  }
}

/**
 * Maglev consistent hashing (Eisenbud et al., NSDI 2016; Envoy's MaglevTable): each endpoint has
 * a permutation of the table slots from two hashes of its name; endpoints take turns claiming
 * their next free preferred slot until the table is full. The table size must be prime.
 */
export class MaglevBalancer implements LoadBalancer {
  readonly type = 'ConsistentHash';
  private table: Int32Array | undefined;
  private builtFor = -1;

  constructor(
    private readonly names: readonly string[],
    private readonly availability: EndpointAvailability,
    readonly tableSize: number,
  ) {}

  /** Slot → endpoint index, built for the current availability (exposed for tests). */
  lookupTable(): Int32Array {
    if (!this.table || this.builtFor !== this.availability.version) {
      this.table = buildMaglevTable(this.names, this.tableSize, (i) =>
        this.availability.available(i),
      );
      this.builtFor = this.availability.version;
    }
    return this.table;
  }

  pick(random: () => number, hash: number | undefined, attempt: number): number {
    if (this.availability.availableCount === 0) return -1;
    let h = hash ?? Math.floor(random() * 0x100000000);
    // Envoy's MaglevTable::chooseHost: a re-selection flips most bits of the hash, so retries
    // land on another endpoint rather than the one next door.
    if (attempt > 0) h = (h ^ (0xffffffff - attempt + 1)) >>> 0;
    const table = this.lookupTable();
    return table[h % table.length] as number;
  }

  onRequestStart(): void {}
  onRequestEnd(): void {}
}

/** The Maglev lookup table over the endpoints `include` admits; all -1 when none is. */
export function buildMaglevTable(
  names: readonly string[],
  size: number,
  include: (index: number) => boolean = () => true,
): Int32Array {
  const table = new Int32Array(size).fill(-1);
  const members: number[] = [];
  for (let i = 0; i < names.length; i++) if (include(i)) members.push(i);
  if (members.length === 0) return table;
  const offset = members.map((i) => hashString(names[i] as string, 0) % size);
  const skip = members.map((i) => (hashString(names[i] as string, 0x5bd1e995) % (size - 1)) + 1);
  const next = new Float64Array(members.length);
  let filled = 0;
  while (filled < size) {
    for (let m = 0; m < members.length && filled < size; m++) {
      let c = ((offset[m] as number) + (next[m] as number) * (skip[m] as number)) % size;
      while ((table[c] as number) >= 0) {
        next[m] = (next[m] as number) + 1;
        c = ((offset[m] as number) + (next[m] as number) * (skip[m] as number)) % size;
      }
      table[c] = members[m] as number;
      next[m] = (next[m] as number) + 1;
      filled++;
    }
  }
  return table;
}

export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

export type LoadBalancerConfig =
  | { type: 'RoundRobin' | 'Random' | 'LeastRequest' }
  | { type: 'ConsistentHash'; hash: HashPolicy; tableSize: number };

export function createLoadBalancer(
  config: LoadBalancerConfig,
  endpoints: readonly Endpoint[],
  availability: EndpointAvailability,
): LoadBalancer {
  switch (config.type) {
    case 'RoundRobin':
      return new RoundRobinBalancer(endpoints.length, availability);
    case 'Random':
      return new RandomBalancer(endpoints.length, availability);
    case 'LeastRequest':
      return new LeastRequestBalancer(endpoints.length, availability);
    case 'ConsistentHash':
      return new MaglevBalancer(
        endpoints.map((e) => e.origin),
        availability,
        config.tableSize,
      );
  }
}

// --- request hash keys ---

/** What hashing reads from a request (the edge's EdgeRequest has these). */
export interface HashRequest {
  /** First value of a request header, by lowercase name. */
  header(name: string): string | undefined;
  /** The client address, after ClientTrafficPolicy's clientIPDetection. */
  readonly clientIP: string;
  /** The raw query string, without "?". */
  readonly query: string;
}

/** Envoy Gateway's consistentHash types, reduced to what is hashed. */
export type HashPolicy =
  | { type: 'SourceIP' }
  | { type: 'Headers'; names: readonly string[] }
  | {
      type: 'Cookie';
      name: string;
      /** Max-Age of the cookie generated when the request has none; undefined: never generated. */
      ttlSeconds?: number;
      attributes: readonly (readonly [string, string])[];
    }
  | { type: 'QueryParams'; names: readonly string[] };

/** A key to hash, and for Cookie with a ttl, the Set-Cookie to send when the request had none. */
export interface RequestHash {
  hash: number | undefined;
  setCookie: string | undefined;
}

/**
 * The hash of a request under a policy; undefined when the request has none of the inputs (the
 * balancer then picks at random, as Envoy does). For a Cookie policy with a ttl and a request
 * without the cookie, a value is generated (Envoy hashes the connection's addresses; meshgate
 * the ones `connectionKey` gives) and hashed like the cookie it will become.
 */
export function hashRequest(
  policy: HashPolicy,
  r: HashRequest,
  connectionKey?: () => string,
): RequestHash {
  switch (policy.type) {
    case 'SourceIP':
      return { hash: r.clientIP ? hashString(r.clientIP) : undefined, setCookie: undefined };
    case 'Headers': {
      let hash: number | undefined;
      for (const name of policy.names) {
        const v = r.header(name);
        if (v === undefined) continue;
        const h = hashString(v);
        hash = hash === undefined ? h : combineHash(hash, h);
      }
      return { hash, setCookie: undefined };
    }
    case 'QueryParams': {
      let hash: number | undefined;
      for (const name of policy.names) {
        const v = queryParam(r.query, name);
        if (v === undefined) continue;
        const h = hashString(v);
        hash = hash === undefined ? h : combineHash(hash, h);
      }
      return { hash, setCookie: undefined };
    }
    case 'Cookie': {
      const v = cookieValue(r.header('cookie'), policy.name);
      if (v !== undefined) return { hash: hashString(v), setCookie: undefined };
      if (policy.ttlSeconds === undefined) return { hash: undefined, setCookie: undefined };
      const key = connectionKey ? connectionKey() : r.clientIP;
      const value = hex32(hashString(key)) + hex32(hashString(key, 1));
      return { hash: hashString(value), setCookie: setCookieValue(policy, value) };
    }
  }
}

/**
 * Envoy's Http::Utility::makeSetCookieValue: `name="value"`, Max-Age when the ttl is not zero,
 * the attributes in order, then HttpOnly.
 */
export function setCookieValue(
  policy: Extract<HashPolicy, { type: 'Cookie' }>,
  value: string,
): string {
  let out = `${policy.name}="${value}"`;
  if (policy.ttlSeconds) out += `; Max-Age=${policy.ttlSeconds}`;
  for (const [name, v] of policy.attributes) out += v ? `; ${name}=${v}` : `; ${name}`;
  return `${out}; HttpOnly`;
}

function hex32(n: number): string {
  return n.toString(16).padStart(8, '0');
}

/** A cookie's value from a Cookie header, surrounding quotes removed (RFC 6265 cookie-value). */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  let from = 0;
  while (from < header.length) {
    let end = header.indexOf(';', from);
    if (end < 0) end = header.length;
    const eq = header.indexOf('=', from);
    if (eq > from && eq < end && header.slice(from, eq).trim() === name) {
      let v = header.slice(eq + 1, end).trim();
      if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
      return v;
    }
    from = end + 1;
  }
  return undefined;
}

/** The first value of a query parameter, percent-decoded; undefined when absent. */
export function queryParam(query: string, name: string): string | undefined {
  if (!query) return undefined;
  for (const pair of query.split('&')) {
    const eq = pair.indexOf('=');
    const key = eq < 0 ? pair : pair.slice(0, eq);
    if (safeDecode(key) !== name) continue;
    return eq < 0 ? '' : safeDecode(pair.slice(eq + 1));
  }
  return undefined;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}
