// A small HTTP/1.1 client for traffic tests: one request through an undici dispatcher the test
// owns (and closes), the whole answer read.

import type { IncomingHttpHeaders } from 'node:http';
import { request, type Dispatcher } from 'undici';
import type { EchoedRequest } from './echo-server.ts';

export interface SentRequest {
  method?: string;
  /** Host header; the URL's authority when absent. */
  host?: string;
  /** Request headers; undefined values are left out. */
  headers?: Record<string, string | string[] | undefined>;
  body?: string | Buffer;
}

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** The body as an echo server's JSON (throws when it is not one). */
  echo(): EchoedRequest;
  /** The body as JSON. */
  json<T = Record<string, unknown>>(): T;
}

export async function send(
  dispatcher: Dispatcher,
  url: string,
  options: SentRequest = {},
): Promise<Answer> {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(options.headers ?? {}))
    if (value !== undefined) headers[name] = value;
  if (options.host) headers.host = options.host;
  const res = await request(url, {
    dispatcher,
    method: (options.method ?? 'GET') as Dispatcher.HttpMethod,
    headers,
    ...(options.body !== undefined ? { body: options.body } : {}),
  });
  const body = await res.body.text();
  return {
    status: res.statusCode,
    headers: res.headers,
    body,
    echo: () => JSON.parse(body) as EchoedRequest,
    json: <T>() => JSON.parse(body) as T,
  };
}
