// ApiDefinition `source.url`: the gateway fetches the document at run time (the compiler never
// does), keeps the last good copy, and fetches it again when it is older than REFRESH_MS, on
// use, in the background (no timers: an idle gateway sends nothing). A document that fails to
// fetch or to validate is retried after RETRY_MS; until one copy is good the API is not published.
// The store outlives views: each new view takes it over from the one before.

import { createHash } from 'node:crypto';
import { Agent, request } from 'undici';
import { parse as parseYaml } from 'yaml';
import { validateOpenApiDocument } from '../../shared/config/compile/api-definitions.ts';

export const REFRESH_MS = 300_000;
export const RETRY_MS = 2_000;
export const FETCH_TIMEOUT_MS = 5_000;
export const MAX_DOCUMENT_BYTES = 10 * 1024 * 1024;

export interface LoadedDocument {
  document: Record<string, unknown>;
  /** sha256 of the document's JSON: compiled validators are kept per hash. */
  hash: string;
}

/** Where to fetch from right now: the URL itself, or a path on one of the route's endpoints. */
export type FetchTarget = () => { url: string; host?: string } | string;

export function loadedDocument(document: Record<string, unknown>): LoadedDocument {
  return {
    document,
    hash: createHash('sha256').update(JSON.stringify(document)).digest('hex'),
  };
}

export class RemoteDocument {
  loaded: LoadedDocument | undefined = undefined;
  /** Why the last fetch failed (kept until one succeeds). */
  error: string | undefined = undefined;
  private inflight: Promise<void> | undefined = undefined;
  private nextFetchAt = 0;

  constructor(
    readonly url: string,
    private target: FetchTarget,
    private readonly store: RemoteDocuments,
  ) {}

  retarget(target: FetchTarget): void {
    this.target = target;
  }

  /** The last good copy; starts a background fetch when it is due. */
  current(): LoadedDocument | undefined {
    if (!this.inflight && this.store.now() >= this.nextFetchAt) this.fetch();
    return this.loaded;
  }

  /** The document once the fetch under way (if any) has ended; at most FETCH_TIMEOUT_MS or so. */
  async settled(): Promise<LoadedDocument | undefined> {
    this.current();
    if (this.inflight) await this.inflight;
    return this.loaded;
  }

  private fetch(): void {
    this.inflight = this.fetchOnce()
      .then((doc) => {
        this.loaded = doc;
        this.error = undefined;
        this.nextFetchAt = this.store.now() + REFRESH_MS;
      })
      .catch((err: unknown) => {
        this.error = (err as Error).message;
        this.nextFetchAt = this.store.now() + RETRY_MS;
        this.store.onError(this.url, this.error);
      })
      .finally(() => {
        this.inflight = undefined;
      });
  }

  private async fetchOnce(): Promise<LoadedDocument> {
    const target = this.target();
    if (typeof target === 'string') throw new Error(target);
    const res = await request(target.url, {
      dispatcher: this.store.agent,
      method: 'GET',
      headers: {
        accept: 'application/json, application/yaml;q=0.9, */*;q=0.5',
        ...(target.host ? { host: target.host } : {}),
      },
      headersTimeout: FETCH_TIMEOUT_MS,
      bodyTimeout: FETCH_TIMEOUT_MS,
    });
    const declared = Number(res.headers['content-length'] ?? 0);
    if (declared > MAX_DOCUMENT_BYTES) {
      res.body.destroy();
      throw new Error(`${this.url}: the document is larger than ${MAX_DOCUMENT_BYTES} bytes`);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_DOCUMENT_BYTES) {
        res.body.destroy();
        throw new Error(`${this.url}: the document is larger than ${MAX_DOCUMENT_BYTES} bytes`);
      }
      chunks.push(chunk);
    }
    if (res.statusCode !== 200)
      throw new Error(`${this.url}: the backend answered ${res.statusCode}`);
    let doc: unknown;
    try {
      doc = parseYaml(Buffer.concat(chunks).toString('utf8'));
    } catch (err) {
      throw new Error(`${this.url}: cannot parse: ${(err as Error).message.split('\n')[0]}`, {
        cause: err,
      });
    }
    const problems = validateOpenApiDocument(doc);
    if (problems.length > 0) throw new Error(`${this.url}: ${problems.join('; ')}`);
    return loadedDocument(doc as Record<string, unknown>);
  }
}

export interface RemoteDocumentsOptions {
  /** ms, for refresh times. */
  now?: () => number;
  onError?: (url: string, message: string) => void;
}

export class RemoteDocuments {
  readonly now: () => number;
  readonly onError: (url: string, message: string) => void;
  /** Its own small pool: documents are fetched rarely, and never compete with traffic. */
  readonly agent = new Agent({ keepAliveTimeout: 1_000, connections: 4 });
  private readonly entries = new Map<string, RemoteDocument>();

  constructor(options: RemoteDocumentsOptions = {}) {
    this.now = options.now ?? (() => Date.now());
    this.onError = options.onError ?? (() => {});
  }

  /** The document for an ApiDefinition ("namespace/name") and URL; the same object across views. */
  get(key: string, url: string, target: FetchTarget): RemoteDocument {
    const id = `${key} ${url}`;
    let doc = this.entries.get(id);
    if (doc) doc.retarget(target);
    else this.entries.set(id, (doc = new RemoteDocument(url, target, this)));
    return doc;
  }

  /** Forgets documents no ApiDefinition of the current view names. */
  retain(ids: ReadonlySet<string>): void {
    for (const id of this.entries.keys()) if (!ids.has(id)) this.entries.delete(id);
  }
}
