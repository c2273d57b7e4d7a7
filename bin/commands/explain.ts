import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { getGlobalDispatcher } from 'undici';
import { JwksCache } from '../../gateway/auth/jwks-cache.ts';
import {
  AuthzExplainer,
  AuthzExplainInputError,
  formatAuthzExplanation,
  type AuthzExplainInput,
  type AuthzExplanation,
} from '../../shared/authz/explain-authorization.ts';
import { formatConfigError } from '../../shared/config/errors.ts';
import { loadConfig } from '../../shared/config/load.ts';
import type { FilterIR, Snapshot } from '../../shared/config/snapshot.ts';
import {
  traceRequest,
  TraceInputError,
  type TraceInput,
  type TraceResult,
} from '../../shared/routing/trace-request.ts';
import { UsageError } from './usage-error.ts';

/** What a line of a --requests file may expect; any field left out is not checked. */
interface Expectation {
  matched?: boolean;
  route?: string;
  rule?: number;
  listener?: string;
  status?: number;
}

/** What a line of a --requests file about authorization may expect. */
interface AuthzExpectation {
  allow?: boolean;
  status?: number;
  /** "ns/name rule i" of the policy that decides; "" for none. */
  decidedBy?: string;
}

const AUTHZ_USAGE =
  'usage: meshgate explain DIR --service NS/NAME [--port N] (--from-principal cluster.local/ns/X/sa/Y | --plaintext) [--source-ip IP] [--jwt FILE | --jwt-claims FILE] [--header k=v]... --method M --path P [--json]';

/** `meshgate explain DIR …`: trace requests through the compiled config. */
export async function runExplain(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      gateway: { type: 'string' },
      service: { type: 'string' },
      listener: { type: 'string' },
      port: { type: 'string' },
      host: { type: 'string' },
      path: { type: 'string' },
      method: { type: 'string', default: 'GET' },
      header: { type: 'string', multiple: true, default: [] },
      query: { type: 'string', multiple: true, default: [] },
      requests: { type: 'string' },
      json: { type: 'boolean', default: false },
      'root-namespace': { type: 'string' },
      // Authorization: a request arriving at the Service's workloads.
      'from-principal': { type: 'string' },
      plaintext: { type: 'boolean', default: false },
      'source-ip': { type: 'string' },
      'remote-ip': { type: 'string' },
      jwt: { type: 'string' },
      'jwt-claims': { type: 'string' },
    },
  });
  const dir = positionals[0];
  if (!dir || positionals.length > 1)
    throw new UsageError(
      'usage: meshgate explain DIR (--gateway NS/NAME | --service NS/NAME) --host H --path P …, or --requests FILE',
    );
  const loaded = await loadConfig(
    dir,
    values['root-namespace'] ? { rootNamespace: values['root-namespace'] } : {},
  );
  for (const e of loaded.parse.errors) process.stderr.write(`warning: ${formatConfigError(e)}\n`);

  if (values.requests) return explainFile(loaded.snapshot, values.requests, values.json);

  if (values['from-principal'] !== undefined || values.plaintext)
    return explainAuthorizationCommand(loaded.snapshot, values);

  if (!values.gateway === !values.service)
    throw new UsageError('name exactly one of --gateway NS/NAME or --service NS/NAME');
  if (!values.host || !values.path) throw new UsageError('--host and --path are required');
  const input: TraceInput = {
    ...(values.gateway ? { gateway: values.gateway } : {}),
    ...(values.service ? { service: values.service } : {}),
    ...(values.listener ? { listener: values.listener } : {}),
    ...(values.port ? { port: parsePort(values.port) } : {}),
    host: values.host,
    method: values.method,
    path: values.path,
    headers: pairs(values.header, '--header'),
    query: pairs(values.query, '--query'),
  };
  let result: TraceResult;
  try {
    result = traceRequest(loaded.snapshot, input);
  } catch (err) {
    if (err instanceof TraceInputError) throw new UsageError(err.message);
    throw err;
  }
  process.stdout.write(
    values.json ? `${JSON.stringify(result, null, 2)}\n` : `${formatTrace(result)}\n`,
  );
  return 0;
}

