/**
 * Test helpers: a tiny HTTP + WebSocket server that each test scripts (no jobwire server
 * needed), and small waiting utilities.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { Client, type ClientOptions } from '../src/index.js';

/** Token the test servers accept. */
export const TOKEN = 'test-token';

/** A socket accepted by the test server, with what the test needs to script it. */
export interface TestSocket {
  ws: WebSocket;
  url: URL;
  req: IncomingMessage;
  /** Binary frames received from the client, in order. */
  frames: Uint8Array[];
}

/** What a test server does with requests. */
export interface ServerScript {
  /** Plain HTTP requests (REST). Default: 404. */
  http?: (req: IncomingMessage, res: ServerResponse, body: Uint8Array) => void;
  /** Decide on an upgrade: return a status and body to refuse it. Default: 401 unless the token matches. */
  upgrade?: (req: IncomingMessage, url: URL) => { status: number; body: unknown } | undefined;
  /** An accepted WebSocket. */
  connection?: (socket: TestSocket) => void;
}

/** A running test server. */
export interface TestServer {
  url: string;
  port: number;
  /** Every WebSocket accepted so far. */
  sockets: TestSocket[];
  /** Stops listening and drops every connection. */
  close(): Promise<void>;
}

/** True when `req` carries the test token (header or `access_token`). */
export function authorized(req: IncomingMessage, url: URL): boolean {
  return req.headers.authorization === `Bearer ${TOKEN}` || url.searchParams.get('access_token') === TOKEN;
}

/** Starts a scripted server on `port` (default: a free one). */
export async function startServer(script: ServerScript, port = 0): Promise<TestServer> {
  const sockets: TestSocket[] = [];
  const wss = new WebSocketServer({ noServer: true });
  const server = createServer((req, res) => {
    const parts: Uint8Array[] = [];
    req.on('data', (c: Uint8Array) => parts.push(c));
    req.on('end', () => {
      const body = new Uint8Array(Buffer.concat(parts));
      if (script.http) script.http(req, res, body);
      else json(res, 404, { error: { code: 'not_found', message: 'no such route' } });
    });
  });
  server.on('upgrade', (req, socket, head) => {
    // A client may drop a connection it no longer wants (a refused attempt, a close()) at any point.
    socket.on('error', () => undefined);
    const url = new URL(req.url ?? '/', 'http://localhost');
    const refusal = script.upgrade ? script.upgrade(req, url) : authorized(req, url) ? undefined : { status: 401, body: { error: { code: 'unauthorized', message: 'bad token' } } };
    if (refusal) {
      const text = JSON.stringify(refusal.body);
      socket.end(`HTTP/1.1 ${refusal.status} Refused\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('error', () => undefined);
      const s: TestSocket = { ws, url, req, frames: [] };
      sockets.push(s);
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        if (isBinary) s.frames.push(new Uint8Array(data));
      });
      script.connection?.(s);
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${bound}`,
    port: bound,
    sockets,
    async close() {
      for (const s of sockets) s.ws.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Sends a JSON answer. */
export function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(text);
}

/** A client for `server` with the test token; never reads the real jobwire home. */
export function clientFor(server: { url: string }, options: ClientOptions = {}): Client {
  return new Client({ url: server.url, token: TOKEN, home: '/nonexistent-jobwire-home', ...options });
}

/** Polls `condition` until it holds; fails after `timeout` ms. */
export async function sleepUntil(condition: () => boolean, timeout = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A port nothing listens on (bound, then released). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Concatenates byte arrays. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** UTF-8 text of bytes. */
export function text(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}
