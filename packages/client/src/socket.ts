/**
 * One WebSocket shape over the two implementations the SDK runs on: the `ws` package in Node
 * (loaded lazily; it can send the `Authorization` header and shows the HTTP status of a refused
 * upgrade) and the global `WebSocket` of browsers (token in the `access_token` query parameter;
 * a refused upgrade is just a close, so the SDK asks `/v1/whoami` whether the token was the reason).
 * @module
 */
import type { WebSocket as WsWebSocket } from 'ws';
import { BadRequestError, ConnectionError, JobwireError, NotFoundError, UnauthorizedError } from './errors.js';
import { CloseCode } from './protocol.js';
import { errorFromResponse, networkError, request } from './http.js';
import { isNode } from './util.js';

/** Callbacks of a socket; registered before any event can fire, so no message is missed. */
export interface SocketHandlers {
  /** The upgrade succeeded. */
  onOpen(): void;
  /** A binary (Uint8Array) or text (string) message. */
  onMessage(data: Uint8Array | string): void;
  /**
   * Called exactly once. `error` is set when the socket never opened (refused connection, HTTP
   * status of a refused upgrade) or died of a network error.
   */
  onClose(code: number, reason: string, error: JobwireError | undefined): void;
}

/** Options of a {@link SocketFactory}. */
export interface SocketOptions {
  /** Bearer token. */
  token?: string | undefined;
  /** Base URL of the server, for error messages. */
  base: string;
  /** PEM CA bundle to trust for `wss:` instead of the system's (Node only; browsers use their own). */
  ca?: string | undefined;
  /**
   * Drop the connection when the server sent nothing, not even a ping, for this long (Node only:
   * browsers hide pings). The server pings every 15 s. @defaultValue 45000
   */
  idleTimeout?: number;
}

/** The part of a WebSocket the SDK uses. */
export interface WireSocket {
  send(data: Uint8Array | string): void;
  /** Closes; a socket still connecting is abandoned. */
  close(code?: number, reason?: string): void;
}

type WsModule = { WebSocket: typeof WsWebSocket };

// A variable specifier keeps bundlers (vite) from pulling `ws` into a browser build.
const WS_MODULE = 'ws';
let wsModule: Promise<WsModule | undefined> | undefined;

function loadWs(): Promise<WsModule | undefined> {
  wsModule ??= (import(/* @vite-ignore */ WS_MODULE) as Promise<WsModule>).catch(() => undefined);
  return wsModule;
}

/** Creates a socket synchronously, so the caller holds it before any handler can run. */
export type SocketFactory = (url: URL, options: SocketOptions, handlers: SocketHandlers) => WireSocket;

/**
 * Loads the WebSocket implementation once: `ws` in Node (falling back to a global WebSocket),
 * the global WebSocket in browsers.
 */
export async function loadSocketFactory(): Promise<SocketFactory> {
  const ws = isNode() ? await loadWs() : undefined;
  if (ws) return (url, options, handlers) => openWs(ws, url, options, handlers);
  const Global = (globalThis as { WebSocket?: typeof WebSocket }).WebSocket;
  if (!Global) throw new ConnectionError('no WebSocket implementation: install the `ws` package');
  return browserSocketFactory(Global);
}

/** The factory over a browser-style WebSocket class (the global one; tests pass undici's). */
export function browserSocketFactory(Impl: typeof WebSocket): SocketFactory {
  return (url, options, handlers) => openBrowser(Impl, url, options, handlers);
}

/**
 * Why a browser WebSocket never opened. Browsers hide the HTTP status of a refused upgrade, so
 * the same token goes to `/v1/whoami`: a 401 there means the token was refused (not worth
 * retrying); anything else — the server is down, or refused for another reason — stays a
 * {@link ConnectionError}.
 */
async function refusedUpgradeError(options: SocketOptions, code: number): Promise<JobwireError> {
  try {
    await request({ url: options.base, token: options.token }, 'GET', '/whoami');
  } catch (err) {
    if (err instanceof UnauthorizedError) return new UnauthorizedError(`the server refused the token: ${err.message}`, { cause: err });
    if (err instanceof ConnectionError && err.code === 'no_server') return err;
  }
  return new ConnectionError(`cannot open a WebSocket to the jobwire server at ${options.base} (refused, not found, or down; code ${code})`);
}

