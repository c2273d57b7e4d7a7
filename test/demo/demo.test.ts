import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO } from '../helpers/cli.ts';
import { checkExpectation, parseTryBlock, TryRunner, type TryBlock } from '../helpers/try-lines.ts';

// `npm start` end to end: `meshgate demo` as a child process (in its own process group, as a
// terminal runs it), on a copy of examples/bookinfo so that the test can edit it. Every line the
// demo prints under "Try it" runs (curl with undici, jq paths, loops) and must print what its
// `# expect` says; an edit of the folder is hot-reloaded; then Ctrl-C (SIGINT to the group)
// stops everything: the demo exits 0 and no process it started is left.
//
// The test holds 127.0.0.1:8080 (the Gateway's listener), 9081 (productpage's app port, the
// targetPort of its Service) and 9099 (the JWKS address in the SecurityPolicy) while the demo
// starts, so the demo must choose other ports and serve a copy of the folder with them: the path
// a user with something on 8080 takes.

let dir: string;
let child: ChildProcess;
let output = '';
let exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
let block: TryBlock;
const held: Server[] = [];
let runner: TryRunner;
/** The process table the demo prints: name → pid. */
const pids = new Map<string, number>();

/** Resolves when the demo's output matches `test` (from `from` on); bounded. */
function waitForOutput(test: RegExp, what: string, timeoutMs: number, from = 0): Promise<string> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const m = test.exec(output.slice(from));
      if (m) {
        done();
        resolve(m[0]);
      }
    };
    const done = () => {
      clearTimeout(timer);
      child.stdout?.off('data', check);
      child.off('exit', onExit);
    };
    const onExit = () => {
      done();
      reject(new Error(`the demo exited before ${what}:\n${output}`));
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`timed out waiting for ${what}:\n${output}`));
    }, timeoutMs);
    child.stdout?.on('data', check);
    child.on('exit', onExit);
    check();
  });
}

/** Processes whose process group is one of `groups`, from /proc (zombies aside). */
function processesInGroups(groups: Set<number>): string[] {
  const found: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // pid (comm) state ppid pgrp …; comm may hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const [state, , pgrp] = fields;
    if (state !== 'Z' && groups.has(Number(pgrp)))
      found.push(`${entry} (group ${pgrp}) ${stat.slice(0, 60)}`);
  }
  return found;
}

/** Listens on 127.0.0.1:`port` if it can (if not, something else holds it: just as good). */
async function hold(port: number): Promise<void> {
  const server = createServer();
  await new Promise<void>((resolve) => {
    server.once('error', () => resolve());
    server.listen(port, '127.0.0.1', () => {
      held.push(server);
      resolve();
    });
  });
}

