// nginx and wrk come from Debian's packages; installed here when missing (root only).

import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

export interface Tools {
  nginx: string;
  wrk: string;
  taskset: string | undefined;
}

/** Finds an executable on PATH, or in the sbin folders that a non-root PATH often lacks. */
export function findExecutable(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

function aptGet(args: string[], log: (line: string) => void): boolean {
  log(`$ apt-get ${args.join(' ')}`);
  const r = spawnSync('apt-get', args, {
    // DEBIAN_FRONTEND: no prompts; the package's own service start is not something we use
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    // to stderr: stdout carries the results table
    stdio: ['ignore', 2, 2],
  });
  return r.status === 0;
}

/**
 * Returns the tools' paths, installing the Debian packages `nginx` and `wrk` when missing.
 * Throws with the reason when they are missing and cannot be installed.
 */
export function ensureTools(log: (line: string) => void): Tools {
  const missing = (['nginx', 'wrk'] as const).filter((t) => !findExecutable(t));
  if (missing.length > 0) {
    if (process.getuid?.() !== 0) {
      throw new Error(
        `${missing.join(' and ')} missing; run: apt-get install -y ${missing.join(' ')}`,
      );
    }
    log(`bench: ${missing.join(' and ')} not found, installing from Debian's packages`);
    // a machine whose package lists are stale or absent needs one update first
    if (!aptGet(['install', '-y', '-q', ...missing], log)) {
      if (!aptGet(['update', '-q'], log) || !aptGet(['install', '-y', '-q', ...missing], log)) {
        throw new Error(`apt-get install -y ${missing.join(' ')} failed`);
      }
    }
  }
  const nginx = findExecutable('nginx');
  const wrk = findExecutable('wrk');
  if (!nginx || !wrk) throw new Error('nginx or wrk still missing after apt-get install');
  return { nginx, wrk, taskset: findExecutable('taskset') };
}

/** First line of `nginx -v` / `wrk -v`, for the report header. */
export function toolVersion(command: string, args: string[]): string {
  const r = spawnSync(command, args, { encoding: 'utf8' });
  const text = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
  return text.split('\n')[0] ?? 'unknown';
}
