// The last denials of this sidecar, newest first, for the admin endpoint /denials: which caller,
// which request, and the policy and rule that decided (or why none did).

export interface Denial {
  at: string;
  requestId: string;
  /** The caller's principal; null for plaintext. */
  peer: string | null;
  sourceIp: string;
  method: string;
  /** The request target as sent. */
  path: string;
  /** The normalized path authorization saw, when it got that far. */
  normalizedPath?: string;
  status: number;
  /** "namespace/name" of the deciding policy, its action and rule index. */
  policy?: string;
  action?: string;
  rule?: number;
  reason: string;
}

export class DenialLog {
  private readonly entries: Denial[] = [];
  private count = 0;

  constructor(private readonly capacity = 100) {}

  record(denial: Denial): void {
    this.count += 1;
    this.entries.push(denial);
    if (this.entries.length > this.capacity) this.entries.shift();
  }

  /** Newest first. */
  recent(): Denial[] {
    return [...this.entries].reverse();
  }

  get total(): number {
    return this.count;
  }
}