beforeAll(async () => {
  for (const port of [8080, 9081, 9099]) await hold(port);
  dir = mkdtempSync(join(tmpdir(), 'meshgate-demo-test-'));
  cpSync(join(REPO, 'examples/bookinfo'), join(dir, 'bookinfo'), { recursive: true });
  child = spawn(
    process.execPath,
    [join(REPO, 'bin/meshgate.js'), 'demo', '--dir', join(dir, 'bookinfo')],
    { cwd: REPO, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout?.setEncoding('utf8').on('data', (c: string) => (output += c));
  child.stderr?.setEncoding('utf8').on('data', (c: string) => (output += c));
  exit = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  await waitForOutput(/Ready in [\d.]+ s/, 'the demo to be ready', 100_000);
  const lines = output.split('\n');
  const table = lines.findIndex((l) => l.startsWith('── Processes'));
  for (const l of lines.slice(table + 2)) {
    const row = /^ {2}(.+?) {2,}(\d+) {2,}/.exec(l);
    if (!row) break;
    pids.set(row[1] as string, Number(row[2]));
  }
  block = parseTryBlock(output);
  runner = new TryRunner(block.vars);
}, 120_000);

afterAll(async () => {
  await runner?.close();
  await Promise.all(held.map((s) => new Promise((r) => s.close(r))));
  // Whatever a failed test left: the demo's group and every group it printed.
  for (const pid of [child?.pid, ...pids.values()])
    if (pid)
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // gone
      }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('meshgate demo (npm start)', () => {
  it('prints every process with its pid: control plane, gateway, and a sidecar and an app per instance', () => {
    const instances = [
      'productpage-v1',
      'details-v1',
      'reviews-v1',
      'reviews-v2',
      'reviews-v3',
      'ratings-v1',
    ];
    expect([...pids.keys()].sort()).toEqual(
      [
        'control-plane',
        'gateway',
        ...instances.flatMap((i) => [`${i} sidecar`, `${i} app`]),
        'jwt issuer (this process)',
      ].sort(),
    );
    expect(pids.get('jwt issuer (this process)')).toBe(child.pid);
    expect(block.vars.GW).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    // The ports in the manifests were taken: others were chosen, and the served copy has them.
    expect(block.vars.GW).not.toBe('http://127.0.0.1:8080');
    expect(output).toMatch(/9081→\d+.*, which were taken/);
    expect(output).toMatch(/9099→\d+/);
    expect(block.vars.TOKEN).toMatch(/^ey[\w-]+\.[\w-]+\.[\w-]+$/);
    // What the issue asks the output to show.
    expect(output).toContain('/apis/products/docs');
    expect(output).toMatch(/gateway admin +http:\/\/127\.0\.0\.1:\d+\/ready/);
    const commands = block.tries.map((t) => t.command).join('\n');
    for (const shown of [
      '/productpage',
      '/static/',
      'end-user: jason',
      '/ratings/',
      'Bearer $TOKEN',
      'meshgate status',
    ])
      expect(commands).toContain(shown);
  });

  it('runs every line it prints, and each prints what its "# expect" says', async () => {
    expect(block.tries.length).toBeGreaterThanOrEqual(10);
    const failures: string[] = [];
    for (const t of block.tries) {
      let problem: string | undefined;
      try {
        problem = checkExpectation(t.expect, await runner.run(t.command));
      } catch (err) {
        problem = (err as Error).message;
      }
      if (problem) failures.push(`${t.title}\n  ${t.command}\n  ${problem}`);
    }
    expect(failures).toEqual([]);
  }, 60_000);

  it('hot-reloads an edit of the folder: new weights reach the sidecars; a broken file is reported and not pushed', async () => {
    const canary = block.tries.find((t) => t.command.includes('.reviews.version; done'));
    expect(canary).toBeDefined();
    const routes = join(dir, 'bookinfo/mesh-routes.yaml');
    const text = readFileSync(routes, 'utf8');
    const edited = text
      .replace(/(name: reviews-v1, port: 9080, weight: )\d+/, '$10')
      .replace(/(name: reviews-v2, port: 9080, weight: )\d+/, '$10')
      .replace(/(name: reviews-v3, port: 9080, weight: )\d+/, '$1100');
    expect(edited).not.toBe(text);
    let from = output.length;
    writeFileSync(routes, edited);
    await waitForOutput(/config \w+ loaded and pushed/, 'the reload', 20_000, from);
    let last = '';
    for (let i = 0; i < 50 && last !== '     20 v3\n'; i++) {
      last = await runner.run((canary as { command: string }).command);
      if (last !== '     20 v3\n') await new Promise((r) => setTimeout(r, 100));
    }
    expect(last).toBe('     20 v3\n');

    from = output.length;
    writeFileSync(
      join(dir, 'bookinfo/broken.yaml'),
      'apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: { name: broken, namespace: bookinfo }\nspec:\n  rules: [{ backendRefs: [{ name: 7 }] }]\n',
    );
    const reported = await waitForOutput(/broken\.yaml:\d+:\d+ [^\n]+/, 'the error', 20_000, from);
    expect(reported).toMatch(/broken\.yaml:5:\d+ spec\.rules/);
    await waitForOutput(/config rejected/, 'the rejection', 20_000, from);
    // The last good config keeps serving.
    expect(await runner.run((canary as { command: string }).command)).toBe('     20 v3\n');
    rmSync(join(dir, 'bookinfo/broken.yaml'));
  }, 60_000);

  it('stops every process on Ctrl-C and exits 0', async () => {
    const dataDir = /data {4}(\S+): /.exec(output)?.[1];
    expect(dataDir && existsSync(dataDir)).toBe(true);
    const from = output.length;
    process.kill(-(child.pid as number), 'SIGINT');
    const code = await Promise.race([
      exit,
      new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 40_000)),
    ]);
    expect(code).toEqual({ code: 0, signal: null });
    expect(output.slice(from)).toMatch(/stopped 14 processes in/);
    // Bounded: a helper of the demo's own (tsx's esbuild service) goes when its pipe closes.
    const groups = new Set([...pids.values()]);
    let left = processesInGroups(groups);
    for (let i = 0; i < 40 && left.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      left = processesInGroups(groups);
    }
    expect(left).toEqual([]);
    for (const [name, pid] of pids) {
      let alive = true;
      try {
        process.kill(pid, 0);
      } catch {
        alive = false;
      }
      expect(alive, `${name} (pid ${pid})`).toBe(false);
    }
    expect(existsSync(dataDir as string)).toBe(false);
  }, 60_000);
});
