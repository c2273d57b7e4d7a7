import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { meshgate } from '../helpers/cli.ts';
import { findPortOffset } from '../helpers/ports.ts';

// `meshgate demo` refuses what it cannot run before it starts any process.

describe('meshgate demo: mistakes', () => {
  it('a bad --base-port is a usage error (exit 2)', async () => {
    const r = await meshgate(['demo', '--base-port', '80']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--base-port 80: expected an integer from 1024/);
  });

  it('a folder that does not exist or does not parse: exit 1, with the errors', async () => {
    expect((await meshgate(['demo', '--dir', '/nonexistent/folder'])).code).toBe(1);
    const dir = await mkdtemp(join(tmpdir(), 'meshgate-demo-broken-'));
    try {
      await writeFile(join(dir, 'bad.yaml'), 'apiVersion: v1\nkind: Service\nmetadata: {}\n');
      const r = await meshgate(['demo', '--dir', dir]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/does not parse/);
      expect(r.stderr).toMatch(/bad\.yaml/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('with --base-port, a port in use is reported before anything starts', async () => {
    const base = 8080 + (await findPortOffset([8080]));
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(base, '127.0.0.1', r));
    try {
      const r = await meshgate(['demo', '--base-port', String(base)]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`port ${base} (the gateway listener, --base-port + 0) is in use`);
      expect(r.stdout).toMatch(/stopped 0 processes/);
    } finally {
      await new Promise((r) => blocker.close(r));
    }
  });
});
