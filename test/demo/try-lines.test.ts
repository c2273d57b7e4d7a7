import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/ports.ts';
import {
  checkExpectation,
  parseReadmeTries,
  parseTryBlock,
  TryRunner,
} from '../helpers/try-lines.ts';

// The reader of "try it" lines that the demo and example tests rely on: if it passed lines it
// cannot check, those tests would prove nothing.

let server: Server;
let base: string;
const seen: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push(req.url ?? '');
    res.writeHead(req.url?.endsWith('/missing') ? 404 : 200, {
      'content-type': 'application/json',
    });
    res.end(
      JSON.stringify({ a: 'x', b: [1, 2], c: { 'd-e': 'f' }, host: req.headers.host, n: null }),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('parsing try lines', () => {
  it('reads exports, titles, commands and one-line or multi-line expectations', () => {
    const block = parseTryBlock(
      [
        'noise',
        '── Try it ── (…)',
        '',
        '  export GW=http://127.0.0.1:1 TOKEN=abc',
        '',
        '  # first',
        '  curl -s $GW/a',
        '  # expect 200',
        '',
        '  # second',
        '  curl -s $GW/b | jq -r .a,.b',
        '  # expect:',
        '  #   x',
        '  #   y',
        '',
        '── Edit it ──',
        '  curl -s never/read',
      ].join('\n'),
    );
    expect(block.vars).toEqual({ GW: 'http://127.0.0.1:1', TOKEN: 'abc' });
    expect(block.tries).toEqual([
      { title: 'first', command: 'curl -s $GW/a', expect: '200' },
      { title: 'second', command: 'curl -s $GW/b | jq -r .a,.b', expect: ['x', 'y'] },
    ]);
  });

  it('reads the sh blocks of a README\'s "Try it" section only, and refuses a command without an expectation', () => {
    const readme =
      '# T\n\n```sh\ncurl -s not/this\n```\n\n## Try it\n\ntext\n\n```sh\nexport U=u\n# t\ncurl -s $U\n# expect 1\n```\n\n## Next\n';
    expect(parseReadmeTries(readme).tries).toEqual([
      { title: 't', command: 'curl -s $U', expect: '1' },
    ]);
    expect(() => parseReadmeTries('## Try it\n```sh\ncurl -s x\n```\n')).toThrow(/no expectation/);
  });
});

describe('checking expectations', () => {
  it('compares lines exactly', () => {
    expect(checkExpectation('200', '200\n')).toBeUndefined();
    expect(checkExpectation('200', '201\n')).toMatch(/expected "200"/);
    expect(checkExpectation(['a', 'b'], 'a\nb\n')).toBeUndefined();
    expect(checkExpectation(['a', 'b'], 'a\nc\n')).toBeDefined();
  });

  it('"a mix of …" needs two values at least, and only those named', () => {
    expect(checkExpectation('a mix of v1, v2 and v3', '     12 v1\n      8 v3\n')).toBeUndefined();
    expect(checkExpectation('a mix of v1, v2 and v3', '     20 v1\n')).toMatch(/a mix/);
    expect(checkExpectation('a mix of v1 and v2', '     10 v1\n     10 v9\n')).toMatch(/only/);
  });

  it('the quota phrase needs a 200 first, a 429, and nothing else', () => {
    const q = '200 until the quota is spent, then 429';
    expect(checkExpectation(q, '200 200 429 429 \n')).toBeUndefined();
    expect(checkExpectation(q, '200 200 200 \n')).toBeDefined();
    expect(checkExpectation(q, '429 429 \n')).toBeDefined();
    expect(checkExpectation(q, '200 500 429 \n')).toBeDefined();
  });

  it('the status phrase counts SYNCED proxies', () => {
    const table =
      'config v\n\nPROXY  KIND\ngateway~a  gateway  id  SYNCED  1  1  x\nsidecar~b  sidecar  id  STALE  1  2  x\n';
    expect(checkExpectation('2 proxies, every one SYNCED', table)).toBeDefined();
    expect(checkExpectation('1 proxies, every one SYNCED', table)).toBeDefined();
    expect(
      checkExpectation('2 proxies, every one SYNCED', table.replace('STALE', 'SYNCED')),
    ).toBeUndefined();
  });
});

describe('running try lines', () => {
  it('runs curl, jq paths, loops with sort | uniq -c, sequences and -w formats', async () => {
    const runner = new TryRunner({ U: base });
    try {
      expect(
        await runner.run(`curl -s $U/j | jq -r '.a, .b[1], .c["d-e"], .n, .missing.deeper'`),
      ).toBe('x\n2\nf\nnull\nnull\n');
      expect(
        await runner.run(`for i in $(seq 3); do curl -s $U/j | jq -r .a; done | sort | uniq -c`),
      ).toBe('      3 x\n');
      expect(
        await runner.run(
          `curl -s -o /dev/null -w '%{http_code} %{content_type}\\n' "$U/missing"; echo`,
        ),
      ).toBe('404 application/json\n\n');
      const port = await freePort();
      expect(
        await runner.run(`curl -s -o /dev/null -w '%{http_code}\\n' http://127.0.0.1:${port}/`),
      ).toBe('000\n');
      // Through a proxy: the absolute URL in the request line, the target's authority as Host.
      expect(await runner.run(`curl -s -x $U http://svc.ns:8080/p?q=1 | jq -r .host`)).toBe(
        'svc.ns:8080\n',
      );
      expect(seen).toContain('http://svc.ns:8080/p?q=1');
      await expect(runner.run('curl -s $NOPE/x')).rejects.toThrow(/\$NOPE is not set/);
      await expect(runner.run('wget x')).rejects.toThrow(/cannot run "wget"/);
      await expect(runner.run('curl --fancy x')).rejects.toThrow(/does not know curl --fancy/);
    } finally {
      await runner.close();
    }
  });
});
