/**
 * Requests to the REST API: URLs, the bearer token, JSON in and out, and every failure turned
 * into a typed error. Uses the global `fetch` (browsers, Node >= 18), or in Node, when a CA is
 * given, one that trusts it.
 * @module
 */
import { BadRequestError, ConnectionError, type JobwireError, errorFromWire } from './errors.js';
import { isCertificateError, trustingFetch } from './trust.js';
import { API_PREFIX } from './types.js';
import { isNode } from './util.js';

/** Where the server is and how to prove who we are. */
export interface Connection {
  /** Base URL, e.g. `http://127.0.0.1:7700` (may carry a path prefix behind a proxy). */
  url: string;
  token?: string | undefined;
  /** PEM CA bundle to trust for `https:`/`wss:` instead of the system's (Node only). */
  ca?: string | undefined;
}

/** Query parameters; `undefined` values are left out. */
export type Query = Record<string, string | number | boolean | undefined>;

/** Options of {@link request}. */
export interface RequestOptions {
  query?: Query;
  /** JSON body. */
  json?: unknown;
  /** Raw body, sent as `application/octet-stream`. */
  bytes?: Uint8Array;
}

/** Builds `base + /v1 + path?query`. */
export function apiUrl(base: string, path: string, query?: Query): URL {
  const url = new URL(base.replace(/\/+$/, '') + API_PREFIX + path);
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== undefined) url.searchParams.set(key, String(value));
  }
  return url;
}

/** The WebSocket form (`ws:`/`wss:`) of {@link apiUrl}. */
export function wsUrl(base: string, path: string, query?: Query): URL {
  const url = apiUrl(base, path, query);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url;
}

function errorCode(err: unknown, depth = 0): string | undefined {
  if (depth > 4 || typeof err !== 'object' || err === null) return undefined;
  const e = err as { code?: unknown; cause?: unknown; errors?: unknown };
  if (typeof e.code === 'string') return e.code;
  // undici wraps the socket error in `cause`; happy eyeballs wraps several in AggregateError.errors.
  if (Array.isArray(e.errors)) {
    for (const inner of e.errors) {
      const code = errorCode(inner, depth + 1);
      if (code) return code;
    }
  }
  return errorCode(e.cause, depth + 1);
}

/** The TLS layer's own words for a refused certificate (`: self-signed certificate`), if any. */
function certificateReason(err: unknown, depth = 0): string {
  if (depth > 4 || typeof err !== 'object' || err === null) return '';
  const e = err as { code?: unknown; message?: unknown; cause?: unknown };
  if (typeof e.code === 'string' && isCertificateError(e.code) && typeof e.message === 'string' && e.message) return `: ${e.message}`;
  return certificateReason(e.cause, depth + 1);
}

/**
 * Turns a network failure into a {@link ConnectionError}: `no_server` when nothing listens at
 * `base` (connection refused), `connection` otherwise.
 */
export function networkError(base: string, err: unknown): ConnectionError {
  if (err instanceof ConnectionError) return err;
  const code = errorCode(err);
  if (code === 'ECONNREFUSED') {
    return new ConnectionError(`no jobwire server at ${base}: start one with \`jobwire server\``, { code: 'no_server', cause: err });
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return new ConnectionError(
      `the jobwire server at ${base} presented a TLS certificate for another name (${code}${certificateReason(err)}): ` +
        'use a URL with a name the certificate holds, or a certificate that names this host',
      { cause: err },
    );
  }
  if (isCertificateError(code)) {
    return new ConnectionError(
      `the jobwire server at ${base} presented a TLS certificate this client does not trust (${code}${certificateReason(err)}): ` +
        'trust its CA with the `ca` option (CLI: --ca FILE or JOBWIRE_CA)',
      { cause: err },
    );
  }
  const detail = code ?? (err instanceof Error ? err.message : String(err));
  return new ConnectionError(`cannot reach the jobwire server at ${base} (${detail})`, { cause: err });
}

/** Builds the typed error of a non-2xx answer from its body (`{error: {code, message, field}}`). */
export function errorFromResponse(status: number, text: string): JobwireError {
  let body: { error?: { code?: string; message?: string; field?: string } } | undefined;
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    body = undefined;
  }
  if (body?.error && typeof body.error === 'object') return errorFromWire(body.error, status);
  const snippet = text.trim().slice(0, 200);
  return errorFromWire({ message: `request failed with HTTP ${status}${snippet ? `: ${snippet}` : ''}` }, status);
}

async function send(conn: Connection, method: string, path: string, options: RequestOptions): Promise<Response> {
  const headers: Record<string, string> = {};
  if (conn.token) headers.authorization = `Bearer ${conn.token}`;
  let body: string | ArrayBuffer | undefined;
  if (options.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(options.json);
  } else if (options.bytes !== undefined) {
    headers['content-type'] = 'application/octet-stream';
    // A fresh ArrayBuffer of exactly these bytes (the view may be a window on a larger buffer,
    // e.g. Node's Buffer pool).
    body = new Uint8Array(options.bytes).buffer;
  }
  const url = apiUrl(conn.url, path, options.query);
  let res: Response;
  try {
    const send = conn.ca !== undefined && isNode() ? await trustingFetch(conn.ca) : fetch;
    res = await send(url, body === undefined ? { method, headers } : { method, headers, body });
  } catch (err) {
    throw networkError(conn.url, err);
  }
  if (!res.ok) {
    let text = '';
    try {
      text = await res.text();
    } catch {
      // The status alone still says what went wrong.
    }
    throw errorFromResponse(res.status, text);
  }
  return res;
}

/** Sends a request and parses the JSON answer (`undefined` for 204). */
export async function request<T>(conn: Connection, method: string, path: string, options: RequestOptions = {}): Promise<T> {
  const res = await send(conn, method, path, options);
  if (res.status === 204) return undefined as T;
  let text: string;
  try {
    text = await res.text();
  } catch (err) {
    throw networkError(conn.url, err);
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new BadRequestError(`${method} ${path}: the server answered with invalid JSON`, { code: 'protocol', cause: err });
  }
}

/** Sends a request and returns the answer's body as it arrives. */
export async function requestStream(conn: Connection, method: string, path: string, options: RequestOptions = {}): Promise<ReadableStream<Uint8Array>> {
  const res = await send(conn, method, path, options);
  if (res.body === null) throw new BadRequestError(`${method} ${path}: the server answered without a body`, { code: 'protocol' });
  return res.body;
}

/** Sends a request and returns the answer's bytes and headers. */
export async function requestBytes(
  conn: Connection,
  method: string,
  path: string,
  options: RequestOptions = {},
): Promise<{ data: Uint8Array; headers: Headers }> {
  const res = await send(conn, method, path, options);
  try {
    return { data: new Uint8Array(await res.arrayBuffer()), headers: res.headers };
  } catch (err) {
    throw networkError(conn.url, err);
  }
}
