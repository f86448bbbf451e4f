/**
 * The job host with real host processes: batch jobs, the files it writes (read back by the
 * embedded stream log), replay then live, idempotent start, bad requests, one host per home.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { BadRequestError, ConflictError, NotFoundError, type OutputChunk } from '@jobwire/client';
import { ensureHost } from '../../src/host/ensure.js';
import { hostPaths } from '../../src/host/paths.js';
import type { HostJobEvent } from '../../src/host/client.js';
import { FrameDecoder, FrameKind, PROTOCOL_VERSIONS, jsonFrame, type ExitRecord } from '../../src/host/protocol.js';
import { FileStreamLog } from '../../src/store/embedded/file-stream-log.js';
import { sleepUntil } from '../helpers.js';
import { follow, jobSpec, withHostHome } from './helpers.js';

const TIMEOUT = { timeout: 60_000 };

describe('job host', () => {
  test('runs a batch job: output live in arrival order, exit code after the last byte', TIMEOUT, async () => {
    await withHostHome(async (home) => {
      const { client, started } = await ensureHost(home);
      assert.equal(started, true);
      const script = 'printf "one\\n"; sleep 0.1; printf "two\\n" >&2; sleep 0.1; printf "three\\n"; exit 3';
      const { job, existing } = await client.start(jobSpec('batch-1', { executable: 'sh', arguments: ['-c', script] }));
      assert.equal(existing, false);
      assert.ok(job.pid !== null && job.pid > 0);
      assert.equal(job.process?.runner.pid, client.host.pid, 'the host runs the job');
      const seen = await follow(client, 'batch-1');
      const exit = await seen.exit;
      assert.equal(exit.exitCode, 3);
      assert.equal(exit.signal, null);
      assert.equal(seen.text(), 'one\ntwo\nthree\n');
      assert.deepEqual(
        seen.chunks.map((chunk) => [chunk.channel, chunk.pos, chunk.offset]),
        [
          ['stdout', 0, 0],
          ['stderr', 4, 0],
          ['stdout', 8, 4],
        ],
      );
      assert.equal(seen.events.at(-1)?.type, 'exit', 'the exit is the last thing delivered');
      client.close();
    });
  });

  test('writes the embedded stream log format: the stream log reads back every chunk, both channels and the end', TIMEOUT, async () => {
    await withHostHome(async (home) => {
      const { client } = await ensureHost(home);
      // Many small chunks on both channels, interleaved, plus a large one.
      const script = 'for i in $(seq 1 300); do echo "out $i"; echo "err $i" >&2; done; head -c 300000 /dev/zero | tr "\\0" x';
      await client.start(jobSpec('format-1', { executable: 'sh', arguments: ['-c', script] }));
      const seen = await follow(client, 'format-1');
      const exit = await seen.exit;
      client.close();

      const log = new FileStreamLog({ dir: hostPaths(home).output, tailBytes: 1024, onListenerError: () => {} });
      try {
        const sizes = await log.sizes('format-1');
        assert.equal(sizes.end, exit.output.end);
        assert.equal(sizes.stdout, exit.output.stdout);
        assert.equal(sizes.stderr, exit.output.stderr);
        assert.equal(sizes.outputClosed, true, 'state.json says the output is closed');
        const read = [];
        for (let from = 0; from < sizes.end; ) {
          const page = await log.readOutput('format-1', from, 64 * 1024);
          read.push(...page.chunks);
          const last = page.chunks.at(-1)!;
          from = last.pos + last.data.byteLength;
        }
        // Chunks may be cut differently (the files hold pipe reads, clients get frames of what
        // came in a turn), so runs of one channel are compared.
        assert.deepEqual(channelRuns(read), channelRuns(seen.chunks), 'the files hold the bytes clients saw live, in the same order and places');
        assert.equal(Buffer.from(await log.readChannel('format-1', 'stderr', 0)).toString(), seen.text('stderr'));
      } finally {
        log.close();
      }
      const stored = JSON.parse(readFileSync(join(hostPaths(home).output, 'format-1', 'exit.json'), 'utf8')) as { exitCode: number; output: { end: number } };
      assert.equal(stored.exitCode, 0);
      assert.equal(stored.output.end, exit.output.end);
    });
  });

  test('a subscription from a past position replays from the files, then follows live: no gap, no repeat', TIMEOUT, async () => {
    await withHostHome(async (home) => {
      const { client } = await ensureHost(home);
      // Prints 20000 numbered lines, then waits for a line on stdin, then prints more.
      const script = 'seq 1 20000; read go; seq 20001 20100';
      await client.start(jobSpec('replay-1', { executable: 'sh', arguments: ['-c', script], interactive: true }));
      const first = await follow(client, 'replay-1');
      await first.until('\n20000\n');
      // A second connection joins late, from the middle of a line.
      const { client: late } = await ensureHost(home);
      const from = 1000;
      const second = await follow(late, 'replay-1', from);
      await second.until('\n20000\n');
      client.writeStdin('replay-1', 0, Buffer.from('go\n'));
      const [exitA, exitB] = await Promise.all([first.exit, second.exit]);
      assert.equal(exitA.exitCode, 0);
      assert.deepEqual(exitB, exitA);
      const all = Array.from({ length: 20100 }, (_, i) => `${i + 1}\n`).join('');
      assert.equal(first.text(), all);
      assert.equal(second.text(), all.slice(from));
      client.close();
      late.close();
    });
  });

  test('a function job reports its progress and result through the host; the environment is the one sent', TIMEOUT, async () => {
    await withHostHome(async (home) => {
      // The host inherits this from the process that starts it; the job must not see it.
      process.env.ONLY_IN_HOST = 'leaked';
      const { client } = await ensureHost(home).finally(() => delete process.env.ONLY_IN_HOST);
      const code = 'progress("half way"); console.log(process.env.FROM_SERVER, process.env.ONLY_IN_HOST ?? "none"); return { answer: args[0] * 2 };';
      await client.start(
        jobSpec('fn-1', { js: { code, args: [21] } }, { baseEnv: { PATH: process.env.PATH ?? '/usr/bin:/bin', FROM_SERVER: 'server env' } }),
      );
      const seen = await follow(client, 'fn-1');
      const exit = await seen.exit;
      assert.deepEqual(exit.result, { answer: 42 });
      assert.equal(exit.exitCode, 0);
      assert.equal(seen.text(), 'server env none\n', "the job starts from the submitting server's environment, not the host's");
      const [job] = await client.list();
      assert.equal(job?.progress, 'half way');
      client.close();
    });
  });

  test("a function job that ends while its start's reply is held: reply and exit come in one write, reply first, result kept", TIMEOUT, async () => {
    await withHostHome(async (home) => {
      // A hold far longer than the job (a new runner included), so what is asserted is the order, not a race.
      const { client } = await ensureHost(home, { host: { functionStartHoldMs: 60_000 } });
      client.close();
      const socket = connect(hostPaths(home).socket);
      const decoder = new FrameDecoder();
      /** The JSON messages of each read, one array per 'data' event. */
      const reads: Array<Array<{ type: string; rid?: number; jobId?: string; exit?: { result?: unknown; exitCode: number | null } }>> = [];
      const exited = new Promise<void>((resolve, reject) => {
        socket.on('error', reject);
        socket.on('data', (data: Buffer) => {
          const messages = decoder.push(data).flatMap((frame) => (frame.kind === FrameKind.json ? [frame.message as (typeof reads)[number][number]] : []));
          reads.push(messages);
          if (messages.some((m) => m.type === 'welcome')) {
            const job = jobSpec('fn-held', { js: { code: 'return 7' } }, { baseEnv: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
            socket.write(jsonFrame({ type: 'start', rid: 1, job, subscribe: { output: true, forget: true } }));
          }
          if (messages.some((m) => m.type === 'exit')) resolve();
        });
      });
      socket.write(jsonFrame({ type: 'hello', versions: [...PROTOCOL_VERSIONS] }));
      await exited;
      socket.destroy();
      const withReply = reads.find((messages) => messages.some((m) => m.type === 'reply' && m.rid === 1));
      assert.ok(withReply, 'the start was answered');
      assert.deepEqual(
        withReply.map((m) => m.type),
        ['reply', 'exit'],
        'the reply and the exit arrived in one read, the reply first',
      );
      const exit = withReply[1]!;
      assert.equal(exit.jobId, 'fn-held');
      assert.equal(exit.exit?.exitCode, 0);
      assert.equal(exit.exit?.result, 7, 'the result travels with the exit');
    });
  });

  test('a function job still running when the hold ends gets its reply then, and its exit when it ends', TIMEOUT, async () => {
    await withHostHome(async (home) => {
      const { client } = await ensureHost(home, { host: { functionStartHoldMs: 50 } });
      const exits: ExitRecord[] = [];
      const listener = (event: HostJobEvent): void => {
        if (event.type === 'exit') exits.push(event.exit);
      };
      const { job } = await client.start(jobSpec('fn-long', { js: { code: 'await new Promise((r) => setTimeout(r, 600_000)); return 1' } }), { listener });
      assert.equal(job.exit, null, 'answered while it runs');
      assert.equal(exits.length, 0, 'no exit before the job ends');
      const [listed] = await client.list();
      assert.equal(listed?.exit, null, 'still running after the reply');
      await client.terminate('fn-long', { graceMs: 1000, reason: 'test over' });
      await sleepUntil(() => exits[0], 15_000, 'the exit after the stop');
      assert.equal(exits[0]!.stoppedBy, 'test over');
      client.close();
    });
  });

  test('a client that stops reading does not hold up the job, and catches up from the files, in order, exit last', TIMEOUT, async () => {
    await withHostHome(async (home) => {
      const { client } = await ensureHost(home);
      const bytes = 6 * 1024 * 1024;
      await client.start(jobSpec('flood', { executable: 'sh', arguments: ['-c', `head -c ${bytes} /dev/urandom | od -An -tx1 -v -w32`] }));
      // A raw client that subscribes, then reads nothing.
      const raw = connect(hostPaths(home).socket);
      await new Promise<void>((resolve) => raw.on('connect', () => resolve()));
      raw.write(jsonFrame({ type: 'hello', versions: [...PROTOCOL_VERSIONS] }));
      raw.write(jsonFrame({ type: 'subscribe', rid: 1, jobId: 'flood', from: 0, output: true }));
      raw.pause();
      // The job runs to its end meanwhile (another client watches it end).
      const watcher = await follow(client, 'flood');
      const exit = await watcher.exit;
      assert.equal(exit.exitCode, 0);
      // Now the slow client reads everything: every byte once and in order, then the exit.
      const decoder = new FrameDecoder();
      let end = 0;
      const output: Buffer[] = [];
      await new Promise<void>((resolve, reject) => {
        raw.on('data', (data: Buffer) => {
          for (const frame of decoder.push(data)) {
            if (frame.kind === FrameKind.output) {
              if (frame.chunk.pos !== end) reject(new Error(`chunk at ${frame.chunk.pos}, expected ${end}`));
              end += frame.chunk.data.byteLength;
              output.push(Buffer.from(frame.chunk.data));
            } else if (frame.kind === FrameKind.json && (frame.message as { type?: string }).type === 'exit') {
              if (end !== exit.output.end) reject(new Error(`exit at ${end}, before the end ${exit.output.end}`));
              resolve();
            }
          }
        });
        raw.resume();
      });
      raw.destroy();
      assert.equal(Buffer.concat(output).toString('latin1'), watcher.text());
      client.close();
    });
  });

  test('start is idempotent per job id: a repeat answers the running job and starts nothing', TIMEOUT, async () => {
    await withHostHome(async (home) => {
      const { client } = await ensureHost(home);
      const spec = jobSpec('twice', { executable: 'cat', interactive: true });
      const a = await client.start(spec);
      const b = await client.start(spec);
      assert.equal(b.existing, true);
      assert.equal(b.job.pid, a.job.pid);
      assert.deepEqual((await client.list()).map((job) => job.jobId), ['twice']);
      const seen = await follow(client, 'twice');
      await client.closeStdin('twice', 0);
      assert.equal((await seen.exit).exitCode, 0);
      client.close();
    });
  });

  test('bad requests get errors naming what is wrong and change nothing', TIMEOUT, async () => {
    await withHostHome(async (home) => {
      const { client } = await ensureHost(home);
      await assert.rejects(client.start(jobSpec('../escape', { executable: 'true' })), (error: unknown) => error instanceof BadRequestError && /job\.jobId/.test(error.message));
      await assert.rejects(client.start(jobSpec('no-program', {})), (error: unknown) => error instanceof BadRequestError && /executable/.test(error.message));
      await assert.rejects(
        client.start(jobSpec('two-tasks', { executable: 'true', tasks: 2 })),
        (error: unknown) => error instanceof BadRequestError && error.code === 'unsupported' && error.field === 'tasks',
      );
      await assert.rejects(
        client.start({ ...jobSpec('bad-env', { executable: 'true' }), baseEnv: { PATH: 7 } as unknown as Record<string, string> }),
        (error: unknown) => error instanceof BadRequestError && error.field === 'job.baseEnv' && /string values/.test(error.message),
      );
      await assert.rejects(client.subscribe('nobody', () => {}), NotFoundError);
      await assert.rejects(client.forget('nobody'), NotFoundError);
      assert.deepEqual(await client.list(), [], 'nothing was started');
      assert.equal(existsSync(join(hostPaths(home).output, 'two-tasks')), false);
      assert.equal(existsSync(join(hostPaths(home).output, 'bad-env')), false);

      await client.start(jobSpec('runs', { executable: 'cat', interactive: true }));
      await assert.rejects(client.forget('runs'), ConflictError, 'a running job cannot be forgotten');
      await assert.rejects(client.subscribe('runs', () => {}, { from: 5 }), (error: unknown) => error instanceof BadRequestError && error.field === 'from');
      const seen = await follow(client, 'runs');
      client.writeStdin('runs', 0, Buffer.from('abc'));
      client.writeStdin('runs', 10, Buffer.from('gap'));
      await seen.until('abc');
      const refused = await new Promise<unknown>((resolve) => {
        const check = (): void => {
          const event = seen.events.find((e) => e.type === 'stdin-refused');
          if (event) resolve(event);
          else setTimeout(check, 10);
        };
        check();
      });
      assert.match(JSON.stringify(refused), /gap/);
      await client.closeStdin('runs', 3);
      assert.equal(seen.text(), 'abc', 'the refused bytes never reached the job');
      assert.equal((await seen.exit).stdin.consumed, 3);
      client.close();
    });
  });

  test('a job that cannot start ends with an error that says why, and its end is stored', TIMEOUT, async () => {
    await withHostHome(async (home) => {
      const { client } = await ensureHost(home);
      const { job } = await client.start(jobSpec('missing', { executable: 'no-such-program-xyz' }));
      assert.equal(job.pid, null);
      const seen = await follow(client, 'missing');
      const exit = await seen.exit;
      assert.match(exit.error ?? '', /cannot start "no-such-program-xyz": ENOENT/);
      assert.ok(existsSync(join(hostPaths(home).output, 'missing', 'exit.json')));
      client.close();
    });
  });

  test('one host per home: callers racing to start one all get the same host', TIMEOUT, async () => {
    await withHostHome(async (home) => {
      const all = await Promise.all(Array.from({ length: 4 }, () => ensureHost(home)));
      const pids = new Set(all.map(({ client }) => client.host.pid));
      assert.equal(pids.size, 1, `one host, got pids ${[...pids].join(', ')}`);
      assert.equal(all.filter(({ started }) => started).length, 1, 'exactly one caller started it');
      for (const { client } of all) client.close();
    });
  });
});

/** Consecutive chunks of one channel joined: `[channel, pos, offset, bytes as latin1]` per run. */
function channelRuns(chunks: readonly OutputChunk[]): Array<[string, number, number, string]> {
  const runs: Array<[string, number, number, string]> = [];
  for (const chunk of chunks) {
    const last = runs.at(-1);
    const text = Buffer.from(chunk.data).toString('latin1');
    if (last !== undefined && last[0] === chunk.channel && last[1] + last[3].length === chunk.pos) last[3] += text;
    else runs.push([chunk.channel, chunk.pos, chunk.offset, text]);
  }
  return runs;
}