async function explainFile(
  snapshot: Parameters<typeof traceRequest>[0],
  file: string,
  json: boolean,
): Promise<number> {
  const lines = (await readFile(file, 'utf8')).split('\n');
  let failures = 0;
  let count = 0;
  const authz = new AuthzRunner(snapshot);
  for (const [i, raw] of lines.entries()) {
    const text = raw.trim();
    if (!text || text.startsWith('#') || text.startsWith('//')) continue;
    count++;
    const where = `${file}:${i + 1}`;
    let line: TraceInput & { expect?: Expectation };
    try {
      line = JSON.parse(text) as TraceInput & { expect?: Expectation };
    } catch (err) {
      process.stdout.write(
        `${json ? JSON.stringify({ line: i + 1, error: `invalid JSON: ${(err as Error).message}` }) : `${where}: invalid JSON: ${(err as Error).message}`}\n`,
      );
      failures++;
      continue;
    }
    if (isAuthzLine(line)) {
      if (!(await authz.line(line, i + 1, where, json))) failures++;
      continue;
    }
    let result: TraceResult;
    try {
      result = traceRequest(snapshot, { ...line, method: line.method ?? 'GET' });
    } catch (err) {
      if (!(err instanceof TraceInputError)) throw err;
      process.stdout.write(
        `${json ? JSON.stringify({ line: i + 1, error: err.message }) : `${where}: ${err.message}`}\n`,
      );
      failures++;
      continue;
    }
    const mismatches = line.expect ? checkExpectation(line.expect, result) : [];
    if (mismatches.length > 0) failures++;
    if (json)
      process.stdout.write(
        `${JSON.stringify({ line: i + 1, ...result, ...(line.expect ? { expectation: { ok: mismatches.length === 0, mismatches } } : {}) })}\n`,
      );
    else {
      const head = `${where} ${result.request.method} ${line.host}${line.path}`;
      const outcome = result.matched
        ? `→ ${result.route} rule ${result.rule}${result.listener ? ` (listener ${result.listener})` : ''}`
        : `→ no match (${result.response?.status ?? 404})`;
      const verdict = line.expect
        ? mismatches.length === 0
          ? ' ✓'
          : ` ✗ ${mismatches.join('; ')}`
        : '';
      process.stdout.write(`${head} ${outcome}${verdict}\n`);
    }
  }
  await authz.close();
  if (!json) process.stdout.write(`${count} requests, ${failures} failed\n`);
  return failures > 0 ? 1 : 0;
}

// --- authorization (explain an inbound decision) ---

type AuthzLine = Omit<AuthzExplainInput, 'jwtClaims'> & {
  jwtClaims?: AuthzExplainInput['jwtClaims'];
  expect?: AuthzExpectation;
};

function isAuthzLine(line: object): line is AuthzLine {
  return 'fromPrincipal' in line || 'plaintext' in line;
}

/** One explainer (and one JWKS cache) for every request of a run. */
class AuthzRunner {
  private jwksUsed = false;
  readonly explainer: AuthzExplainer;

  constructor(snapshot: Snapshot) {
    const cache = new JwksCache({
      now: Date.now,
      cooldownMs: 30_000,
      fetchTimeoutMs: 5000,
      onError: (uri, err) => process.stderr.write(`warning: JWKS ${uri}: ${err.message}\n`),
    });
    this.explainer = new AuthzExplainer(snapshot, {
      jwks: {
        resolver: (uri, maxAgeMs) => {
          this.jwksUsed = true;
          return cache.resolver(uri, maxAgeMs);
        },
      },
    });
  }

  /** Runs one --requests line; false when it fails (bad input or an unmet expectation). */
  async line(line: AuthzLine, n: number, where: string, json: boolean): Promise<boolean> {
    let result: AuthzExplanation;
    try {
      result = await this.explainer.explain(line);
    } catch (err) {
      if (!(err instanceof AuthzExplainInputError)) throw err;
      process.stdout.write(
        `${json ? JSON.stringify({ line: n, error: err.message }) : `${where}: ${err.message}`}\n`,
      );
      return false;
    }
    const mismatches = line.expect ? checkAuthzExpectation(line.expect, result) : [];
    if (json)
      process.stdout.write(
        `${JSON.stringify({ line: n, ...result, ...(line.expect ? { expectation: { ok: mismatches.length === 0, mismatches } } : {}) })}\n`,
      );
    else {
      const verdict = line.expect
        ? mismatches.length === 0
          ? ' ✓'
          : ` ✗ ${mismatches.join('; ')}`
        : '';
      process.stdout.write(
        `${where} ${result.request.method} ${result.request.path} at ${result.service} from ${result.request.caller} → ${result.plaintextRefused ? 'REFUSED' : result.allow ? 'ALLOW' : 'DENY'} ${result.status} (${result.reason})${verdict}\n`,
      );
    }
    return mismatches.length === 0;
  }

