// The end of one sidecar request, whichever way it ends (response finished, connection closed,
// tunnel closed): counted out of the in-flight set, measured, and logged, exactly once.

import type { InflightRequests } from './inflight.ts';
import type { SidecarRequest } from './request-context.ts';
import { requestCounts } from './sidecar-metrics.ts';

export interface TrackDeps<R extends SidecarRequest> {
  direction: 'inbound' | 'outbound';
  inflight: InflightRequests;
  now(): number;
  /** The access log line (a no-op when the log is off). */
  log(r: R, status: number, ms: number): void;
}

/** Counts `r` in flight until its response ends; returns the function that ends it early. */
export function trackRequest<R extends SidecarRequest>(r: R, deps: TrackDeps<R>): () => void {
  const end = deps.inflight.begin();
  const counts = requestCounts[deps.direction];
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    end();
    const upgraded = r.res.statusCode === 101;
    const status = upgraded ? 101 : r.res.headersSent ? r.res.statusCode : 0;
    if (!upgraded && !r.res.writableFinished && r.flags === '-') r.flags = 'DC';
    const ms = deps.now() - r.startedAt;
    counts.record(status, r.flags, ms / 1000);
    deps.log(r, status, ms);
  };
  r.res.once('finish', finish);
  r.res.once('close', finish);
  return finish;
}
