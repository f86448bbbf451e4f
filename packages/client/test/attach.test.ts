import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, describe, it } from 'node:test';
import type { WebSocket } from 'ws';
import { BadRequestError, ConflictError, ConnectionError, NotFoundError, UnauthorizedError, type OutputChannel, type OutputChunk } from '../src/index.js';
import { Tag, decodeFrame, encodeError, encodeHello, encodeOutput, encodeStatus, encodeStdinAck, type Frame, type HelloFrame } from '../src/protocol.js';
import { stdinWritable, toReadable } from '../src/node-streams.js';
import { clientFor, concat, freePort, sleep, sleepUntil, startServer, text, type TestServer, type TestSocket } from './helpers.js';

/** A job's merged output, with each chunk's merged position and channel offset. */
class FakeOutput {
  readonly chunks: OutputChunk[] = [];
  private size = 0;
  private readonly offsets = { stdout: 0, stderr: 0 };

  append(channel: OutputChannel, data: Uint8Array | string): void {
    const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
    this.chunks.push({ channel, pos: this.size, offset: this.offsets[channel], data: bytes });
    this.size += bytes.byteLength;
    this.offsets[channel] += bytes.byteLength;
  }

  send(ws: WebSocket, chunks: readonly OutputChunk[]): void {
    for (const c of chunks) ws.send(encodeOutput(c.channel, c.pos, c.offset, c.data));
  }

  all(): Uint8Array {
    return concat(this.chunks.map((c) => c.data));
  }
}

function hello(overrides: Partial<HelloFrame> = {}): Uint8Array {
  return encodeHello({ jobId: 'j1', from: 0, stdinOffset: 0, stdinClosed: false, status: 'Running', interactive: true, tty: false, ...overrides });
}

function exitFrame(exitCode = 0): Uint8Array {
  return encodeStatus({ status: exitCode === 0 ? 'Success' : 'Failed', exitCode, signal: null, error: null, final: true });
}

function framesOf(s: TestSocket): Frame[] {
  return s.frames.map((f) => decodeFrame(f));
}

/** Appends stdin bytes the way the server does: overlaps (by offset) are dropped, gaps refused. */
function accept(stdin: number[], frame: Frame): void {
  assert.ok(frame.tag === Tag.STDIN);
  assert.ok(frame.offset <= stdin.length, `stdin gap: frame at ${frame.offset}, have ${stdin.length}`);
  stdin.push(...frame.data.subarray(stdin.length - frame.offset));
}

function onFrame(s: TestSocket, handler: (frame: Frame) => void): void {
  s.ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) handler(decodeFrame(new Uint8Array(data)));
  });
}

async function collect(output: AsyncIterable<OutputChunk>): Promise<OutputChunk[]> {
  const out: OutputChunk[] = [];
  for await (const c of output) out.push(c);
  return out;
}

const servers: TestServer[] = [];
async function serve(script: Parameters<typeof startServer>[0]): Promise<TestServer> {
  const server = await startServer(script);
  servers.push(server);
  return server;
}
after(async () => {
  for (const s of servers) await s.close();
});