  /** Keep-alive sockets to a JWKS server would hold the process open for seconds. */
  async close(): Promise<void> {
    if (this.jwksUsed) await getGlobalDispatcher().close();
  }
}

function checkAuthzExpectation(e: AuthzExpectation, r: AuthzExplanation): string[] {
  const out: string[] = [];
  if (e.allow !== undefined && e.allow !== r.allow)
    out.push(`expected allow=${e.allow}, got ${r.allow} (${r.reason})`);
  if (e.status !== undefined && e.status !== r.status)
    out.push(`expected status ${e.status}, got ${r.status}`);
  if (e.decidedBy !== undefined) {
    const got = r.decidedBy ? `${r.decidedBy.policy} rule ${r.decidedBy.rule}` : '';
    if (got !== e.decidedBy)
      out.push(`expected decidedBy ${e.decidedBy || 'none'}, got ${got || 'none'}`);
  }
  return out;
}

async function explainAuthorizationCommand(
  snapshot: Snapshot,
  values: {
    service?: string | undefined;
    gateway?: string | undefined;
    port?: string | undefined;
    host?: string | undefined;
    path?: string | undefined;
    method: string;
    header: string[];
    json: boolean;
    'from-principal'?: string | undefined;
    plaintext: boolean;
    'source-ip'?: string | undefined;
    'remote-ip'?: string | undefined;
    jwt?: string | undefined;
    'jwt-claims'?: string | undefined;
  },
): Promise<number> {
  if (values.gateway || !values.service)
    throw new UsageError(
      `an authorization decision is explained for --service NS/NAME\n${AUTHZ_USAGE}`,
    );
  if (values['from-principal'] !== undefined && values.plaintext)
    throw new UsageError('give either --from-principal or --plaintext, not both');
  if (values.jwt !== undefined && values['jwt-claims'] !== undefined)
    throw new UsageError('give either --jwt or --jwt-claims, not both');
  if (!values.path) throw new UsageError(`--path is required\n${AUTHZ_USAGE}`);
  const input: AuthzExplainInput = {
    service: values.service,
    ...(values.port ? { port: parsePort(values.port) } : {}),
    ...(values['from-principal'] !== undefined
      ? { fromPrincipal: values['from-principal'] }
      : { plaintext: true }),
    ...(values['source-ip'] !== undefined ? { sourceIp: values['source-ip'] } : {}),
    ...(values['remote-ip'] !== undefined ? { remoteIp: values['remote-ip'] } : {}),
    ...(values.host !== undefined ? { host: values.host } : {}),
    method: values.method,
    path: values.path,
    headers: lowerKeys(pairs(values.header, '--header')),
  };
  if (values.jwt !== undefined) input.jwt = (await readInputFile(values.jwt, '--jwt')).trim();
  if (values['jwt-claims'] !== undefined) {
    const text = await readInputFile(values['jwt-claims'], '--jwt-claims');
    try {
      input.jwtClaims = JSON.parse(text) as AuthzExplainInput['jwtClaims'];
    } catch (err) {
      throw new UsageError(
        `--jwt-claims ${values['jwt-claims']}: not JSON (${(err as Error).message})`,
      );
    }
  }
  const runner = new AuthzRunner(snapshot);
  let result: AuthzExplanation;
  try {
    result = await runner.explainer.explain(input);
  } catch (err) {
    if (err instanceof AuthzExplainInputError) throw new UsageError(err.message);
    throw err;
  } finally {
    await runner.close();
  }
  process.stdout.write(
    values.json ? `${JSON.stringify(result, null, 2)}\n` : `${formatAuthzExplanation(result)}\n`,
  );
  return 0;
}

async function readInputFile(file: string, flag: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`${flag} ${file}: ${(err as Error).message}`);
  }
}

function lowerKeys(h: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) out[k.toLowerCase()] = v;
  return out;
}

