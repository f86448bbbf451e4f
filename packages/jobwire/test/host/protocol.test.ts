/**
 * The host protocol: frames split anywhere, version negotiation both ways (a host of the
 * previous version serving a new client and the reverse), bad clients, and the host's exit when
 * it has nothing to do.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:net';
import { describe, test } from 'node:test';
import { HostClient, type HostJobEvent } from '../../src/host/client.js';
import { ensureHost } from '../../src/host/ensure.js';
import { HostVersionError } from '../../src/host/errors.js';
import { hostPaths } from '../../src/host/paths.js';
import { FrameDecoder, FrameError, FrameKind, MAX_FRAME_BYTES, jsonFrame, outputHeader, stdinHeader, TurnCork, type ExitRecord, type Frame } from '../../src/host/protocol.js';
import { hostStatus } from '../../src/host/recovery.js';
import { removeHome, tempHome, withServer } from '../helpers.js';
import { follow, hostGone, jobSpec, withHostHome } from './helpers.js';

const TIMEOUT = { timeout: 60_000 };

describe('host protocol: frames', () => {
  test('frames decode the same however the bytes are split; an OUTPUT frame may come in contiguous pieces, none copied', () => {
    const data = Buffer.from(Array.from({ length: 300 }, (_, i) => i & 0xff));
    const stream = Buffer.concat([
      jsonFrame({ type: 'ping', rid: 7 }),
      outputHeader('job-ü', 'stderr', 2 ** 40 + 3, 2 ** 33, data.length),
      data,
      outputHeader('e', 'stdout', 9, 9, 0),
      stdinHeader('j', 5, 3),
      Buffer.from('abc'),
    ]);
    for (const step of [1, 2, 3, 5, 7, 64, stream.length]) {
      const decoder = new FrameDecoder();
      const frames: Frame[] = [];
      const received: Buffer[] = [];
      for (let at = 0; at < stream.length; at += step) {
        const piece = stream.subarray(at, at + step);
        received.push(piece);
        frames.push(...decoder.push(piece));
      }
      assert.deepEqual(frames[0], { kind: FrameKind.json, message: { type: 'ping', rid: 7 } }, `split every ${step} bytes`);
      const outputs = frames.filter((frame) => frame.kind === FrameKind.output);
      const pieces = outputs.filter((frame) => frame.jobId === 'job-ü');
      let pos = 2 ** 40 + 3;
      let offset = 2 ** 33;
      for (const piece of pieces) {
        assert.deepEqual([piece.chunk.channel, piece.chunk.pos, piece.chunk.offset], ['stderr', pos, offset]);
        // A view of a received buffer, not a copy.
        assert.ok(received.some((buffer) => buffer.buffer === piece.chunk.data.buffer));
        pos += piece.chunk.data.byteLength;
        offset += piece.chunk.data.byteLength;
      }
      assert.deepEqual(Buffer.concat(pieces.map((piece) => piece.chunk.data)), data);
      const empty = outputs.filter((frame) => frame.jobId === 'e');
      assert.equal(empty.length, 1);
      assert.deepEqual([empty[0]!.chunk.pos, empty[0]!.chunk.data.byteLength], [9, 0]);
      assert.equal(frames.length, 1 + outputs.length + 1);
      const stdin = frames.at(-1)!;
      assert.ok(stdin.kind === FrameKind.stdin && stdin.jobId === 'j' && stdin.offset === 5 && stdin.data.toString() === 'abc');
    }
  });

  test('a frame longer than the limit, or of an unknown kind, is refused', () => {
    const long = Buffer.alloc(5);
    long.writeUInt32BE(MAX_FRAME_BYTES + 1, 0);
    assert.throws(() => new FrameDecoder().push(long), FrameError);
    assert.throws(() => new FrameDecoder().push(Buffer.from([0, 0, 0, 1, 99])), /unknown frame kind 99/);
    assert.throws(() => new FrameDecoder().push(Buffer.from([0, 0, 0, 3, 1, 0x5b, 0x5d])), /must hold an object/);
    assert.throws(() => new FrameDecoder().push(Buffer.from([0, 0, 0, 3, 2, 9, 0x61])), /too short/);
  });
});

describe('host protocol: versions', () => {
  test('a client speaking only version 1 is served by a host that speaks 1 and 2', TIMEOUT, async () => {
    await withHostHome(async (home) => {
      const { client } = await ensureHost(home, { versions: [1], host: { versions: [1, 2] } });
      assert.equal(client.version, 1);
      assert.deepEqual(client.host.versions, [1, 2]);
      await client.start(jobSpec('v1', { executable: 'echo', arguments: ['old client'] }));
      const seen = await follow(client, 'v1');
      assert.equal((await seen.exit).exitCode, 0);
      assert.equal(seen.text(), 'old client\n');
      // A client of the same build as the host gets the newer version from the same host.
      const newer = await HostClient.connect(hostPaths(home).socket, { versions: [1, 2] });
      assert.equal(newer.version, 2);
      newer.close();
      client.close();
    });
  });

  test('a host speaking only version 1 (the previous build) keeps serving a client that speaks 1 and 2', TIMEOUT, async () => {
    await withHostHome(async (home) => {
      const { client } = await ensureHost(home, { versions: [1, 2], host: { versions: [1] } });
      assert.equal(client.version, 1);
      await client.start(jobSpec('v2', { executable: 'echo', arguments: ['new client'] }));
      const seen = await follow(client, 'v2');
      assert.equal((await seen.exit).exitCode, 0);
      assert.equal(seen.text(), 'new client\n');
      client.close();
    });
  });

  test('with no version in common the host refuses, naming its versions, and goes on serving others', TIMEOUT, async () => {
    await withHostHome(async (home) => {
      const { client } = await ensureHost(home, { host: { versions: [1] } });
      await client.start(jobSpec('keeps', { executable: 'cat', interactive: true }));
      await assert.rejects(ensureHost(home, { versions: [2] }), (error: unknown) => {
        assert.ok(error instanceof HostVersionError);
        assert.deepEqual(error.hostVersions, [1]);
        assert.match(error.message, /speaks protocol versions 1; the client offered 2/);
        return true;
      });
      assert.equal(hostStatus(home).state, 'running', 'an incompatible client does not replace the host');
      const seen = await follow(client, 'keeps');
      client.writeStdin('keeps', 0, Buffer.from('still here'));
      await seen.until('still here');
      await client.terminate('keeps', { graceMs: 1000, reason: 'test over' });
      await seen.exit;
      client.close();
    });
  });

  test('a client that does not start with a hello is told why and disconnected; the host goes on', TIMEOUT, async () => {
    await withHostHome(async (home) => {
      const { client } = await ensureHost(home);
      const raw = connect(hostPaths(home).socket);
      const received: Buffer[] = [];
      raw.on('data', (data: Buffer) => received.push(data));
      await new Promise<void>((resolve) => raw.on('connect', () => resolve()));
      raw.write(jsonFrame({ type: 'list', rid: 1 }));
      await new Promise<void>((resolve) => raw.on('close', () => resolve()));
      const frames = new FrameDecoder().push(Buffer.concat(received));
      assert.equal(frames.length, 1);
      const frame = frames[0]!;
      assert.ok(frame.kind === FrameKind.json);
      assert.match(JSON.stringify(frame.message), /"type":"fatal".*the first frame must be/);
      await client.ping();
      client.close();
    });
  });
});

describe('host lifetime', () => {
  test('the host exits by itself once it has no job running and no client, and removes its socket and host.json', TIMEOUT, async () => {
    await withHostHome(async (home) => {
      const { client } = await ensureHost(home, { host: { idleMs: 200 } });
      const pid = client.host.pid;
      // A job that runs while nobody is connected keeps the host.
      await client.start(jobSpec('waits', { executable: 'sh', arguments: ['-c', 'read x; echo "$x"'], interactive: true }));
      client.close();
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const { client: back } = await ensureHost(home);
      assert.equal(back.host.pid, pid, 'the host stayed while its job ran');
      const seen = await follow(back, 'waits');
      back.writeStdin('waits', 0, Buffer.from('done\n'));
      await seen.exit;
      await back.forget('waits');
      back.close();
      await hostGone(home, pid);
      assert.equal(existsSync(hostPaths(home).socket), false);
      assert.equal(existsSync(hostPaths(home).info), false);
      assert.equal(hostStatus(home).state, 'absent');
    });
  });
});

describe('host protocol: output window (version 2)', () => {
  /** The job's merged output end as the host reports it, once it has stayed the same for half a second. */
  async function settledEnd(client: HostClient, jobId: string): Promise<number> {
    let last = -1;
    for (let i = 0; i < 120; i++) {
      const job = (await client.list()).find((j) => j.jobId === jobId)!;
      if (job.output.end === last) return last;
      last = job.output.end;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    throw new Error(`the output of ${jobId} kept growing`);
  }

  test('a job with an outputWindow is read at most a window beyond the newest output-ack; each ack lets it go on, to its end', TIMEOUT, async () => {
    await withHostHome(async (home) => {
      const { client } = await ensureHost(home);
      assert.ok(client.version >= 2);
      const total = 4 * 1024 * 1024;
      const window = 256 * 1024;
      await client.start(jobSpec('windowed', { executable: 'head', arguments: ['-c', String(total), '/dev/zero'], outputWindow: window }));
      const seen = await follow(client, 'windowed');
      const held = await settledEnd(client, 'windowed');
      assert.ok(held >= window && held < window + 256 * 1024, `held at ${held} bytes: the window and what one read brings`);
      assert.equal((await client.list()).find((j) => j.jobId === 'windowed')!.exit, null, 'head is still running, blocked in its write');
      // Acked up to what was read: the host reads on, a window beyond each ack.
      let acked = 0;
      while (acked < total) {
        const end = await settledEnd(client, 'windowed');
        assert.ok(end <= acked + window + 256 * 1024, `read ${end} bytes with ${acked} acknowledged`);
        acked = end;
        await client.ackOutput('windowed', acked);
        if (end === total) break;
      }
      assert.equal((await seen.exit).exitCode, 0);
      assert.equal(seen.end, total, 'every byte arrived');
      client.close();
    });
  });

  test('a version 1 client sends no ack (ackOutput says so), and a version 1 host ignores the window', TIMEOUT, async () => {
    await withHostHome(async (home) => {
      const { client } = await ensureHost(home, { versions: [1, 2], host: { versions: [1] } });
      assert.equal(client.version, 1);
      assert.equal(await client.ackOutput('none', 10), false);
      const total = 1024 * 1024;
      await client.start(jobSpec('unwindowed', { executable: 'head', arguments: ['-c', String(total), '/dev/zero'], outputWindow: 64 * 1024 }));
      const seen = await follow(client, 'unwindowed');
      assert.equal((await seen.exit).exitCode, 0);
      assert.equal(seen.end, total);
      client.close();
    });
  });
});

