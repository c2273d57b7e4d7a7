// Requests in flight through one sidecar, for the drain on SIGTERM: stop accepting, let these
// finish within the drain period.

export class InflightRequests {
  private n = 0;
  private waiters: (() => void)[] = [];

  get count(): number {
    return this.n;
  }

  /** Counts a request; the returned function ends it (once). */
  begin(): () => void {
    this.n++;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.n--;
      if (this.n === 0) for (const w of this.waiters.splice(0)) w();
    };
  }

  /** Resolves true when nothing is in flight, false when `timeoutMs` passed first. */
  async idle(timeoutMs: number): Promise<boolean> {
    if (this.n === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const idle = await Promise.race([
      new Promise<boolean>((resolve) => this.waiters.push(() => resolve(true))),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
    ]);
    clearTimeout(timer);
    return idle;
  }
}