describe('attach', () => {
  it('replays output in order with positions, then ends with the exit status', async () => {
    const job = new FakeOutput();
    job.append('stdout', 'one\n');
    job.append('stderr', 'oops\n');
    job.append('stdout', 'two\n');
    const server = await serve({
      connection(s) {
        s.ws.send(hello());
        job.send(s.ws, job.chunks);
        s.ws.send(exitFrame(3));
        s.ws.close(1000);
      },
    });
    const att = await clientFor(server).attach('j1');
    const chunks = await collect(att.output);
    assert.deepEqual(
      chunks.map((c) => [c.channel, c.pos, c.offset, text(c.data)]),
      [
        ['stdout', 0, 0, 'one\n'],
        ['stderr', 4, 0, 'oops\n'],
        ['stdout', 9, 4, 'two\n'],
      ],
    );
    assert.deepEqual(await att.exit, { status: 'Failed', exitCode: 3, signal: null, error: null });
    assert.equal(server.sockets[0]!.req.headers.authorization, 'Bearer test-token');
    assert.equal(server.sockets[0]!.url.pathname, '/v1/jobs/j1/attach');
    assert.equal(server.sockets[0]!.url.searchParams.get('from'), '0');
  });

  it('reconnects after a drop: resumes from the next position, drops replayed duplicates, resends unacknowledged stdin, exit comes last', async () => {
    const job = new FakeOutput();
    for (let i = 0; i < 10; i++) job.append(i % 3 === 2 ? 'stderr' : 'stdout', `chunk-${i};`);
    const seenAt5 = job.chunks[5]!.pos;
    const stdin: number[] = [];
    let stdinClosed = false;
    const server = await serve({
      connection(s) {
        if (server.sockets.length === 1) {
          s.ws.send(hello());
          job.send(s.ws, job.chunks.slice(0, 5));
          onFrame(s, (f) => {
            // 'abc' arrives; 'defg' is "lost" with the connection.
            if (f.tag === Tag.STDIN && f.offset === 0) accept(stdin, f);
            else if (f.tag === Tag.STDIN) s.ws.terminate();
          });
        } else {
          // Replay from one chunk before what the client asked for: it must drop that chunk.
          const replayFrom = job.chunks[4]!;
          s.ws.send(hello({ from: replayFrom.pos, stdinOffset: stdin.length }));
          job.send(s.ws, job.chunks.slice(4));
          onFrame(s, (f) => {
            if (f.tag === Tag.STDIN) accept(stdin, f);
            if (f.tag === Tag.CLOSE && f.channel === 0) {
              stdinClosed = true;
              s.ws.send(exitFrame(0));
              s.ws.close(1000);
            }
          });
        }
      },
    });
    const att = await clientFor(server).attach('j1');
    const received: OutputChunk[] = [];
    const order: string[] = [];
    void att.exit.then(() => order.push('exit'));
    const it = att.output[Symbol.asyncIterator]();
    for (let i = 0; i < 5; i++) {
      const r = await it.next();
      assert.equal(r.done, false);
      received.push(r.value as OutputChunk);
    }
    await att.stdin.write('abc');
    await att.stdin.write(new TextEncoder().encode('defg'));
    const ended = att.stdin.end();
    for (;;) {
      const r = await it.next();
      if (r.done) break;
      received.push(r.value);
      order.push('chunk');
    }
    await ended;
    const exit = await att.exit;

    assert.equal(server.sockets.length, 2);
    assert.equal(server.sockets[1]!.url.searchParams.get('from'), String(seenAt5), 'resumed at the first unseen byte');
    assert.deepEqual(
      received.map((c) => [c.channel, c.pos, c.offset, text(c.data)]),
      job.chunks.map((c) => [c.channel, c.pos, c.offset, text(c.data)]),
      'every chunk exactly once, in order',
    );
    assert.equal(text(concat(received.map((c) => c.data))), text(job.all()));
    const resent = framesOf(server.sockets[1]!).filter((f) => f.tag === Tag.STDIN);
    assert.deepEqual(
      resent.map((f) => (f.tag === Tag.STDIN ? [f.offset, text(f.data)] : [])),
      [[3, 'defg']],
      'only the bytes the server lacked were resent',
    );
    assert.equal(text(new Uint8Array(stdin)), 'abcdefg');
    assert.equal(stdinClosed, true);
    assert.deepEqual(exit, { status: 'Success', exitCode: 0, signal: null, error: null });
    assert.equal(order.at(-1), 'exit', 'exit after the last chunk');
  });

  it('skips output before `from` even when the server replays it', async () => {
    const job = new FakeOutput();
    job.append('stdout', 'abcdef');
    job.append('stdout', 'ghij');
    const server = await serve({
      connection(s) {
        s.ws.send(hello());
        job.send(s.ws, job.chunks);
        s.ws.send(exitFrame());
        s.ws.close();
      },
    });
    const att = await clientFor(server).attach('j1', { from: 4 });
    const chunks = await collect(att.output);
    assert.deepEqual(
      chunks.map((c) => [c.pos, c.offset, text(c.data)]),
      [
        [4, 4, 'ef'],
        [6, 6, 'ghij'],
      ],
    );
    assert.equal(server.sockets[0]!.url.searchParams.get('from'), '4');
  });

  it('rejects with UnauthorizedError when the upgrade is refused with 401', async () => {
    const server = await serve({});
    const client = clientFor(server, { token: 'wrong' });
    await assert.rejects(client.attach('j1'), (err) => err instanceof UnauthorizedError && err.message === 'bad token');
  });

  it('rejects with NotFoundError when the upgrade is refused with 404', async () => {
    const server = await serve({ upgrade: () => ({ status: 404, body: { error: { code: 'not_found', message: 'no job j9' } } }) });
    await assert.rejects(clientFor(server).attach('j9'), (err) => err instanceof NotFoundError && err.message === 'no job j9');
  });

  it('rejects with the typed error of an ERROR frame sent before HELLO', async () => {
    const server = await serve({
      connection(s) {
        s.ws.send(encodeError('not_found', 'job j2 is gone'));
        s.ws.close(4404);
      },
    });
    await assert.rejects(clientFor(server).attach('j2'), (err) => err instanceof NotFoundError && /gone/.test(err.message));
  });

  it('rejects with ConnectionError no_server when nothing listens', async () => {
    const port = await freePort();
    await assert.rejects(
      clientFor({ url: `http://127.0.0.1:${port}` }).attach('j1'),
      (err) => err instanceof ConnectionError && err.code === 'no_server' && err.message.includes(`127.0.0.1:${port}`) && err.message.includes('jobwire server'),
    );
  });

  it('detach() ends the output, rejects exit with ConnectionError and does not reconnect', async () => {
    const server = await serve({
      connection(s) {
        s.ws.send(hello());
        s.ws.send(encodeOutput('stdout', 0, 0, new TextEncoder().encode('hi')));
      },
    });
    const att = await clientFor(server).attach('j1');
    const output = att.output[Symbol.asyncIterator]();
    const first = await output.next();
    assert.equal(text((first.value as OutputChunk).data), 'hi');
    att.detach();
    assert.deepEqual(await output.next(), { value: undefined, done: true });
    await assert.rejects(att.exit, (err) => err instanceof ConnectionError && /detached/.test(err.message));
    await assert.rejects(att.stdin.write('x'), ConnectionError);
    await sleep(200);
    assert.equal(server.sockets.length, 1);
    await sleepUntil(() => server.sockets[0]!.ws.readyState === server.sockets[0]!.ws.CLOSED, 2000, 'server side closed');
  });

  it('an unobserved exit rejection after detach does not crash Node', async () => {
    const server = await serve({ connection: (s) => s.ws.send(hello()) });
    const att = await clientFor(server).attach('j1');
    att.detach();
    await sleep(50); // an unhandled rejection would fail the run here
  });

  it('Symbol.asyncDispose detaches', async () => {
    const server = await serve({ connection: (s) => s.ws.send(hello()) });
    const att = await clientFor(server).attach('j1');
    await att[Symbol.asyncDispose]();
    await assert.rejects(att.exit, ConnectionError);
    await sleepUntil(() => server.sockets[0]!.ws.readyState === server.sockets[0]!.ws.CLOSED, 2000, 'server side closed');
  });

  it('an aborted signal detaches', async () => {
    const server = await serve({ connection: (s) => s.ws.send(hello()) });
    const ac = new AbortController();
    const att = await clientFor(server).attach('j1', { signal: ac.signal });
    ac.abort();
    await assert.rejects(att.exit, (err) => err instanceof ConnectionError && /aborted/.test(err.message));
    const pre = new AbortController();
    pre.abort();
    await assert.rejects(clientFor(server).attach('j1', { signal: pre.signal }), ConnectionError);
  });

  it('gives up reconnecting after reconnectTimeout with ConnectionError on exit and on the output', async () => {
    const server = await startServer({
      connection(s) {
        s.ws.send(hello());
        s.ws.send(encodeOutput('stdout', 0, 0, new TextEncoder().encode('x')));
      },
    });
    const att = await clientFor(server, { reconnectTimeout: 300 }).attach('j1');
    const started = Date.now();
    await server.close();
    await assert.rejects(att.exit, (err) => err instanceof ConnectionError && /could not reconnect/.test(err.message));
    const seen: string[] = [];
    await assert.rejects(async () => {
      for await (const c of att.output) seen.push(text(c.data));
    }, ConnectionError);
    assert.deepEqual(seen, ['x'], 'output received before the drop is still delivered');
    assert.ok(Date.now() - started < 3000);
  });

  it('with reconnect: false a drop fails at once', async () => {
    const server = await serve({
      connection(s) {
        s.ws.send(hello());
        setTimeout(() => s.ws.terminate(), 20);
      },
    });
    const att = await clientFor(server, { reconnect: false }).attach('j1');
    await assert.rejects(att.exit, (err) => err instanceof ConnectionError && /lost the connection/.test(err.message));
    assert.equal(server.sockets.length, 1);
  });

  it('an ERROR frame after HELLO fails the attachment with the typed error', async () => {
    const server = await serve({
      connection(s) {
        s.ws.send(hello());
        setTimeout(() => {
          s.ws.send(encodeError('protocol', 'bad frame'));
          s.ws.close(4400);
        }, 20);
      },
    });
    const att = await clientFor(server).attach('j1');
    await assert.rejects(att.exit, (err) => err instanceof BadRequestError && err.code === 'protocol');
    await sleep(100);
    assert.equal(server.sockets.length, 1, 'a verdict is not retried');
  });

  it('sends FLOW pause when the reader falls 4 MiB behind and FLOW resume once it drained', async () => {
    const chunk = new Uint8Array(64 * 1024).fill(7);
    const count = 80; // 5 MiB
    const server = await serve({
      connection(s) {
        s.ws.send(hello());
        for (let i = 0; i < count; i++) s.ws.send(encodeOutput('stdout', i * chunk.byteLength, i * chunk.byteLength, chunk));
        onFrame(s, (f) => {
          if (f.tag === Tag.FLOW && f.resume) {
            s.ws.send(exitFrame());
            s.ws.close();
          }
        });
      },
    });
    const att = await clientFor(server).attach('j1');
    const flows = (): boolean[] => framesOf(server.sockets[0]!).flatMap((f) => (f.tag === Tag.FLOW ? [f.resume] : []));
    await sleepUntil(() => flows().length > 0, 5000, 'FLOW pause');
    assert.deepEqual(flows(), [false]);
    let total = 0;
    for await (const c of att.output) total += c.data.byteLength;
    assert.equal(total, count * chunk.byteLength);
    assert.deepEqual(flows(), [false, true]);
    await att.exit;
  });

  it('pause() and resume() send FLOW frames', async () => {
    const server = await serve({ connection: (s) => s.ws.send(hello()) });
    const att = await clientFor(server).attach('j1');
    att.pause();
    att.pause();
    att.resume();
    const flows = (): boolean[] => framesOf(server.sockets[0]!).flatMap((f) => (f.tag === Tag.FLOW ? [f.resume] : []));
    await sleepUntil(() => flows().length === 2, 2000, 'two FLOW frames');
    assert.deepEqual(flows(), [false, true]);
    att.detach();
  });

  it('resize() sends RESIZE and checks its arguments', async () => {
    const server = await serve({ connection: (s) => s.ws.send(hello({ tty: true })) });
    const att = await clientFor(server).attach('j1');
    att.resize(120, 40);
    await sleepUntil(() => server.sockets[0]!.frames.length === 1, 2000, 'RESIZE');
    assert.deepEqual(framesOf(server.sockets[0]!)[0], { tag: Tag.RESIZE, cols: 120, rows: 40 });
    assert.throws(() => att.resize(0, 10), BadRequestError);
    att.detach();
  });
});