function openWs(mod: WsModule, url: URL, options: SocketOptions, handlers: SocketHandlers): WireSocket {
  const headers: Record<string, string> = {};
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  // No compression: output is the throughput, and deflating it would cost both ends CPU per byte.
  const socket = new mod.WebSocket(url, options.ca === undefined ? { headers, perMessageDeflate: false } : { headers, perMessageDeflate: false, ca: options.ca });
  socket.binaryType = 'arraybuffer';
  let opened = false;
  let failure: JobwireError | undefined;
  let idle: ReturnType<typeof setTimeout> | undefined;
  const idleTimeout = options.idleTimeout ?? 45_000;
  const alive = (): void => {
    // Node timers can be re-armed in place: no new timer object per message on a busy stream.
    const timer = idle as { refresh?: () => unknown } | undefined;
    if (typeof timer?.refresh === 'function') {
      timer.refresh();
      return;
    }
    if (idle !== undefined) clearTimeout(idle);
    idle = setTimeout(() => {
      failure ??= new ConnectionError(`no word from the server at ${options.base} for ${idleTimeout} ms`);
      socket.terminate();
    }, idleTimeout);
  };
  const decoder = new TextDecoder();

  socket.on('unexpected-response', (_req, res) => {
    // Read the error body so the typed error carries the server's message.
    const parts: Uint8Array[] = [];
    let size = 0;
    const done = (): void => {
      if (failure === undefined) {
        const bytes = new Uint8Array(size);
        let at = 0;
        for (const part of parts) {
          bytes.set(part, at);
          at += part.byteLength;
        }
        failure = errorFromResponse(res.statusCode ?? 500, decoder.decode(bytes));
      }
      socket.terminate();
    };
    res.on('data', (chunk: Uint8Array) => {
      if (size < 65536) {
        parts.push(chunk);
        size += chunk.byteLength;
      }
    });
    res.on('end', done);
    res.on('error', done);
  });
  socket.on('open', () => {
    opened = true;
    alive();
    handlers.onOpen();
  });
  socket.on('ping', alive);
  socket.on('pong', alive);
  socket.on('message', (data: ArrayBuffer | Uint8Array, isBinary: boolean) => {
    alive();
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : data;
    handlers.onMessage(isBinary ? bytes : decoder.decode(bytes));
  });
  socket.on('error', (err) => {
    failure ??= networkError(options.base, err);
  });
  socket.on('close', (code: number, reason: Uint8Array) => {
    if (idle !== undefined) clearTimeout(idle);
    if (!opened) failure ??= new ConnectionError(`the server at ${options.base} closed the connection before it opened (code ${code})`);
    handlers.onClose(code, decoder.decode(reason), failure);
  });

  return {
    send(data) {
      if (socket.readyState === socket.OPEN) socket.send(data);
    },
    close(code = 1000, reason) {
      if (socket.readyState === socket.OPEN) socket.close(code, reason);
      else socket.terminate();
    },
  };
}

function openBrowser(Impl: typeof WebSocket, url: URL, options: SocketOptions, handlers: SocketHandlers): WireSocket {
  const withToken = new URL(url);
  if (options.token) withToken.searchParams.set('access_token', options.token);
  const socket = new Impl(withToken);
  socket.binaryType = 'arraybuffer';
  let opened = false;
  let closed = false;
  socket.addEventListener('open', () => {
    opened = true;
    handlers.onOpen();
  });
  socket.addEventListener('message', (ev: MessageEvent) => {
    const data: unknown = ev.data;
    handlers.onMessage(typeof data === 'string' ? data : new Uint8Array(data as ArrayBuffer));
  });
  const finish = (code: number, reason: string, failed: boolean): void => {
    if (closed) return;
    closed = true;
    if (!opened) {
      void refusedUpgradeError(options, code).then((error) => handlers.onClose(code, reason, error));
      return;
    }
    handlers.onClose(code, reason, failed ? new ConnectionError(`the WebSocket to ${options.base} failed`) : undefined);
  };
  socket.addEventListener('close', (ev: CloseEvent) => finish(ev.code, ev.reason, false));
  // An error is final; some implementations (undici in Node 20) never follow it with 'close'.
  socket.addEventListener('error', () => {
    finish(1006, '', true);
    try {
      socket.close();
    } catch {
      // Already closing.
    }
  });
  return {
    send(data) {
      if (socket.readyState === socket.OPEN) socket.send(data as Uint8Array<ArrayBuffer> | string);
    },
    close(code = 1000, reason) {
      if (socket.readyState === socket.OPEN) socket.close(code, reason);
      else if (socket.readyState === socket.CONNECTING) socket.close();
    },
  };
}

/**
 * The verdict carried by an application close code (4400 protocol, 4401 unauthorized,
 * 4404 not found), or undefined for a close that only means the connection ended.
 */
export function closeCodeError(code: number, reason: string): JobwireError | undefined {
  const why = reason ? `: ${reason}` : '';
  switch (code) {
    case CloseCode.UNAUTHORIZED:
      return new UnauthorizedError(`the server refused the token${why}`);
    case CloseCode.NOT_FOUND:
      return new NotFoundError(`not found${why}`);
    case CloseCode.PROTOCOL:
      return new BadRequestError(`the server closed the connection for a protocol error${why}`, { code: 'protocol' });
    default:
      return undefined;
  }
}

/** True for failures worth another connection attempt (network trouble, a server error). */
export function isRetryable(err: unknown): boolean {
  return !(err instanceof JobwireError) || err.code === 'connection' || err.code === 'no_server' || err.code === 'internal';
}
