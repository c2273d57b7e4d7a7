// shared/proxy/undici-core.ts loads undici's dispatchers from their files; they must be the very
// objects the package exports, or an undici upgrade has moved something.

import { execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as undici from 'undici';
import { describe, expect, it } from 'vitest';
import * as core from '../../shared/proxy/undici-core.ts';
import { REPO } from '../helpers/cli.ts';

const CORE = join(REPO, 'shared/proxy/undici-core.ts');

describe('undici-core', () => {
  it('exports the classes and connector of the undici package', () => {
    expect(core.Pool).toBe(undici.Pool);
    expect(core.Agent).toBe(undici.Agent);
    expect(core.Dispatcher).toBe(undici.Dispatcher);
    expect(core.buildConnector).toBe(undici.buildConnector);
  });

  it("gives dispatchers their request methods without loading undici's index (fetch, WebSocket…)", () => {
    // A process of its own: here, this file's `import * as undici` has loaded the index already.
    const script = `
      const core = await import(${JSON.stringify(pathToFileURL(CORE).href)});
      const { createRequire } = await import('node:module');
      const cache = createRequire(import.meta.url).cache;
      const methods = ['request', 'stream', 'pipeline', 'upgrade', 'connect']
        .filter((m) => typeof core.Pool.prototype[m] === 'function');
      const index = Object.keys(cache).some((f) => f.endsWith('/undici/index.js'));
      const fetch = Object.keys(cache).some((f) => f.includes('/undici/lib/web/fetch/'));
      console.log(JSON.stringify({ methods, index, fetch }));`;
    const out = execFileSync(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      { cwd: REPO, encoding: 'utf8' },
    );
    expect(JSON.parse(out)).toEqual({
      methods: ['request', 'stream', 'pipeline', 'upgrade', 'connect'],
      index: false,
      fetch: false,
    });
  });

  it('request() sends method, path, query, headers and body through the given dispatcher', async () => {
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c));
      req.on('end', () =>
        res.end(JSON.stringify({ method: req.method, url: req.url, h: req.headers['x-h'], body })),
      );
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const agent = new core.Agent();
    try {
      const res = await core.request(`${origin}/a/b?c=1`, {
        dispatcher: agent,
        method: 'POST',
        headers: { 'x-h': 'v' },
        body: 'hi',
      });
      expect(res.statusCode).toBe(200);
      expect(await res.body.json()).toEqual({
        method: 'POST',
        url: '/a/b?c=1',
        h: 'v',
        body: 'hi',
      });
      const viaGlobal = await core.request(new URL(`${origin}/g`));
      expect(await viaGlobal.body.json()).toMatchObject({ method: 'GET', url: '/g' });
    } finally {
      await agent.close();
      await new Promise((r) => server.close(r));
    }
  });
});
