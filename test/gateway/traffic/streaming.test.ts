// Bodies stream end to end with backpressure (DESIGN.md: "no layer buffers a body unless it
// must"): 50 MB up to an upstream that reads slowly, and 50 MB down to a client that reads
// slowly, while the gateway, alone in a child process, keeps its resident memory flat.

import { fork, type ChildProcess } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import type { BoundPort } from '../../../gateway/gateway-server.ts';
import { docs, GATEWAY_CLASS, gatewayYaml, serviceYaml } from '../../helpers/gateway-config.ts';
import { findPortOffset } from '../../helpers/ports.ts';

const BODY_BYTES = 50 * 1024 * 1024;
/** RSS growth allowed while 50 MB pass through: half the body, far above what streaming needs. */
const MAX_RSS_GROWTH = 25 * 1024 * 1024;
/** Live (referenced) buffer bytes allowed in the gateway at any moment of the transfer. */
const MAX_BUFFERED = 8 * 1024 * 1024;
/** The slow side moves this much per tick, 4 ms apart: about 60 MB/s, well below loopback speed. */
const SLOW_STEP = 256 * 1024;
const SLOW_TICK_MS = 4;

const CHUNK = Buffer.alloc(64 * 1024, 'm');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A body of `bytes` bytes, produced only as fast as it is read. */
function generatedBody(bytes: number): Readable {
  let left = bytes;
  return new Readable({
    read() {
      if (left <= 0) return void this.push(null);
      const n = Math.min(left, CHUNK.length);
      left -= n;
      this.push(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n));
    },
  });
}

/** Reads a stream in SLOW_STEP portions, pausing between them; resolves with the byte count. */
function readSlowly(stream: Readable): Promise<number> {
  return new Promise((resolve, reject) => {
    let total = 0;
    let sinceTick = 0;
    stream.on('data', (chunk: Buffer) => {
      total += chunk.length;
      sinceTick += chunk.length;
      if (sinceTick >= SLOW_STEP) {
        sinceTick = 0;
        stream.pause();
        setTimeout(() => stream.resume(), SLOW_TICK_MS);
      }
    });
    stream.once('end', () => resolve(total));
    stream.once('error', reject);
  });
}

/** Upstream: /upload reads slowly and answers with the byte count; /download sends BODY_BYTES. */
function upstreamHandler(req: IncomingMessage, res: ServerResponse): void {
  if (req.url?.startsWith('/upload')) {
    readSlowly(req).then(
      (n) => res.end(JSON.stringify({ received: n })),
      () => res.destroy(),
    );
    return;
  }
  req.resume();
  const bytes = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('bytes') ?? BODY_BYTES);
  res.writeHead(200, {
    'content-type': 'application/octet-stream',
    'content-length': String(bytes),
  });
  generatedBody(bytes).pipe(res);
}

let upstream: Server;
let child: ChildProcess;
let port = 0;
const agent = new Agent({ keepAliveTimeout: 1_000, bodyTimeout: 60_000, headersTimeout: 60_000 });

/** Asks the child for one reply of `type`. */
function ask<T>(message: { type: string; [field: string]: unknown }, type: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: { type: string }) => {
      if (m.type !== type) return;
      child.off('message', onMessage);
      child.off('exit', onExit);
      resolve(m as T);
    };
    const onExit = (code: number | null) => reject(new Error(`gateway child exited (${code})`));
    child.on('message', onMessage);
    child.once('exit', onExit);
    child.send(message);
  });
}

interface Memory {
  rss: number;
  arrayBuffers: number;
}

/**
 * The child's memory after a full GC. Without it, body chunks already passed on but not yet
 * collected pile up between collections (a sawtooth of 30 MB and more in arrayBuffers), which
 * says nothing about buffering; after a GC only what the gateway still holds counts.
 */
const memory = () => ask<Memory>({ type: 'memory', gc: true }, 'memory');

