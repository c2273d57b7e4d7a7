// Runs the "try it" lines a demo prints, without a shell: each line is read as the small piece
// of shell it is (curl, jq -r with paths, a `for i in $(seq N)` loop, `| sort | uniq -c`, `echo`,
// `npx meshgate …`), its requests are sent with undici, and its output is what a terminal would
// show. The expectation printed under the line (`# expect …`) is then checked against that
// output. A line or an expectation this reader does not know fails the test: the demo and the
// test stay in step.

import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { REPO } from './cli.ts';

export interface TryLine {
  title: string;
  command: string;
  /** One line (`# expect X`) or the lines of `# expect:` followed by `#   line` lines. */
  expect: string | string[];
}

export interface TryBlock {
  vars: Record<string, string>;
  tries: TryLine[];
}

/** The lines between the `── Try it` heading of a demo's output and the next `── ` heading. */
export function parseTryBlock(output: string): TryBlock {
  const lines = output.split('\n');
  const start = lines.findIndex((l) => l.startsWith('── Try it'));
  if (start < 0) throw new Error(`no "── Try it" block in:\n${output}`);
  const end = lines.findIndex((l, i) => i > start && l.startsWith('── '));
  return parseTries(lines.slice(start + 1, end < 0 ? undefined : end));
}

/** The ```sh blocks of a README's "## Try it" section. */
export function parseReadmeTries(markdown: string): TryBlock {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => l.startsWith('## Try it'));
  if (start < 0) throw new Error('no "## Try it" section');
  const body: string[] = [];
  let fenced = false;
  for (const l of lines.slice(start + 1)) {
    if (!fenced && /^#{1,2} /.test(l)) break;
    if (l.startsWith('```')) {
      fenced = !fenced && l.startsWith('```sh');
      body.push('');
    } else if (fenced) body.push(l);
  }
  return parseTries(body);
}

/**
 * Try lines: `export NAME=VALUE` lines, and commands, each with a `# title` line above it and
 * `# expect X` (or `# expect:` and `#   line` lines) under it.
 */
