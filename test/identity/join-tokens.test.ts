import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IdentityError } from '../../shared/identity/errors.ts';
import { JoinTokenApiError, requestJoinToken } from '../../shared/identity/join-token-client.ts';
import { JoinTokenStore, TOKENS_FILE } from '../../shared/identity/join-tokens.ts';
import { meshgate } from '../helpers/cli.ts';
import { freePort } from '../helpers/ports.ts';

const HOUR = 3_600_000;
const T0 = Date.parse('2026-03-01T12:00:00Z');
const identity = { namespace: 'default', serviceAccount: 'reviews' };

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'meshgate-tokens-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function storeAt(clock: { now: number }): JoinTokenStore {
  return new JoinTokenStore(dir, { now: () => clock.now });
}

describe('JoinTokenStore', () => {
  it('creates mgjt_ tokens of 32 random bytes and redeems them for their identity, many times', async () => {
    const clock = { now: T0 };
    const store = storeAt(clock);
    const created = await store.create({ ...identity, ttlMs: HOUR });
    expect(created.token).toMatch(/^mgjt_[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(created.token.slice(5), 'base64url')).toHaveLength(32);
    expect(created.expiresAt.getTime()).toBe(T0 + HOUR);
    const other = await store.create({ namespace: 'shop', serviceAccount: 'cart' });
    expect(other.token).not.toBe(created.token);

    const expected = { ...identity, expiresAt: new Date(T0 + HOUR) };
    expect(await store.redeem(created.token)).toEqual(expected);
    // Many uses until expiry: a sidecar that restarts presents the same token again.
    expect(await store.redeem(created.token)).toEqual(expected);
    // As read from a token file with a trailing newline.
    expect(await store.redeem(`${created.token}\n`)).toEqual(expected);
    expect(await storeAt(clock).redeem(other.token)).toMatchObject({
      namespace: 'shop',
      serviceAccount: 'cart',
    });
  });

  it('refuses unknown, altered and malformed tokens', async () => {
    const store = storeAt({ now: T0 });
    const { token } = await store.create(identity);
    const last = token.at(-1) === 'A' ? 'B' : 'A';
    for (const bad of [
      `${token.slice(0, -1)}${last}`,
      token.slice(5),
      `mgjt_${'A'.repeat(43)}`,
      'mgjt_short',
      '',
      `${token}x`,
    ])
      expect(await store.redeem(bad)).toBeUndefined();
    expect(await new JoinTokenStore(join(dir, 'empty')).redeem(token)).toBeUndefined();
  });

  it('stores only a SHA-256 hash, in a 0600 file', async () => {
    const store = storeAt({ now: T0 });
    const { token } = await store.create({ ...identity, ttlMs: 2 * HOUR });
    const path = join(dir, TOKENS_FILE);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const text = await readFile(path, 'utf8');
    expect(text).not.toContain(token);
    expect(text).not.toContain(token.slice(5));
    expect(text).not.toContain(token.slice(5, 25));
    expect(JSON.parse(text)).toEqual({
      version: 1,
      tokens: [
        {
          sha256: createHash('sha256').update(token).digest('hex'),
          namespace: 'default',
          serviceAccount: 'reviews',
          createdAt: new Date(T0).toISOString(),
          expiresAt: new Date(T0 + 2 * HOUR).toISOString(),
        },
      ],
    });
  });

  it('expires tokens at their TTL and prunes expired ones', async () => {
    const clock = { now: T0 };
    const store = storeAt(clock);
    const short = await store.create({ ...identity, ttlMs: HOUR });
    const long = await store.create({ ...identity, ttlMs: 24 * HOUR });
    clock.now = T0 + HOUR - 1;
    expect(await store.redeem(short.token)).toBeDefined();
    clock.now = T0 + HOUR;
    expect(await store.redeem(short.token)).toBeUndefined();
    expect(await store.redeem(long.token)).toBeDefined();
    expect(await store.list()).toHaveLength(2);

    // Creating prunes; prune() does too and says how many it removed.
    await store.create({ ...identity, ttlMs: HOUR });
    expect(await store.list()).toHaveLength(2);
    clock.now = T0 + 3 * HOUR;
    expect(await store.prune()).toBe(1);
    expect(await store.prune()).toBe(0);
    expect((await store.list()).map((t) => t.expiresAt)).toEqual([
      new Date(T0 + 24 * HOUR).toISOString(),
    ]);
  });

  it('loses no token when several writers create at once', async () => {
    const created = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        new JoinTokenStore(dir).create({ namespace: 'default', serviceAccount: `sa-${i}` }),
      ),
    );
    expect(await new JoinTokenStore(dir).list()).toHaveLength(12);
    for (const c of created) expect(await new JoinTokenStore(dir).redeem(c.token)).toBeDefined();
  });

  it('takes over a lock left by a writer that died', async () => {
    const lock = join(dir, `${TOKENS_FILE}.lock`);
    await writeFile(lock, '');
    const longAgo = new Date(Date.parse('2020-01-01T00:00:00Z'));
    await utimes(lock, longAgo, longAgo);
    await new JoinTokenStore(dir).create(identity);
    expect(await new JoinTokenStore(dir).list()).toHaveLength(1);
  });

  it('refuses bad identities and TTLs, and never overwrites a store it cannot read', async () => {
    const store = new JoinTokenStore(dir);
    await expect(store.create({ namespace: 'Default', serviceAccount: 'x' })).rejects.toThrow(
      /DNS-1123 label/,
    );
    await expect(store.create({ namespace: 'default', serviceAccount: 'a/b' })).rejects.toThrow(
      /DNS-1123 subdomain/,
    );
    await expect(store.create({ ...identity, ttlMs: 0 })).rejects.toThrow(/positive/);

    await writeFile(join(dir, TOKENS_FILE), '{"not":"a store"}');
    const err = await store.create(identity).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(IdentityError);
    expect((err as IdentityError).code).toBe('MG_ERR_JOIN_TOKEN_STORE');
    expect(await readFile(join(dir, TOKENS_FILE), 'utf8')).toBe('{"not":"a store"}');
  });
});