describe('attach stdin', () => {
  it('splits writes into frames of at most 64 KiB with running offsets from HELLO', async () => {
    const server = await serve({ connection: (s) => s.ws.send(hello({ stdinOffset: 2 ** 32 + 5 })) });
    const att = await clientFor(server).attach('j1');
    const data = new Uint8Array(150 * 1024).map((_, i) => i % 251);
    await att.stdin.write(data);
    await att.stdin.write('é'); // UTF-8: two bytes
    await sleepUntil(() => server.sockets[0]!.frames.length === 4, 2000, 'four STDIN frames');
    const frames = framesOf(server.sockets[0]!).flatMap((f) => (f.tag === Tag.STDIN ? [f] : []));
    assert.deepEqual(
      frames.map((f) => [f.offset, f.data.byteLength]),
      [
        [2 ** 32 + 5, 65536],
        [2 ** 32 + 5 + 65536, 65536],
        [2 ** 32 + 5 + 131072, 22528],
        [2 ** 32 + 5 + 153600, 2],
      ],
    );
    assert.deepEqual([...concat(frames.slice(0, 3).map((f) => f.data))], [...data]);
    assert.deepEqual([...frames[3]!.data], [0xc3, 0xa9]);
    att.detach();
  });

  it('keeps within the window of STDIN_ACK and resolves write only when the bytes fit', async () => {
    const window = 10;
    let consumed = 100;
    const stdin: number[] = [];
    const violations: string[] = [];
    const server = await serve({
      connection(s) {
        s.ws.send(hello({ stdinOffset: 100 }));
        s.ws.send(encodeStdinAck(consumed, window));
        onFrame(s, (f) => {
          if (f.tag !== Tag.STDIN) return;
          if (f.offset + f.data.byteLength > consumed + window) violations.push(`${f.offset}+${f.data.byteLength}`);
          stdin.push(...f.data);
          // The job reads slowly: acknowledge a little later.
          setTimeout(() => {
            consumed = f.offset + f.data.byteLength;
            s.ws.send(encodeStdinAck(consumed, window));
          }, 10);
        });
      },
    });
    const att = await clientFor(server).attach('j1');
    await sleep(20); // let the first ack arrive
    let resolved = false;
    const write = att.stdin.write('x'.repeat(35)).then(() => (resolved = true));
    await sleep(5);
    assert.equal(resolved, false, 'not resolved while bytes wait for the window');
    await write;
    await sleepUntil(() => stdin.length === 35, 2000, 'all 35 bytes at the server');
    assert.deepEqual(violations, []);
    att.detach();
  });

  it('end() sends CLOSE after the last byte; writes after end() reject with ConflictError', async () => {
    const server = await serve({ connection: (s) => s.ws.send(hello()) });
    const att = await clientFor(server).attach('j1');
    void att.stdin.write('ab');
    await att.stdin.end();
    await assert.rejects(att.stdin.write('c'), ConflictError);
    await sleepUntil(() => server.sockets[0]!.frames.length === 2, 2000, 'STDIN and CLOSE');
    const frames = framesOf(server.sockets[0]!);
    assert.equal(frames[0]!.tag, Tag.STDIN);
    assert.deepEqual(frames[1], { tag: Tag.CLOSE, channel: 0 });
    att.detach();
  });

  it('refuses stdin of a job that is not interactive with ConflictError', async () => {
    const server = await serve({ connection: (s) => s.ws.send(hello({ interactive: false })) });
    const att = await clientFor(server).attach('j1');
    await assert.rejects(att.stdin.write('x'), (err) => err instanceof ConflictError && /not interactive/.test(err.message));
    att.detach();
  });

  it('pending writes reject with ConflictError when the job ends; a pending end() resolves', async () => {
    const server = await serve({
      connection(s) {
        s.ws.send(hello());
        s.ws.send(encodeStdinAck(0, 0)); // the job reads nothing
        setTimeout(() => {
          s.ws.send(exitFrame(0));
          s.ws.close();
        }, 50);
      },
    });
    const att = await clientFor(server).attach('j1');
    await sleep(10);
    const write = att.stdin.write('stuck');
    const end = att.stdin.end();
    await assert.rejects(write, (err) => err instanceof ConflictError && /has ended/.test(err.message));
    await end;
    await att.exit;
  });
});