describe('host protocol: forget on exit (version 3)', () => {
  /** Starts `jobId` following it with `forget`; resolves with its exit and the output seen. */
  async function startForgetting(client: HostClient, jobId: string, words: string): Promise<{ exit: ExitRecord; text: string }> {
    const chunks: Buffer[] = [];
    let onExit!: (exit: ExitRecord) => void;
    const exited = new Promise<ExitRecord>((resolve) => (onExit = resolve));
    const listener = (event: HostJobEvent): void => {
      if (event.type === 'output') chunks.push(Buffer.from(event.chunk.data));
      else if (event.type === 'exit') onExit(event.exit);
    };
    await client.start(jobSpec(jobId, { executable: 'echo', arguments: [words] }), { listener, forget: true });
    const exit = await exited;
    return { exit, text: Buffer.concat(chunks).toString() };
  }

  test('a job started with forget is forgotten by the host once its exit is sent, its output and exit.json complete', TIMEOUT, async () => {
    await withHostHome(async (home) => {
      const { client } = await ensureHost(home);
      assert.equal(client.forgetsOnExit, true);
      const { exit, text } = await startForgetting(client, 'gone', 'all of it');
      assert.equal(exit.exitCode, 0);
      assert.equal(text, 'all of it\n');
      for (let i = 0; i < 100 && (await client.list()).some((job) => job.jobId === 'gone'); i++) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal((await client.list()).some((job) => job.jobId === 'gone'), false, 'the host forgot it without a forget request');
      assert.equal(existsSync(join(hostPaths(home).output, 'gone', 'exit.json')), true, 'its end stays on disk for recovery');
      await assert.rejects(client.forget('gone'), /holds no job/, 'a forget after it finds nothing');
      client.close();
    });
  });

  test('a version 2 client asking forget of a host of version 3 gets the old behaviour: the job waits for its forget', TIMEOUT, async () => {
    await withHostHome(async (home) => {
      const { client } = await ensureHost(home, { versions: [1, 2] });
      assert.equal(client.version, 2);
      assert.equal(client.forgetsOnExit, false);
      const { exit } = await startForgetting(client, 'kept', 'old client');
      assert.equal(exit.exitCode, 0);
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal((await client.list()).some((job) => job.jobId === 'kept'), true, 'held until the client forgets it');
      await client.forget('kept');
      assert.equal((await client.list()).some((job) => job.jobId === 'kept'), false);
      client.close();
    });
  });
});