/** A stand-in for the control plane's admin API: records requests, answers as told. */
async function fakeAdminApi(answer: (body: unknown) => { status: number; body: unknown }): Promise<{
  url: string;
  requests: { method?: string; url?: string; body: unknown }[];
  server: Server;
}> {
  const requests: { method?: string; url?: string; body: unknown }[] = [];
  const server = createServer(async (req: IncomingMessage, res) => {
    let text = '';
    for await (const chunk of req) text += String(chunk);
    const body = JSON.parse(text) as unknown;
    requests.push({ method: req.method, url: req.url, body });
    const reply = answer(body);
    res.writeHead(reply.status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(reply.body));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, requests, server };
}

describe('join token admin API client', () => {
  const servers: Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
  });

  it('posts {namespace, serviceAccount, ttlSeconds} to /tokens and returns {token, expiresAt}', async () => {
    const api = await fakeAdminApi(() => ({
      status: 201,
      body: { token: 'mgjt_x', expiresAt: '2026-03-01T13:00:00Z' },
    }));
    servers.push(api.server);
    const answer = await requestJoinToken(`${api.url}/`, { ...identity, ttlSeconds: 3600 });
    expect(answer).toEqual({ token: 'mgjt_x', expiresAt: '2026-03-01T13:00:00Z' });
    expect(api.requests).toEqual([
      {
        method: 'POST',
        url: '/tokens',
        body: { namespace: 'default', serviceAccount: 'reviews', ttlSeconds: 3600 },
      },
    ]);
  });

  it('says clearly when the control plane is unreachable or refuses', async () => {
    const port = await freePort();
    await expect(
      requestJoinToken(`http://127.0.0.1:${port}`, { ...identity, ttlSeconds: 60 }),
    ).rejects.toThrow(
      /cannot reach the control plane admin API at http:\/\/127.0.0.1:\d+ \(ECONNREFUSED\)/,
    );

    const api = await fakeAdminApi(() => ({
      status: 403,
      body: { type: 'about:blank', title: 'Forbidden', detail: 'token creation is disabled' },
    }));
    servers.push(api.server);
    const err = await requestJoinToken(api.url, { ...identity, ttlSeconds: 60 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(JoinTokenApiError);
    expect((err as Error).message).toBe(
      'the control plane refused: 403 Forbidden: token creation is disabled',
    );
    await expect(requestJoinToken('not a url', { ...identity, ttlSeconds: 60 })).rejects.toThrow(
      /not a URL/,
    );
  });
});

describe('meshgate token create (CLI)', () => {
  it('with --data writes the store and prints only the token', async () => {
    const result = await meshgate([
      'token',
      'create',
      '--namespace',
      'default',
      '--service-account',
      'reviews',
      '--ttl',
      '1h30m',
      '--data',
      dir,
    ]);
    expect(result.stderr).toMatch(/join token for namespace default, service account reviews/);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^mgjt_[A-Za-z0-9_-]{43}\n$/);
    const token = result.stdout.trim();
    const store = new JoinTokenStore(dir);
    expect(await store.redeem(token)).toMatchObject(identity);
    const [entry] = await store.list();
    expect(Date.parse(entry?.expiresAt ?? '') - Date.parse(entry?.createdAt ?? '')).toBe(
      90 * 60_000,
    );
    expect(await readFile(join(dir, TOKENS_FILE), 'utf8')).not.toContain(token);
  });

  it('with --control-plane asks the admin API', async () => {
    const api = await fakeAdminApi(() => ({
      status: 200,
      body: { token: 'mgjt_from_control_plane', expiresAt: '2026-03-02T12:00:00Z' },
    }));
    try {
      const result = await meshgate([
        'token',
        'create',
        '--namespace',
        'shop',
        '--service-account',
        'cart',
        '--control-plane',
        api.url,
      ]);
      expect(result.code).toBe(0);
      expect(result.stdout).toBe('mgjt_from_control_plane\n');
      expect(api.requests[0]?.body).toEqual({
        namespace: 'shop',
        serviceAccount: 'cart',
        ttlSeconds: 86_400,
      });
    } finally {
      await new Promise((resolve) => api.server.close(resolve));
    }
  });

  it('exits 1 with a clear message when the control plane is unreachable, 2 on usage errors', async () => {
    const port = await freePort();
    const down = await meshgate([
      'token',
      'create',
      '--namespace',
      'a',
      '--service-account',
      'b',
      '--control-plane',
      `http://127.0.0.1:${port}`,
    ]);
    expect(down.code).toBe(1);
    expect(down.stdout).toBe('');
    expect(down.stderr).toMatch(
      /cannot reach the control plane admin API .*ECONNREFUSED.*--data DIR/,
    );

    const both = await meshgate([
      'token',
      'create',
      '--namespace',
      'a',
      '--service-account',
      'b',
      '--data',
      dir,
      '--control-plane',
      'http://127.0.0.1:1',
      '--ttl',
      '10x',
    ]);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/not both/);
  });
});
