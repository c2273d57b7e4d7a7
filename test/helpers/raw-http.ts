// Raw HTTP/1.1 over a plain socket, for what well-behaved clients refuse to send: smuggling
// attempts, hop-by-hop headers, malformed framing. The answer is read until the server closes.

import { connect } from 'node:net';

export interface RawAnswer {
  /** Everything the server sent. */
  raw: string;
  /** Status of the first response ("HTTP/1.1 400 …"); 0 when none came. */
  status: number;
  /** Header fields of the first response, names lowercased (repeated fields joined with ", "). */
  headers: Record<string, string>;
  /** Body of the first response, de-chunked when chunked. */
  body: string;
  /** Whether the server closed the connection (false: the safety timer ended the wait). */
  closed: boolean;
}

/**
 * Sends `request` as is and collects the answer until the server closes the connection, or
 * until `waitMs` passes (a safety net against hangs, not a timing assertion).
 */
export function rawExchange(
  port: number,
  request: string | Buffer,
  options: { host?: string; waitMs?: number } = {},
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, options.host ?? '127.0.0.1');
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(parseAnswer(Buffer.concat(chunks).toString('latin1'), closed));
    };
    const timer = setTimeout(() => finish(false), options.waitMs ?? 5_000);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.once('end', () => finish(true));
    socket.once('close', () => finish(true));
    socket.once('error', (err: NodeJS.ErrnoException) => {
      // A reset after the answer was sent still counts as the server closing.
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') finish(true);
      else if (!done) {
        done = true;
        clearTimeout(timer);
        reject(err);
      }
    });
    socket.write(request);
  });
}

export function parseAnswer(raw: string, closed: boolean): RawAnswer {
  const end = raw.indexOf('\r\n\r\n');
  if (end === -1) return { raw, status: 0, headers: {}, body: '', closed };
  const [statusLine = '', ...lines] = raw.slice(0, end).split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  let body = raw.slice(end + 4);
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) body = dechunk(body);
  else if (headers['content-length'] !== undefined)
    body = body.slice(0, Number(headers['content-length']));
  return { raw, status, headers, body, closed };
}

function dechunk(text: string): string {
  let out = '';
  let at = 0;
  for (;;) {
    const eol = text.indexOf('\r\n', at);
    if (eol === -1) return out;
    const size = parseInt(text.slice(at, eol), 16);
    if (!Number.isFinite(size) || size === 0) return out;
    out += text.slice(eol + 2, eol + 2 + size);
    at = eol + 2 + size + 2;
  }
}