describe('host protocol: the environment once per connection (version 4)', () => {
  /** Runs `env` as `jobId` started with `baseEnv`; resolves with the variables it printed. */
  async function envOf(client: HostClient, jobId: string, baseEnv: Record<string, string>): Promise<Record<string, string>> {
    await client.start(jobSpec(jobId, { executable: '/usr/bin/env' }, { baseEnv }));
    const seen = await follow(client, jobId);
    assert.equal((await seen.exit).exitCode, 0);
    const vars: Record<string, string> = {};
    for (const line of seen.text('stdout').split('\n')) {
      const at = line.indexOf('=');
      if (at > 0) vars[line.slice(0, at)] = line.slice(at + 1);
    }
    return vars;
  }

  /** Reads JSON replies from a raw connection, by rid. */
  function rawReplies(socket: ReturnType<typeof connect>): (rid: number) => Promise<{ result?: unknown; error?: { message: string; field?: string } }> {
    const decoder = new FrameDecoder();
    const replies = new Map<number, { result?: unknown; error?: { message: string; field?: string } }>();
    const waiters: Array<() => void> = [];
    socket.on('data', (data: Buffer) => {
      for (const frame of decoder.push(data)) {
        if (frame.kind !== FrameKind.json) continue;
        const message = frame.message as { type: string; rid?: number };
        if (message.type === 'reply') replies.set(message.rid!, message as never);
      }
      for (const wake of waiters.splice(0)) wake();
    });
    return async (rid) => {
      while (!replies.has(rid)) await new Promise<void>((resolve) => waiters.push(resolve));
      return replies.get(rid)!;
    };
  }

  test('a version 4 client sends the environment once; every job starts with exactly the environment its start gave', TIMEOUT, async () => {
    await withHostHome(async (home) => {
      const { client } = await ensureHost(home);
      assert.equal(client.version, 4);
      const base = { PATH: process.env.PATH ?? '/usr/bin:/bin', KEPT: 'kept', DROPPED: 'dropped', CHANGED: 'before' };
      // The same object twice (the server's own environment, every start), then a changed one.
      const first = await envOf(client, 'env-1', base);
      const again = await envOf(client, 'env-2', base);
      const changed = { ...base, CHANGED: 'after', ADDED: 'added' } as Record<string, string>;
      delete changed.DROPPED;
      const third = await envOf(client, 'env-3', changed);
      for (const vars of [first, again]) assert.deepEqual([vars.KEPT, vars.DROPPED, vars.CHANGED, vars.ADDED], ['kept', 'dropped', 'before', undefined]);
      assert.deepEqual([third.KEPT, third.DROPPED, third.CHANGED, third.ADDED], ['kept', undefined, 'after', 'added']);
      // Most of it different: a new base-env, and the jobs still see theirs.
      const other = await envOf(client, 'env-4', { PATH: base.PATH, ONLY: 'this' });
      assert.deepEqual([other.ONLY, other.KEPT, other.CHANGED], ['this', undefined, undefined]);
      // A new base with a value that is not a string: the start fails naming job.baseEnv and
      // starts nothing (it does not run with the previous base); the next good one runs.
      await assert.rejects(
        client.start(jobSpec('env-bad', { executable: '/usr/bin/env' }, { baseEnv: { PATH: base.PATH, A: '1', B: 7 } as unknown as Record<string, string> })),
        (error: unknown) => error instanceof Error && (error as { field?: string }).field === 'job.baseEnv' && /string values/.test(error.message),
      );
      assert.equal((await client.list()).some((job) => job.jobId === 'env-bad'), false);
      assert.equal((await envOf(client, 'env-5', { PATH: base.PATH, AFTER: 'bad' })).AFTER, 'bad');
      client.close();
    });
  });

  test('on the wire: a start names only what differs from base-env; one without a base-env (or behind a refused one), or on a version 3 connection, is refused naming why', TIMEOUT, async () => {
    await withHostHome(async (home) => {
      const { client } = await ensureHost(home);
      const raw = connect(hostPaths(home).socket);
      await new Promise<void>((resolve) => raw.on('connect', () => resolve()));
      const reply = rawReplies(raw);
      raw.write(jsonFrame({ type: 'hello', versions: [4] }));
      const start = (rid: number, jobId: string, extra: object): void => {
        raw.write(jsonFrame({ type: 'start', rid, job: { ...jobSpec(jobId, { executable: '/usr/bin/env' }), ...extra } } as never));
      };
      start(1, 'no-base', { baseEnvDiff: {} });
      assert.match((await reply(1)).error?.message ?? '', /baseEnvDiff before any base-env on this connection/);
      raw.write(jsonFrame({ type: 'base-env', rid: 2, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', FROM_BASE: 'base', GONE: 'x' } }));
      assert.deepEqual((await reply(2)).result, {});
      start(3, 'both', { baseEnv: {}, baseEnvDiff: {} });
      assert.match((await reply(3)).error?.message ?? '', /baseEnv or baseEnvDiff, not both/);
      start(4, 'bad-diff', { baseEnvDiff: { set: { A: 1 } } });
      assert.equal((await reply(4)).error?.field, 'job.baseEnvDiff.set');
      start(5, 'diffed', { baseEnvDiff: { set: { EXTRA: 'extra' }, unset: ['GONE'] } });
      assert.equal((await reply(5)).error, undefined);
      const seen = await follow(client, 'diffed');
      assert.equal((await seen.exit).exitCode, 0);
      const text = seen.text('stdout');
      assert.match(text, /^FROM_BASE=base$/m);
      assert.match(text, /^EXTRA=extra$/m);
      assert.doesNotMatch(text, /^GONE=/m);
      // A refused base-env leaves none: a start behind it fails instead of running with the previous one.
      raw.write(jsonFrame({ type: 'base-env', rid: 6, env: { PATH: 7 } } as never));
      assert.equal((await reply(6)).error?.field, 'env');
      start(7, 'after-refused', { baseEnvDiff: {} });
      assert.match((await reply(7)).error?.message ?? '', /baseEnvDiff before any base-env/);
      for (const jobId of ['no-base', 'both', 'bad-diff', 'after-refused']) assert.equal((await client.list()).some((job) => job.jobId === jobId), false, `${jobId} was not started`);
      raw.destroy();
      // A version 3 connection knows neither.
      const old = connect(hostPaths(home).socket);
      await new Promise<void>((resolve) => old.on('connect', () => resolve()));
      const oldReply = rawReplies(old);
      old.write(jsonFrame({ type: 'hello', versions: [1, 2, 3] }));
      old.write(jsonFrame({ type: 'base-env', rid: 1, env: {} }));
      assert.match((await oldReply(1)).error?.message ?? '', /base-env needs protocol version 4/);
      old.destroy();
      client.close();
    });
  });

  test('a host of the previous version (3) serves a new client: starts carry the whole environment', TIMEOUT, async () => {
    await withHostHome(async (home) => {
      const { client } = await ensureHost(home, { host: { versions: [1, 2, 3] } });
      assert.equal(client.version, 3);
      const base = { PATH: process.env.PATH ?? '/usr/bin:/bin', OLD_HOST: 'yes' };
      assert.equal((await envOf(client, 'old-1', base)).OLD_HOST, 'yes');
      assert.equal((await envOf(client, 'old-2', { ...base, OLD_HOST: 'still' })).OLD_HOST, 'still');
      client.close();
    });
  });

  test('a host of the previous version (3) left running keeps serving a new server: function and batch jobs get the server\'s environment', TIMEOUT, async () => {
    const home = tempHome('jobwire-host-');
    process.env.JOBWIRE_TEST_SERVER_ENV = 'from the server';
    try {
      const { client } = await ensureHost(home, { host: { versions: [1, 2, 3] } });
      const hostPid = client.host.pid;
      await withServer(
        async ({ client: api }) => {
          client.close();
          for (const round of [1, 2]) {
            const fn = await api.submitBatchJob({ js: { code: 'return process.env.JOBWIRE_TEST_SERVER_ENV' } });
            // Its exit code says whether it saw the variable. (Not its output read back: a
            // readOutput right before the server's close sometimes holds the close up for good,
            // before this change too; that is not this test's subject.)
            const sh = await api.submitBatchJob({ executable: 'sh', arguments: ['-c', 'test "$JOBWIRE_TEST_SERVER_ENV" = "from the server"'] });
            const [fnDone, shDone] = await Promise.all([api.waitUntilDone(fn.id, 30_000), api.waitUntilDone(sh.id, 30_000)]);
            assert.deepEqual([fnDone.status, fnDone.result], ['Success', 'from the server'], `function job, round ${round}`);
            assert.equal(shDone.status, 'Success', `batch job, round ${round}: ${shDone.error ?? ''}`);
          }
          const status = hostStatus(home);
          assert.ok(status.state === 'running' && status.info.pid === hostPid && status.info.versions.join() === '1,2,3', 'the old host served them');
        },
        { home },
      );
    } finally {
      delete process.env.JOBWIRE_TEST_SERVER_ENV;
      removeHome(home);
    }
  });
});

describe('host protocol: writes held per turn (TurnCork)', () => {
  test("a kept hold lasts past the turn until released; a later keep does not extend the first keep's bound", TIMEOUT, async () => {
    const calls: string[] = [];
    const cork = new TurnCork({ cork: () => calls.push('cork'), uncork: () => calls.push('uncork') });
    const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
    cork.hold();
    await turn();
    assert.deepEqual(calls, ['cork', 'uncork'], 'a plain hold ends with its turn');
    calls.length = 0;
    const first = cork.keep(60_000);
    await turn();
    assert.deepEqual(calls, ['cork'], 'kept past the end of the turn');
    first();
    await turn();
    assert.deepEqual(calls, ['cork', 'uncork'], 'released: the writes leave at the end of that turn');
    calls.length = 0;
    cork.keep(40);
    const later = cork.keep(60_000);
    await turn();
    assert.deepEqual(calls, ['cork']);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(calls, ['cork', 'uncork'], "the first keep's bound ended the hold although the later keep was not released");
    later();
    await turn();
    assert.deepEqual(calls, ['cork', 'uncork'], 'a release after the bound changes nothing');
  });
});