function parseTries(lines: string[]): TryBlock {
  const vars: Record<string, string> = {};
  const tries: TryLine[] = [];
  let title = '';
  let inExpect = false;
  for (const raw of lines) {
    const line = raw.trim();
    if (line === '') {
      inExpect = false;
      continue;
    }
    const last = tries[tries.length - 1];
    if (line.startsWith('# expect:')) {
      if (!last) throw new Error(`an expectation before any command: ${line}`);
      last.expect = [];
      inExpect = true;
    } else if (line.startsWith('# expect ')) {
      if (!last) throw new Error(`an expectation before any command: ${line}`);
      last.expect = line.slice('# expect '.length);
      inExpect = false;
    } else if (inExpect && line.startsWith('#')) {
      (last?.expect as string[]).push(line.replace(/^#\s+/, ''));
    } else if (line.startsWith('#')) {
      title = line.replace(/^#\s*/, '');
    } else if (/^export \w+=/.test(line)) {
      for (const m of line.slice('export '.length).matchAll(/(\w+)=(\S+)/g))
        vars[m[1] as string] = m[2] as string;
    } else {
      tries.push({ title, command: line, expect: '' });
      title = '';
    }
  }
  for (const t of tries)
    if (t.expect === '' || (Array.isArray(t.expect) && t.expect.length === 0))
      throw new Error(`no expectation under: ${t.command}`);
  return { vars, tries };
}

type Token = { word: string } | { op: ';' | '|' };

/** Shell words: single quotes literal, double quotes and bare words expand $NAME and ${NAME}. */
function tokenize(text: string, vars: Record<string, string>): Token[] {
  const expand = (s: string) =>
    s.replace(/\$\{(\w+)\}|\$(\w+)/g, (_m, a: string | undefined, b: string | undefined) => {
      const name = (a ?? b) as string;
      const value = vars[name];
      if (value === undefined) throw new Error(`$${name} is not set by an export line`);
      return value;
    });
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (c === ' ') {
      i++;
      continue;
    }
    if (c === ';' || c === '|') {
      tokens.push({ op: c });
      i++;
      continue;
    }
    let word = '';
    while (i < text.length && !' ;|'.includes(text[i] as string)) {
      const ch = text[i] as string;
      if (ch === "'") {
        const end = text.indexOf("'", i + 1);
        if (end < 0) throw new Error(`unterminated ' in ${text}`);
        word += text.slice(i + 1, end);
        i = end + 1;
      } else if (ch === '"') {
        const end = text.indexOf('"', i + 1);
        if (end < 0) throw new Error(`unterminated " in ${text}`);
        word += expand(text.slice(i + 1, end));
        i = end + 1;
      } else {
        let j = i;
        while (j < text.length && !` ;|'"`.includes(text[j] as string)) j++;
        word += expand(text.slice(i, j));
        i = j;
      }
    }
    tokens.push({ word });
  }
  return tokens;
}

/** Splits tokens at `op`, into lists of the tokens between. */
function split(tokens: Token[], op: ';' | '|'): Token[][] {
  const parts: Token[][] = [[]];
  for (const t of tokens) {
    if ('op' in t && t.op === op) parts.push([]);
    else (parts[parts.length - 1] as Token[]).push(t);
  }
  return parts.filter((p) => p.length > 0);
}

const words = (tokens: Token[]): string[] =>
  tokens.map((t) => {
    if ('op' in t) throw new Error(`unexpected ${t.op}`);
    return t.word;
  });

export class TryRunner {
  private readonly agent = new Agent({ keepAliveTimeout: 1_000 });

  constructor(private readonly vars: Record<string, string>) {}

  close(): Promise<void> {
    return this.agent.close();
  }

  /** The output of one printed line, as a terminal shows it. */
  async run(line: string): Promise<string> {
    const loop = /^for \w+ in \$\(seq (\d+)\); do (.+?); done(.*)$/.exec(line);
    if (loop) {
      let out = '';
      for (let i = 0; i < Number(loop[1]); i++) out += await this.sequence(loop[2] as string, '');
      const rest = (loop[3] as string).trim();
      if (rest.startsWith('|')) return this.sequence(rest.slice(1), out);
      if (rest.startsWith(';')) return out + (await this.sequence(rest.slice(1), ''));
      if (rest !== '') throw new Error(`cannot read "${rest}" after done`);
      return out;
    }
    return this.sequence(line, '');
  }

  private async sequence(text: string, input: string): Promise<string> {
    let out = '';
    for (const [i, pipeline] of split(tokenize(text, this.vars), ';').entries()) {
      let data = i === 0 ? input : '';
      for (const command of split(pipeline, '|')) data = await this.command(words(command), data);
      out += data;
    }
    return out;
  }

  private async command(argv: string[], input: string): Promise<string> {
    const [name, ...args] = argv;
    if (name === 'curl') return this.curl(args);
    if (name === 'jq') return jq(args, input);
    if (name === 'sort')
      return (
        input
          .split('\n')
          .filter((l) => l !== '')
          .sort()
          .join('\n') + '\n'
      );
    if (name === 'uniq' && args[0] === '-c') return uniqCount(input);
    if (name === 'echo') return `${args.join(' ')}\n`;
    if (name === 'npx' && args[0] === 'meshgate') return cli(args.slice(1));
    if (name === 'node' && args[0]?.endsWith('bin/meshgate.js')) return cli(args.slice(1));
    throw new Error(`the try runner cannot run "${name}"`);
  }

  private async curl(args: string[]): Promise<string> {
    const headers: Record<string, string> = {};
    let method = 'GET';
    let discard = false;
    let format: string | undefined;
    let url: string | undefined;
    let proxy: string | undefined;
    for (let i = 0; i < args.length; i++) {
      const a = args[i] as string;
      const value = () => {
        const v = args[++i];
        if (v === undefined) throw new Error(`curl ${a} needs a value`);
        return v;
      };
      if (a === '-s') continue;
      else if (a === '-o') {
        if (value() !== '/dev/null') throw new Error('curl -o: only /dev/null');
        discard = true;
      } else if (a === '-w') format = value();
      else if (a === '-X') method = value();
      else if (a === '-x') proxy = value();
      else if (a === '-H') {
        const h = value();
        const colon = h.indexOf(':');
        headers[h.slice(0, colon).trim().toLowerCase()] = h.slice(colon + 1).trim();
      } else if (a.startsWith('-')) throw new Error(`the try runner does not know curl ${a}`);
      else url = a;
    }
    if (!url) throw new Error(`curl without a URL: ${args.join(' ')}`);
    // Through a proxy (-x), as curl does for http:// URLs: the absolute URL in the request line.
    const target = new URL(url);
    let res;
    let body: string;
    try {
      const options = {
        method: method as 'GET',
        headers: { host: target.host, ...headers },
        headersTimeout: 15_000,
        bodyTimeout: 15_000,
      };
      res = proxy
        ? await this.agent.request({ ...options, origin: proxy, path: target.href })
        : await request(url, { ...options, dispatcher: this.agent });
      body = await res.body.text();
    } catch {
      // No answer (refused, closed): curl -s prints nothing but its -w, with 000 for the status.
      return (format ?? '')
        .replace(/%\{[a-z_]+\}/g, (v) => (v === '%{http_code}' ? '000' : ''))
        .replace(/\\n/g, '\n');
    }
    let out = discard ? '' : body;
    if (format !== undefined) {
      const contentType = res.headers['content-type'];
      out += format
        .replace(/%\{http_code\}/g, String(res.statusCode))
        .replace(/%\{content_type\}/g, typeof contentType === 'string' ? contentType : '')
        .replace(/%\{redirect_url\}/g, redirectUrl(res.headers.location, url))
        .replace(/\\n/g, '\n');
    }
    return out;
  }
}

function redirectUrl(location: string | string[] | undefined, base: string): string {
  return typeof location === 'string' ? new URL(location, base).href : '';
}

/** `jq -r` with comma-separated paths of `.name`, `[N]` and `["name"]` steps. */
function jq(args: string[], input: string): string {
  if (args[0] !== '-r' || args.length !== 2)
    throw new Error(`the try runner reads only jq -r EXPR`);
  let doc: unknown;
  try {
    doc = JSON.parse(input);
  } catch {
    throw new Error(`jq: the input is not JSON: ${input.slice(0, 300)}`);
  }
  const out: string[] = [];
  for (const path of (args[1] as string).split(',').map((p) => p.trim())) {
    const steps = [...path.matchAll(/\.([A-Za-z_]\w*)|\[(\d+)\]|\["([^"]+)"\]|(\.)/g)];
    if (steps.map((m) => m[0]).join('') !== path || !path.startsWith('.'))
      throw new Error(`jq: the try runner cannot read ${path}`);
    let v: unknown = doc;
    for (const [, name, index, quoted] of steps) {
      if (name === undefined && index === undefined && quoted === undefined) continue; // `.`
      if (v === null || v === undefined) {
        v = null;
        break;
      }
      v =
        index !== undefined
          ? (v as unknown[])[Number(index)]
          : (v as Record<string, unknown>)[(name ?? quoted) as string];
    }
    out.push(
      v === undefined || v === null ? 'null' : typeof v === 'string' ? v : JSON.stringify(v),
    );
  }
  return `${out.join('\n')}\n`;
}

function uniqCount(input: string): string {
  const out: string[] = [];
  let prev: string | undefined;
  let n = 0;
  for (const l of input.split('\n').filter((x) => x !== '')) {
    if (l === prev) n++;
    else {
      if (prev !== undefined) out.push(`${String(n).padStart(7)} ${prev}`);
      prev = l;
      n = 1;
    }
  }
  if (prev !== undefined) out.push(`${String(n).padStart(7)} ${prev}`);
  return out.length > 0 ? `${out.join('\n')}\n` : '';
}

function cli(args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(
      process.execPath,
      [join(REPO, 'bin/meshgate.js'), ...args],
      { cwd: REPO, timeout: 20_000 },
      (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
    ),
  );
}

/**
 * Whether `output` is what `expect` says; the reason when it is not. Besides exact lines, the
 * phrases the demo prints: "a mix of A, B and C" (the counts of a `sort | uniq -c`, two values
 * at least, all of them named), "200 until the quota is spent, then 429", "N proxies, every one
 * SYNCED" (the table of `meshgate status`).
 */
export function checkExpectation(expect: string | string[], output: string): string | undefined {
  const lines = output.replace(/\n+$/, '').split('\n');
  if (Array.isArray(expect))
    return JSON.stringify(lines) === JSON.stringify(expect)
      ? undefined
      : `expected lines ${JSON.stringify(expect)}, got ${JSON.stringify(lines)}`;
  const mix = /^a mix of (.+)$/.exec(expect);
  if (mix) {
    const allowed = (mix[1] as string).split(/, | and /).map((s) => s.trim());
    const counts = lines.map((l) => /^\s*(\d+) (\S+)$/.exec(l));
    if (counts.some((c) => !c)) return `expected uniq -c counts, got ${JSON.stringify(lines)}`;
    const seen = counts.map((c) => (c as RegExpExecArray)[2] as string);
    if (seen.some((v) => !allowed.includes(v)))
      return `expected only ${allowed.join(', ')}, got ${JSON.stringify(lines)}`;
    return seen.length >= 2 ? undefined : `expected a mix, got ${JSON.stringify(lines)}`;
  }
  if (expect === '200 until the quota is spent, then 429') {
    const codes = output.trim().split(/\s+/);
    const ok =
      codes[0] === '200' && codes.includes('429') && codes.every((c) => c === '200' || c === '429');
    return ok ? undefined : `expected 200s then 429s, got ${codes.join(' ')}`;
  }
  const proxies = /^(\d+) proxies, every one SYNCED$/.exec(expect);
  if (proxies) {
    const rows = lines.filter((l) => /^(gateway|sidecar)~/.test(l));
    const ok = rows.length === Number(proxies[1]) && rows.every((r) => / SYNCED /.test(r));
    return ok ? undefined : `expected ${proxies[1]} SYNCED proxies, got:\n${output}`;
  }
  return lines.length === 1 && lines[0] === expect
    ? undefined
    : `expected "${expect}", got ${JSON.stringify(lines)}`;
}