function checkExpectation(e: Expectation, r: TraceResult): string[] {
  const out: string[] = [];
  if (e.matched !== undefined && e.matched !== r.matched)
    out.push(`expected matched=${e.matched}, got ${r.matched}`);
  if (e.route !== undefined && e.route !== r.route)
    out.push(`expected route ${e.route}, got ${r.route ?? 'none'}`);
  if (e.rule !== undefined && e.rule !== r.rule)
    out.push(`expected rule ${e.rule}, got ${r.rule ?? 'none'}`);
  if (e.listener !== undefined && e.listener !== r.listener)
    out.push(`expected listener ${e.listener}, got ${r.listener ?? 'none'}`);
  if (e.status !== undefined && e.status !== (r.response?.status ?? 200))
    out.push(`expected status ${e.status}, got ${r.response?.status ?? 200}`);
  return out;
}

function parsePort(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535)
    throw new UsageError(`--port ${v}: expected a port number`);
  return n;
}

function pairs(list: string[], flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new UsageError(`${flag} ${item}: expected name=value`);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

function describeFilter(f: FilterIR): string {
  switch (f.type) {
    case 'RequestHeaderModifier':
    case 'ResponseHeaderModifier': {
      const h = f.headers;
      const parts = [
        ...h.set.map((x) => `set ${x.name}: ${x.value}`),
        ...h.add.map((x) => `add ${x.name}: ${x.value}`),
        ...h.remove.map((x) => `remove ${x}`),
      ];
      return `${f.type} (${parts.join(', ')})`;
    }
    case 'RequestRedirect':
      return `RequestRedirect ${f.statusCode}${f.scheme ? ` scheme=${f.scheme}` : ''}${f.hostname ? ` host=${f.hostname}` : ''}${f.port ? ` port=${f.port}` : ''}${f.path ? ` ${f.path.type}=${f.path.value}` : ''}`;
    case 'URLRewrite':
      return `URLRewrite${f.hostname ? ` host=${f.hostname}` : ''}${f.path ? ` ${f.path.type}=${f.path.value}` : ''}`;
    case 'RequestMirror':
      return `RequestMirror to ${f.backend.namespace}/${f.backend.name}:${f.backend.port} (${f.fraction.numerator}/${f.fraction.denominator})`;
    case 'CORS':
      return `CORS origins ${f.allowOrigins.join(', ') || 'none'}`;
    case 'DirectResponse':
      return `answers ${f.status}: ${f.message}`;
  }
}

function formatTrace(r: TraceResult): string {
  const lines: string[] = [];
  const target = r.gateway
    ? `Gateway ${r.gateway} port ${r.port}`
    : `Service ${r.service} port ${r.port} (mesh)`;
  lines.push(
    `${r.request.method} ${r.request.host} ${r.request.path}${r.request.query ? `?${r.request.query}` : ''} at ${target}`,
  );
  for (const s of r.skipped)
    lines.push(
      `  skipped ${s.route} rule ${s.rule}${s.ruleName ? ` (${s.ruleName})` : ''} match ${s.match}: ${s.reasons.join('; ')}`,
    );
  if (!r.matched) {
    lines.push(`  no match: ${r.reasons.join('; ') || 'no rule matches'}`);
    if (r.response) lines.push(`  response: ${r.response.status} ${r.response.reason}`);
    return lines.join('\n');
  }
  lines.push(
    `  matched ${r.route} rule ${r.rule}${r.ruleName ? ` (${r.ruleName})` : ''} match ${r.match}${r.listener ? ` on listener ${r.listener}` : ''}`,
  );
  for (const reason of r.reasons) lines.push(`  note: ${reason}`);
  for (const f of r.filters) lines.push(`  filter ${describeFilter(f)}`);
  for (const [kind, p] of Object.entries(r.policies))
    lines.push(`  policy ${kind}: ${p.sources.join(' + ')}`);
  for (const b of r.backends) {
    const eps = b.endpoints.map((e) => `${e.address}:${e.port}`).join(', ');
    lines.push(
      `  backend ${b.namespace}/${b.name}:${b.port} weight ${b.weight} (${b.percent}%)${b.invalid ? ` INVALID ${b.invalid}` : ''} endpoints: ${eps || 'none'}`,
    );
  }
  if (r.response) lines.push(`  response: ${r.response.status} ${r.response.reason}`);
  return lines.join('\n');
}
