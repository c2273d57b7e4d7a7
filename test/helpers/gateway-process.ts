// Runs `meshgate gateway` as a real process for tests: its JSON log lines parsed as they come,
// its admin API on a port it picks itself (--admin-port 0, read from the log), and a cleanup
// that kills whatever is left (the process group: the primary and its workers).

import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { Pool } from 'undici';
import { afterEach } from 'vitest';
import { REPO } from './cli.ts';
import type { ConfigFolder } from './config-folder.ts';
import type { EchoServer } from './echo-server.ts';
import { findPortOffset } from './ports.ts';

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const running = new Set<GatewayProcess>();

export class GatewayProcess {
  readonly logs: LogLine[] = [];
  stderr = '';
  readonly exited: Promise<Exit>;
  private exit: Exit | undefined;
  private adminPool: Pool | undefined;
  private readonly waiters = new Set<() => void>();

  constructor(private readonly child: ChildProcess) {
    let buffered = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        // Only the supervisor's lines matter here; anything else (a worker's output) is skipped.
        try {
          const parsed = JSON.parse(line) as LogLine;
          if (typeof parsed.msg === 'string') this.logs.push(parsed);
        } catch {
          continue;
        }
      }
      this.wake();
    });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        running.delete(this);
        void this.adminPool?.destroy();
        this.wake();
        resolve(this.exit);
      }),
    );
  }

  get pid(): number {
    return this.child.pid as number;
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Resolves with the first log line (from the start) that satisfies `test`. */
  waitForLog(test: (l: LogLine) => boolean, what: string, timeoutMs = 20_000): Promise<LogLine> {
    return this.waitFor(() => this.logs.find(test), what, timeoutMs);
  }

  /** Resolves when `probe` returns a value; rejects when the process exits or after `timeoutMs`. */
  private waitFor<T>(probe: () => T | undefined, what: string, timeoutMs: number): Promise<T> {
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined = undefined;
      const check = () => {
        const found = probe();
        if (found !== undefined) done(() => resolve(found));
        else if (this.exit)
          done(() =>
            reject(
              new Error(
                `gateway exited (${JSON.stringify(this.exit)}) before ${what}\n${this.describe()}`,
              ),
            ),
          );
      };
      const done = (settle: () => void) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        settle();
      };
      timer = setTimeout(
        () => done(() => reject(new Error(`timed out waiting for ${what}\n${this.describe()}`))),
        timeoutMs,
      );
      this.waiters.add(check);
      check();
    });
  }

  describe(): string {
    return `logs:\n${this.logs.map((l) => JSON.stringify(l)).join('\n')}\nstderr:\n${this.stderr}`;
  }

  async adminPort(): Promise<number> {
    const line = await this.waitForLog((l) => l.msg === 'admin API listening', 'the admin API');
    return line.port as number;
  }

  /** GET on the admin API. */
  async admin<T = Record<string, unknown>>(path: string): Promise<{ status: number; body: T }> {
    if (!this.adminPool) this.adminPool = new Pool(`http://127.0.0.1:${await this.adminPort()}`);
    const res = await this.adminPool.request({ method: 'GET', path });
    return { status: res.statusCode, body: (await res.body.json()) as T };
  }

  /** GET on the admin API, the body as text (/metrics). */
  async adminText(path: string): Promise<{ status: number; contentType: string; body: string }> {
    if (!this.adminPool) this.adminPool = new Pool(`http://127.0.0.1:${await this.adminPort()}`);
    const res = await this.adminPool.request({ method: 'GET', path });
    return {
      status: res.statusCode,
      contentType: String(res.headers['content-type']),
      body: await res.body.text(),
    };
  }

  /** Polls /ready until it answers 200 (bounded). */
  async ready(tries = 400): Promise<{ ready: true; version: string }> {
    let last: unknown;
    for (let i = 0; i < tries; i++) {
      if (this.exit) break;
      const r = await this.admin<{ ready: boolean; version: string }>('/ready');
      if (r.status === 200) return r.body as { ready: true; version: string };
      last = r.body;
      await sleep(50);
    }
    throw new Error(`/ready did not become 200: ${JSON.stringify(last)}\n${this.describe()}`);
  }

  signal(signal: NodeJS.Signals): void {
    if (!this.exit) this.child.kill(signal);
  }

  /** SIGTERM and wait for the exit. */
  async stop(): Promise<Exit> {
    this.signal('SIGTERM');
    return this.exited;
  }

  /** Kills the primary and its workers (one process group) if anything is still running. */
  async kill(): Promise<void> {
    await this.adminPool?.destroy();
    try {
      process.kill(-this.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    await this.exited;
  }
}

/** Starts `meshgate gateway …` with --admin-port 0 and --access-log off unless given. */
export function startGateway(args: string[]): GatewayProcess {
  const extra = [
    ...(args.includes('--admin-port') ? [] : ['--admin-port', '0']),
    ...(args.includes('--access-log') ? [] : ['--access-log', 'off']),
  ];
  const child = spawn(
    process.execPath,
    [join(REPO, 'bin/meshgate.js'), 'gateway', ...args, ...extra],
    // Its own process group, so the cleanup can kill the workers too.
    { cwd: REPO, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const p = new GatewayProcess(child);
  running.add(p);
  return p;
}

/** For afterEach: kills every gateway a test left running. */
export async function killGateways(): Promise<void> {
  await Promise.all([...running].map((p) => p.kill()));
}

/** What a gateway process test starts besides the gateway: its upstream and config folder. */
export interface GatewayTestFixtures {
  upstream?: EchoServer;
  folder?: ConfigFolder;
}

/**
 * Holds a test file's upstream and config folder, and after each test kills every gateway, closes
 * the upstream and removes the folder. Call once at the top of the file.
 */
export function gatewayTestFixtures(): GatewayTestFixtures {
  const fx: GatewayTestFixtures = {};
  afterEach(async () => {
    await killGateways();
    await fx.upstream?.close();
    await fx.folder?.remove();
    delete fx.upstream;
    delete fx.folder;
  });
  return fx;
}

/** Whether a process id is alive (signal 0 checks without sending). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Calls `probe` until it returns something other than undefined; bounded. */
export async function poll<T>(
  probe: () => Promise<T | undefined>,
  what: string,
  tries = 200,
  intervalMs = 50,
): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = await probe();
    if (v !== undefined) return v;
    await sleep(intervalMs);
  }
  throw new Error(`gave up waiting for ${what}`);
}

/**
 * `meshgate gateway --config DIR` for a folder whose Gateway listens on 8080, moved onto a free
 * port with --port-offset; `url` is that listener's base URL.
 */
export async function startGatewayOn8080(
  dir: string,
  extraArgs: string[] = [],
): Promise<{ gw: GatewayProcess; url: string }> {
  const offset = await findPortOffset([8080]);
  const gw = startGateway(['--config', dir, '--port-offset', String(offset), ...extraArgs]);
  return { gw, url: `http://127.0.0.1:${8080 + offset}` };
}
