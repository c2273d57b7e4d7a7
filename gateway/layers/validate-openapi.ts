import type { Http2ServerRequest } from 'node:http2';
import { PassThrough, Readable } from 'node:stream';
import { ProxyError, type ProxyErrorCode } from '../../shared/proxy/errors.ts';
import { openapiViolations } from '../../shared/telemetry/metrics.ts';
import {
  isJsonMediaType,
  type CompiledApi,
  type CompiledBody,
  type CompiledMedia,
  type CompiledOperation,
} from '../openapi/compiled-api.ts';
import { checkParameters, type Violation } from '../openapi/request-checks.ts';
import { describeSchemaError } from '../openapi/schema-validators.ts';
import type { OpenApiBinding } from '../openapi/view-apis.ts';
import type { EdgeRequest } from '../request-context.ts';

/**
 * ApiDefinition enforcement, for rules whose route has one in ReportOnly or Enforce (others
 * skip at once): the operation by path template and method, its path, query, header and cookie
 * parameters, and a JSON body (read up to maxBodyBytes, then sent upstream as read). Enforce
 * answers the first violation (400; 404 unknown path, 405 known path with another method, 413
 * body over the cap); ReportOnly forwards and counts each in meshgate_openapi_violations_total.
 */
export function validateOpenApi(r: EdgeRequest): void | Promise<void> {
  const bindings = r.rule?.openapi;
  if (!bindings) return;
  for (const binding of bindings) {
    const rel = relativePath(binding.prefix, r.path);
    if (rel === undefined) continue;
    const api = binding.api.compiled();
    return api ? checkRequest(r, binding, api, rel) : withoutDocument(r, binding, rel);
  }
}

/** The path under the API's base path ("/" for the base itself), or undefined outside it. */
function relativePath(prefix: string, path: string): string | undefined {
  if (prefix === '') return path;
  if (path === prefix) return '/';
  return path.startsWith(prefix) && path.charCodeAt(prefix.length) === 47 /* / */
    ? path.slice(prefix.length)
    : undefined;
}

/**
 * No document. A broken one (Enforce only reaches the view then) fails closed with 500. A URL
 * document not fetched yet, or failing: Enforce waits for a fetch under way, then fails closed
 * (503) rather than let unchecked requests through; ReportOnly has nothing to report.
 */
async function withoutDocument(r: EdgeRequest, binding: OpenApiBinding, rel: string) {
  if (binding.mode !== 'Enforce') return;
  const invalid = binding.api.invalid;
  if (invalid)
    throw new ProxyError('MG_ERR_INVALID_CONFIG', `ApiDefinition ${binding.api.key}: ${invalid}`);
  await binding.api.settledDocument();
  const api = binding.api.compiled();
  if (api) return checkRequest(r, binding, api, rel);
  throw new ProxyError(
    'MG_ERR_API_UNAVAILABLE',
    `ApiDefinition ${binding.api.key}: ${binding.api.unavailableReason}`,
    {
      headers: { 'retry-after': '5' },
      publicDetail: 'The API definition of this route is not loaded yet; try again shortly.',
    },
  );
}

function checkRequest(
  r: EdgeRequest,
  binding: OpenApiBinding,
  api: CompiledApi,
  rel: string,
): void | Promise<void> {
  const enforce = binding.mode === 'Enforce';
  const found = api.lookup(r.method, rel);
  if (found.kind === 'no-path')
    return reject(r, binding, 'unknown', 'MG_ERR_NO_OPERATION', {
      location: 'operation',
      message: `${r.method} ${r.path}: the API has no path ${rel}`,
    });
  if (found.kind === 'method-not-allowed') {
    const allowed = found.allowed.includes('GET') ? [...found.allowed, 'HEAD'] : found.allowed;
    return reject(
      r,
      binding,
      'unknown',
      'MG_ERR_METHOD_NOT_ALLOWED',
      {
        location: 'operation',
        message: `${r.method} is not an operation of ${found.template} (it has ${found.allowed.join(', ')})`,
      },
      { allow: [...new Set(allowed)].join(', ') },
    );
  }
  const op = found.operation;
  if (op.invalid) {
    // A schema that does not compile: enforcing would mean guessing, so fail closed.
    if (enforce) throw new ProxyError('MG_ERR_INVALID_CONFIG', op.invalid);
    return;
  }
  const violations = checkParameters(
    op,
    { pathParams: found.params, query: new URLSearchParams(r.query), header: (n) => header(r, n) },
    !enforce,
  );
  for (const v of violations) reject(r, binding, op.id, 'MG_ERR_INVALID_REQUEST', v);
  if (op.body) return checkBody(r, binding, op, op.body);
}