describe('Node stream adapters', () => {
  it('toReadable yields output bytes (optionally one channel) and stdinWritable pipes with end-of-input', async () => {
    const job = new FakeOutput();
    job.append('stdout', 'out1 ');
    job.append('stderr', 'err ');
    job.append('stdout', 'out2');
    const stdin: number[] = [];
    const server = await serve({
      connection(s) {
        s.ws.send(hello());
        job.send(s.ws, job.chunks);
        onFrame(s, (f) => {
          if (f.tag === Tag.STDIN) accept(stdin, f);
          if (f.tag === Tag.CLOSE) {
            s.ws.send(exitFrame());
            s.ws.close();
          }
        });
      },
    });
    const att = await clientFor(server).attach('j1');
    const out: Uint8Array[] = [];
    const reading = (async () => {
      for await (const chunk of toReadable(att, 'stdout')) out.push(chunk as Uint8Array);
    })();
    await pipeline(Readable.from(['ping ', 'pong']), stdinWritable(att));
    await reading;
    assert.equal(text(concat(out)), 'out1 out2');
    assert.equal(text(new Uint8Array(stdin)), 'ping pong');
    await att.exit;
  });
});

describe('attach exit ordering', () => {
  it('holds exit back until the reader has read every chunk queued before it', async () => {
    const job = new FakeOutput();
    for (let i = 0; i < 50; i++) job.append('stdout', new Uint8Array(60_000).fill(i));
    const server = await serve({
      connection(s) {
        s.ws.send(hello());
        job.send(s.ws, job.chunks);
        s.ws.send(exitFrame(3));
        s.ws.close();
      },
    });
    const att = await clientFor(server).attach('j1');
    let bytes = 0;
    let early = false;
    void att.exit.then(() => {
      if (bytes < 50 * 60_000) early = true;
    });
    for await (const c of att.output) {
      bytes += c.data.byteLength;
      await sleep(1); // a slow reader: the exit frame arrives while chunks wait in the queue
    }
    assert.equal((await att.exit).exitCode, 3);
    assert.equal(bytes, 50 * 60_000);
    assert.equal(early, false);
  });

  it('holds exit back for a reader that starts in the same turn as attach, even when all frames came in one burst', async () => {
    const server = await serve({
      connection(s) {
        const frames = [hello(), ...[0, 1, 2].map((i) => encodeOutput('stdout', i, i, new Uint8Array([i]))), exitFrame(0)];
        // One WebSocket message each, but one TCP write: the client sees them in one burst.
        s.ws.send(concat(frames.slice(0, 1)));
        for (const f of frames.slice(1)) s.ws.send(f);
        s.ws.close();
      },
    });
    const att = await clientFor(server).attach('j1');
    let read = 0;
    let early = false;
    void att.exit.then(() => {
      if (read < 3) early = true;
    });
    for await (const _ of att.output) read++;
    await att.exit;
    assert.equal(read, 3);
    assert.equal(early, false);
  });

  it('resolves exit when nobody reads the output', async () => {
    const server = await serve({
      connection(s) {
        s.ws.send(hello());
        s.ws.send(encodeOutput('stdout', 0, 0, new Uint8Array(10)));
        s.ws.send(exitFrame(0));
        s.ws.close();
      },
    });
    const att = await clientFor(server).attach('j1');
    assert.equal((await att.exit).exitCode, 0);
  });

  it('resolves a held exit when the reader breaks out', async () => {
    const server = await serve({
      connection(s) {
        s.ws.send(hello());
        for (let i = 0; i < 5; i++) s.ws.send(encodeOutput('stdout', i, i, new Uint8Array([i])));
        s.ws.send(exitFrame(0));
        s.ws.close();
      },
    });
    const att = await clientFor(server).attach('j1');
    const it = att.output[Symbol.asyncIterator]();
    await it.next();
    await sleep(50);
    let resolved = false;
    void att.exit.then(() => (resolved = true));
    await sleep(10);
    assert.equal(resolved, false, 'four chunks still unread');
    await it.return?.();
    assert.equal((await att.exit).exitCode, 0);
  });
});
