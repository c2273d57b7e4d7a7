// The checks before measuring: a free port, one request on a fresh connection, and waiting until a
// proxy answers exactly as the upstream nginx does (its 200, its body, the path unchanged).

import { createServer } from 'node:net';
import { Client } from 'undici';
import type { ManagedProcess } from './child-processes.ts';
import { UPSTREAM_BODY, UPSTREAM_PATH_HEADER } from './nginx.ts';

export const START_TIMEOUT_MS = 20_000;

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject()));
    });
  });
}

export interface ProbeResult {
  status: number;
  body: string;
  upstreamPath: string | undefined;
}

/** One GET with a fresh connection; the status and body, or the connection error. */
export async function probe(
  url: string,
  headers: Record<string, string> = {},
): Promise<ProbeResult> {
  const u = new URL(url);
  const client = new Client(u.origin, { headersTimeout: 5_000, bodyTimeout: 5_000 });
  try {
    const res = await client.request({
      path: `${u.pathname}${u.search}`,
      method: 'GET',
      headers,
    });
    const echoed = res.headers[UPSTREAM_PATH_HEADER];
    return {
      status: res.statusCode,
      body: await res.body.text(),
      upstreamPath: Array.isArray(echoed) ? echoed.join(',') : echoed,
    };
  } finally {
    await client.destroy();
  }
}

export function lastLines(text: string, n = 3): string {
  return text.trim().split('\n').slice(-n).join(' | ').slice(0, 400);
}

/**
 * Retries `url` until something answers (with `untilOk`, until it answers 200); throws if a
 * process of `procs` exits or time runs out.
 */
export async function waitForAnswer(
  procs: ManagedProcess | readonly ManagedProcess[],
  url: string,
  timeoutMs: number,
  headers: Record<string, string> = {},
  untilOk = false,
): Promise<ProbeResult> {
  const watched = Array.isArray(procs) ? procs : [procs as ManagedProcess];
  const deadline = Date.now() + timeoutMs;
  let last = '';
  let answer: ProbeResult | undefined;
  while (Date.now() < deadline) {
    for (const proc of watched)
      if (proc.hasExited())
        throw new Error(
          `${proc.name} exited with ${await proc.exited}: ${lastLines(proc.output())}`,
        );
    try {
      answer = await probe(url, headers);
      if (!untilOk || answer.status === 200) return answer;
      last = `${answer.status} ${answer.body.slice(0, 120)}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(100);
  }
  if (answer) return answer;
  throw new Error(
    `${watched.map((p) => p.name).join(', ')}: nothing answered ${url} in ${timeoutMs} ms (${last})`,
  );
}

/**
 * The check before measuring: one request through the proxy returns nginx's 200 and body, and
 * reached nginx with the path unchanged. `untilOk` waits out answers other than 200 first (a mesh
 * whose endpoints are still being pushed answers 404 or 503 for a moment).
 */
export async function checkAnswersLikeUpstream(
  procs: ManagedProcess | readonly ManagedProcess[],
  url: string,
  options: { timeoutMs?: number; headers?: Record<string, string>; untilOk?: boolean } = {},
): Promise<void> {
  const { status, body, upstreamPath } = await waitForAnswer(
    procs,
    url,
    options.timeoutMs ?? START_TIMEOUT_MS,
    options.headers,
    options.untilOk,
  );
  const path = new URL(url).pathname;
  if (status !== 200 || body !== UPSTREAM_BODY) {
    throw new Error(
      `GET ${path} answered ${status} with ${JSON.stringify(body.slice(0, 120))}, not the upstream's 200 and body`,
    );
  }
  if (upstreamPath !== path) {
    throw new Error(`GET ${path} reached the upstream as ${upstreamPath ?? '(no echo header)'}`);
  }
}