/** Counts a violation; when enforcing, answers with it. */
function reject(
  r: EdgeRequest,
  binding: OpenApiBinding,
  operation: string,
  code: ProxyErrorCode,
  v: Violation,
  headers?: Record<string, string>,
): void {
  openapiViolations.inc({ api: binding.api.key, operation, location: v.location });
  if (binding.mode === 'Enforce')
    throw new ProxyError(code, v.message, headers ? { headers } : undefined);
}

function checkBody(
  r: EdgeRequest,
  binding: OpenApiBinding,
  op: CompiledOperation,
  body: CompiledBody,
): void | Promise<void> {
  if (!hasBody(r)) {
    if (body.required)
      reject(r, binding, op.id, 'MG_ERR_INVALID_REQUEST', {
        location: 'body',
        message: 'body: is required',
      });
    return;
  }
  const type = (header(r, 'content-type')?.split(';')[0] ?? '').trim().toLowerCase();
  const media = mediaFor(body.media, type);
  if (!media) {
    if (body.media.length > 0)
      reject(r, binding, op.id, 'MG_ERR_INVALID_REQUEST', {
        location: 'header',
        message: `header.content-type: ${type ? `"${type}"` : 'none given'}; the operation takes ${body.media.map((m) => m.range).join(', ')}`,
      });
    return;
  }
  // Only a JSON body with a schema is read; anything else streams through untouched.
  if (!media.validate || !isJsonMediaType(type)) return;
  return readAndCheck(r, binding, op, body, media);
}

async function readAndCheck(
  r: EdgeRequest,
  binding: OpenApiBinding,
  op: CompiledOperation,
  body: CompiledBody,
  media: CompiledMedia,
): Promise<void> {
  const declared = Number(header(r, 'content-length') ?? NaN);
  const read = await readBody(r.req, binding.maxBodyBytes, declared);
  if (!read.complete) {
    // Enforce answers 413; ReportOnly sends what was read, then the rest, unchecked.
    if (binding.mode !== 'Enforce') r.body = concatStream(read.chunks, r.req);
    return reject(r, binding, op.id, 'MG_ERR_BODY_TOO_LARGE', {
      location: 'body',
      message: `body: larger than ${binding.maxBodyBytes} bytes, the most this API's definition checks`,
    });
  }
  const bytes = Buffer.concat(read.chunks);
  r.body = Readable.from([bytes], { objectMode: false });
  if (bytes.length === 0) {
    if (body.required)
      reject(r, binding, op.id, 'MG_ERR_INVALID_REQUEST', {
        location: 'body',
        message: 'body: is required',
      });
    return;
  }
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    return reject(r, binding, op.id, 'MG_ERR_INVALID_REQUEST', {
      location: 'body',
      message: `body: is not valid JSON (${(err as Error).message})`,
    });
  }
  const validate = media.validate;
  if (!validate || validate(value)) return;
  const e = validate.errors?.[0];
  reject(r, binding, op.id, 'MG_ERR_INVALID_REQUEST', {
    location: 'body',
    message: e ? describeSchemaError('body', e) : 'body: is not valid',
  });
}

/** The document's entry for a Content-Type: exact, then "type/*", then "*\/*". */
function mediaFor(media: readonly CompiledMedia[], type: string): CompiledMedia | undefined {
  const family = `${type.split('/')[0] ?? ''}/*`;
  return (
    media.find((m) => m.range === type) ??
    media.find((m) => m.range === family) ??
    media.find((m) => m.range === '*/*')
  );
}

interface ReadBody {
  chunks: Buffer[];
  /** False when the body is larger than the limit: reading stopped there. */
  complete: boolean;
}

/**
 * Reads the body up to `limit` bytes. A declared length over the limit is refused unread; a
 * longer stream is paused at the chunk that crossed it, with nothing lost.
 */
function readBody(req: Readable, limit: number, declared: number): Promise<ReadBody> {
  if (declared > limit) return Promise.resolve({ chunks: [], complete: false });
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size <= limit) return;
      req.pause();
      done();
      resolve({ chunks, complete: false });
    };
    const onEnd = () => {
      done();
      resolve({ chunks, complete: true });
    };
    const onError = (err: Error) => {
      done();
      reject(err);
    };
    const onClose = () => {
      done();
      reject(new ProxyError('MG_ERR_INVALID_REQUEST', 'the client closed the request mid-body'));
    };
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onError);
    req.once('close', onClose);
  });
}

function concatStream(head: Buffer[], rest: Readable): Readable {
  const out = new PassThrough();
  for (const c of head) out.write(c);
  rest.pipe(out);
  return out;
}

/** Every value of a request header, joined as RFC 9110 §5.3 allows. */
function header(r: EdgeRequest, name: string): string | undefined {
  const v = r.client.headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

/** As forwardToBackend decides it: HTTP/1 framing headers, or an HTTP/2 stream left open. */
function hasBody(r: EdgeRequest): boolean {
  if (r.client.hasBody) return true;
  const stream = (r.req as Partial<Http2ServerRequest>).stream;
  return stream !== undefined && !stream.endAfterHeaders;
}