/** Runs `transfer` while sampling the child's memory; returns the transfer's result and the peaks. */
async function withPeakMemory<T>(transfer: Promise<T>): Promise<{ result: T; peak: Memory }> {
  let done = false;
  const peak = await memory();
  const sampler = (async () => {
    while (!done) {
      const m = await memory();
      peak.rss = Math.max(peak.rss, m.rss);
      peak.arrayBuffers = Math.max(peak.arrayBuffers, m.arrayBuffers);
      await sleep(10);
    }
  })();
  try {
    return { result: await transfer, peak };
  } finally {
    done = true;
    await sampler;
  }
}

beforeAll(async () => {
  upstream = createServer(upstreamHandler);
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const config = docs(
    GATEWAY_CLASS,
    gatewayYaml('default', 'gw', '    - { name: http, port: 80, protocol: HTTP }'),
    serviceYaml('default', 'big', (upstream.address() as AddressInfo).port),
    `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: big, namespace: default }
spec:
  parentRefs: [{ name: gw }]
  rules: [{ backendRefs: [{ name: big, port: 80 }] }]`,
  );
  for (let attempt = 1; ; attempt++) {
    child = fork(join(import.meta.dirname, '../../helpers/gateway-child.ts'), [], {
      execArgv: ['--import', 'tsx', '--expose-gc'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const ready = await ask<{ ports: BoundPort[]; problems: string[] }>(
      { type: 'start', config, portOffset: await findPortOffset([80]) },
      'ready',
    );
    if (ready.problems.length === 0) {
      port = (ready.ports[0] as BoundPort).boundPort;
      break;
    }
    child.kill();
    if (attempt >= 5) throw new Error(`gateway child did not start: ${ready.problems.join('; ')}`);
  }
  // Warm up: pools, JIT and buffers get allocated before the baseline is taken.
  await upload(4 * 1024 * 1024);
  await download(4 * 1024 * 1024);
}, 60_000);

afterAll(async () => {
  await agent.close();
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.send({ type: 'stop' });
    await exited;
  }
  upstream?.closeAllConnections();
  await new Promise((r) => upstream?.close(r));
});

async function upload(bytes: number): Promise<number> {
  const res = await request(`http://127.0.0.1:${port}/upload`, {
    dispatcher: agent,
    method: 'PUT',
    headers: { 'content-length': String(bytes), host: 'big.example' },
    body: generatedBody(bytes),
  });
  const answer = (await res.body.json()) as { received: number };
  expect(res.statusCode).toBe(200);
  return answer.received;
}

async function download(bytes: number): Promise<number> {
  const res = await request(`http://127.0.0.1:${port}/download?bytes=${bytes}`, {
    dispatcher: agent,
    headers: { host: 'big.example' },
  });
  expect(res.statusCode).toBe(200);
  return readSlowly(res.body);
}

describe('streaming 50 MB with flat memory', () => {
  it('upload to a slow reader: every byte arrives, RSS grows far less than the body', async () => {
    const baseline = await memory();
    const { result, peak } = await withPeakMemory(upload(BODY_BYTES));
    expect(result).toBe(BODY_BYTES);
    expect(peak.rss - baseline.rss).toBeLessThan(MAX_RSS_GROWTH);
    // Live buffers: a few socket and stream buffers, nowhere near the body.
    expect(peak.arrayBuffers - baseline.arrayBuffers).toBeLessThan(MAX_BUFFERED);
  }, 60_000);

  it('download to a slow reader: every byte arrives, RSS grows far less than the body', async () => {
    const baseline = await memory();
    const { result, peak } = await withPeakMemory(download(BODY_BYTES));
    expect(result).toBe(BODY_BYTES);
    expect(peak.rss - baseline.rss).toBeLessThan(MAX_RSS_GROWTH);
    // Live buffers: a few socket and stream buffers, nowhere near the body.
    expect(peak.arrayBuffers - baseline.arrayBuffers).toBeLessThan(MAX_BUFFERED);
  }, 60_000);
});
