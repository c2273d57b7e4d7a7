// The endpoints of one Service port, with the balancing state that outlives a request.

export interface Endpoint {
  address: string;
  port: number;
  /** "http://address:port", the undici pool key. */
  origin: string;
}

export function endpointOrigin(address: string, port: number, scheme = 'http'): string {
  return `${scheme}://${address.includes(':') ? `[${address}]` : address}:${port}`;
}

/** Round robin over a fixed list; the list is replaced, never mutated, when endpoints change. */
export class EndpointSet {
  private next = 0;
  constructor(readonly endpoints: readonly Endpoint[]) {}

  get size(): number {
    return this.endpoints.length;
  }

  pick(): Endpoint | undefined {
    const n = this.endpoints.length;
    if (n === 0) return undefined;
    const e = this.endpoints[this.next % n];
    this.next = (this.next + 1) % n;
    return e;
  }
}
