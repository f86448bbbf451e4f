/**
 * The admin token stays out of logs: `jobwire server` prints its sign-in link on stdout only when
 * stdout is a terminal; otherwise once on stderr, marked as secret. No log line carries a token,
 * even at trace level, even in the raw bytes of a request that failed to parse.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type * as Pty from 'node-pty';
import { serializeError } from '../../src/logging.js';
import { CLI, sleepUntil, tempHome } from '../helpers.js';

const pty = createRequire(import.meta.url)('node-pty') as typeof Pty;

/** Forms a token may take in a log: as text, and as the bytes of a serialised Buffer. */
function traces(token: string): string[] {
  return [token, encodeURIComponent(token), Buffer.from(token).join(',')];
}

/** Sends raw bytes to host:port and waits until the server has answered or closed. */
function rawRequest(port: number, bytes: string): Promise<string> {
  return new Promise((resolve) => {
    let answer = '';
    const socket = connect(port, '127.0.0.1', () => socket.write(bytes));
    socket.on('data', (d: Buffer) => (answer += d.toString()));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(answer));
    setTimeout(() => socket.destroy(), 2000);
  });
}

describe('sign-in link and logs', () => {
  it('keeps the admin token out of a piped stdout and out of every log line, printing the link once to stderr', async () => {
    const home = tempHome();
    const proc = spawn(process.execPath, [CLI, 'server', '--port', '0', '--home', home, '--log-level', 'trace'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise((resolve) => proc.on('exit', resolve));
    try {
      const record = await sleepUntil(() => {
        if (proc.exitCode !== null) throw new Error(`server exited with ${proc.exitCode}: ${stderr}`);
        try {
          return JSON.parse(readFileSync(join(home, 'server.json'), 'utf8')) as { url: string };
        } catch {
          return undefined;
        }
      }, 20_000, 'the server to start');
      const token = readFileSync(join(home, 'token'), 'utf8').trim();
      const url = record.url;
      const port = Number(new URL(url).port);

      // What puts a token near a log line: a request that fails to parse (answered by the edge
      // handler, which logs nothing of its raw bytes), the dashboard's sign-in URL, query tokens
      // on REST and WebSocket paths.
      const refused = await rawRequest(port, `GET /v1/jobs?access_token=${token} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nBad Header: x\r\n\r\n`);
      assert.match(refused, /^HTTP\/1.1 400/);
      await (await fetch(`${url}/?token=${token}`)).arrayBuffer();
      await (await fetch(`${url}/v1/jobs/none/output?access_token=${token}`)).arrayBuffer();
      await rawRequest(port, `GET /v1/nowhere?access_token=${token} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`);
      // Every request above was answered; the server's stop (below) flushes its log before the checks.
    } finally {
      proc.kill('SIGTERM');
      await exited;
    }
    try {
      const token = readFileSync(join(home, 'token'), 'utf8').trim();
      for (const trace of traces(token)) assert.ok(!stdout.includes(trace), `stdout carries the token:\n${stdout}`);
      const lines = stderr.split('\n').filter((line) => traces(token).some((trace) => line.includes(trace)));
      assert.equal(lines.length, 1, `stderr lines with the token:\n${lines.join('\n')}`);
      assert.match(lines[0]!, /^jobwire: sign in \(token, keep private\): http:\/\/127\.0\.0\.1:\d+\/\?token=\S+$/);
      assert.match(stdout, /jobwire server listening on/);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  it('prints the sign-in link on stdout when it is a terminal', async () => {
    const home = tempHome();
    const term = pty.spawn(process.execPath, [CLI, 'server', '--port', '0', '--home', home, '--log-level', 'warn'], { cols: 200, rows: 30, env: process.env as Record<string, string> });
    let screen = '';
    term.onData((d) => (screen += d));
    const exited = new Promise((resolve) => term.onExit(resolve));
    try {
      const link = await sleepUntil(() => /sign in: (\S+)/.exec(screen)?.[1], 20_000, 'the sign-in link');
      const token = readFileSync(join(home, 'token'), 'utf8').trim();
      assert.equal(new URL(link).searchParams.get('token'), token);
      assert.ok(!screen.includes('keep private'), 'on a terminal the link is printed once, plainly');
    } finally {
      term.kill('SIGTERM');
      await exited;
      rmSync(home, { recursive: true, force: true });
    }
  });

  it('serialises logged errors without the tokens they carry', () => {
    const token = 'tok_0123456789abcdefABCDEF';
    const cause = Object.assign(new Error(`fetch http://h/v1/events?access_token=${token} failed`), { command: { name: 'evalsha', args: [token] } });
    const err = Object.assign(new Error(`request with "Authorization: Bearer ${token}" failed`, { cause }), {
      rawPacket: Buffer.from(`GET /?token=${token} HTTP/1.1`),
      env: { JOBWIRE_JOB_TOKEN: token },
      note: `JOBWIRE_TOKEN=${token} in the environment`,
    });
    const logged = JSON.stringify(serializeError(err));
    for (const trace of traces(token)) assert.ok(!logged.includes(trace), logged);
    assert.match(logged, /Authorization: Bearer \[redacted\]/);
    assert.match(logged, /access_token=\[redacted\]/);
  });
});
