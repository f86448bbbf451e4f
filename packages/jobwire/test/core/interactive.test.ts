import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { OutputChunk } from '@jobwire/client';
import WebSocket from 'ws';
import { Tag, decodeFrame, encodeClose, encodeStdin, type Frame } from '@jobwire/client/protocol';
import { FIXTURES, collect, concat, withServer } from '../helpers.js';

const rot13 = (s: string): string =>
  s.replace(/[a-z]/gi, (c) => {
    const base = c <= 'Z' ? 65 : 97;
    return String.fromCharCode(((c.charCodeAt(0) - base + 13) % 26) + base);
  });

describe('interactive jobs', () => {
  it('plays rot13 ping-pong: each reply arrives before the next line is sent, then stdin EOF gives exit 0', async () => {
    await withServer(async ({ client }) => {
      const job = await client.submitInteractiveJob({ executable: process.execPath, arguments: [join(FIXTURES, 'rot13.mjs')], queueName: 'unlimited' });
      const lines = ['Zlfgvp aboyr tnf,', 'Urnil lrg syrrgvat sebz tenfc,', 'Oyhr yvxr oheavat vpr.'];
      const it = job.output[Symbol.asyncIterator]();
      for (const line of lines) {
        await job.stdin.write(line + '\n');
        let got = '';
        while (!got.endsWith('\n')) {
          const next = await it.next();
          assert.equal(next.done, false, 'output ended before the reply');
          assert.equal(next.value.channel, 'stdout');
          got += Buffer.from(next.value.data).toString();
        }
        assert.equal(got, rot13(line) + '\n');
      }
      await job.stdin.end();
      const exit = await job.exit;
      assert.equal(exit.status, 'Success');
      assert.equal(exit.exitCode, 0);
    });
  });

  it('carries 16 MiB of random bytes through cat unchanged', async () => {
    await withServer(async ({ client }) => {
      const input = randomBytes(16 * 1024 * 1024);
      const job = await client.submitInteractiveJob({ executable: 'cat', queueName: 'unlimited' });
      const received = collect(job.output);
      for (let i = 0; i < input.length; i += 1024 * 1024) await job.stdin.write(input.subarray(i, i + 1024 * 1024));
      await job.stdin.end();
      const chunks = await received;
      const exit = await job.exit;
      assert.equal(exit.exitCode, 0);
      const output = concat(chunks.map((c) => c.data));
      assert.equal(output.length, input.length);
      assert.ok(output.equals(input), 'bytes differ');
    });
  });

  it('replays stored output in WebSocket messages of up to 1 MiB of one channel, not a message per pipe read', async () => {
    await withServer(async ({ client }) => {
      const bytes = 1024 * 1024 + 300_000;
      const job = await client.submitBatchJob({ executable: 'head', arguments: ['-c', String(bytes), '/dev/zero'], queueName: 'unlimited' });
      const live = await client.attach(job.id);
      await collect(live.output);
      assert.equal((await live.exit).exitCode, 0);
      // Stored as pipe reads (64 KiB at most each); replayed in reads of 1 MiB from the stream log
      // (files, or Redis in distributed mode), so in two messages: 1 MiB, then the rest.
      const replay = await client.attach(job.id, { from: 0 });
      const chunks = await collect(replay.output);
      await replay.exit;
      assert.equal(chunks.length, 2, `${chunks.length} messages`);
      const [first, second] = chunks as [OutputChunk, OutputChunk];
      assert.deepEqual([first.channel, first.pos, second.channel, second.pos], ['stdout', 0, 'stdout', first.data.byteLength]);
      assert.ok(first.data.byteLength <= 1024 * 1024 && first.data.byteLength > 1024 * 1024 - 64 * 1024, `a first message of ${first.data.byteLength} bytes`);
      assert.equal(first.data.byteLength + second.data.byteLength, bytes);
    });
  });

  it('delivers seq 1 2000000 complete and in order across repeated detach and reattach', async () => {
    await withServer(async ({ client }) => {
      const job = await client.submitBatchJob({ executable: 'seq', arguments: ['1', '2000000'], queueName: 'unlimited' });
      const parts: Uint8Array[] = [];
      let next = 0;
      let exitCode: number | null | undefined;
      for (let round = 0; exitCode === undefined; round++) {
        const att = await client.attach(job.id, { from: next });
        let taken = 0;
        let detached = false;
        for await (const chunk of att.output) {
          assert.equal(chunk.pos, next, 'a chunk starts where the previous one ended');
          parts.push(chunk.data);
          next = chunk.pos + chunk.data.byteLength;
          taken += chunk.data.byteLength;
          if (round < 5 && taken > 200_000) {
            att.detach();
            detached = true;
            break;
          }
        }
        if (!detached) exitCode = (await att.exit).exitCode;
      }
      assert.equal(exitCode, 0);
      const text = concat(parts).toString();
      const expected = Array.from({ length: 2_000_000 }, (_, i) => String(i + 1)).join('\n') + '\n';
      assert.equal(text.length, expected.length);
      assert.ok(text === expected, 'output differs from seq 1 2000000');
    });
  });

  it('keeps the order in which stdout and stderr chunks arrived', async () => {
    await withServer(async ({ client }) => {
      const script = 'for i in 1 2 3 4 5 6; do echo out$i; sleep 0.05; echo err$i >&2; sleep 0.05; done';
      const job = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', script], queueName: 'unlimited' });
      const att = await client.attach(job.id);
      const seen = (await collect(att.output)).map((c) => `${c.channel}:${Buffer.from(c.data).toString().trim()}`);
      const expected = [1, 2, 3, 4, 5, 6].flatMap((i) => [`stdout:out${i}`, `stderr:err${i}`]);
      assert.deepEqual(seen, expected);
      // A late attach replays the same order from storage.
      const again = await client.attach(job.id);
      const replay = (await collect(again.output)).map((c) => `${c.channel}:${Buffer.from(c.data).toString().trim()}`);
      assert.deepEqual(replay, expected);
    });
  });

  it('lets two clients follow one job; one detaching does not disturb the other', async () => {
    await withServer(async ({ client, url, token }) => {
      const { Client } = await import('@jobwire/client');
      const other = new Client({ url, token });
      const job = await client.submitInteractiveJob({ executable: 'cat', queueName: 'unlimited' });
      const second = await other.attach(job.jobId);
      const firstIt = job.output[Symbol.asyncIterator]();
      await job.stdin.write('one\n');
      const a = await firstIt.next();
      assert.equal(Buffer.from(a.value!.data).toString(), 'one\n');
      const secondAll = collect(second.output);
      job.detach();
      // Type through a third attachment after the first detached.
      const third = await other.attach(job.jobId, { from: 4 });
      await third.stdin.write('two\n');
      await third.stdin.end();
      const exit = await third.exit;
      assert.equal(exit.exitCode, 0);
      const text = concat((await secondAll).map((c) => c.data)).toString();
      assert.equal(text, 'one\ntwo\n');
      assert.equal((await second.exit).exitCode, 0);
    });
  });

  it('acknowledges stdin on the attach socket whether or not the job answers: the ack held for an echo goes alone when none comes', async () => {
    await withServer(async ({ client, url, token }) => {
      // Reads every line and answers only the second.
      const job = await client.submitInteractiveJob({ executable: 'sh', arguments: ['-c', 'read a; read b; echo "$b"; cat >/dev/null'], queueName: 'unlimited' });
      const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/jobs/${job.jobId}/attach`, { headers: { authorization: `Bearer ${token}` } });
      const frames: Frame[] = [];
      let wake = (): void => {};
      ws.on('message', (data: Buffer) => {
        frames.push(decodeFrame(new Uint8Array(data)));
        wake();
      });
      const until = async (test: () => boolean): Promise<void> => {
        while (!test()) await new Promise<void>((resolve) => (wake = resolve));
      };
      const acked = (n: number) => (): boolean => frames.some((f) => f.tag === Tag.STDIN_ACK && f.consumed === n);
      await until(() => frames.some((f) => f.tag === Tag.HELLO));
      ws.send(encodeStdin(0, Buffer.from('one\n')));
      await until(acked(4));
      ws.send(encodeStdin(4, Buffer.from('two\n')));
      await until(() => frames.some((f) => f.tag === Tag.STDOUT));
      await until(acked(8));
      ws.send(encodeStdin(8, Buffer.from('three\n')));
      await until(acked(14));
      ws.send(encodeClose(0));
      await until(() => frames.some((f) => f.tag === Tag.STATUS && f.status.final));
      const tags = frames.map((f) => f.tag);
      assert.equal(tags[0], Tag.HELLO);
      assert.equal(tags.at(-1), Tag.STATUS);
      const out = frames.flatMap((f) => (f.tag === Tag.STDOUT ? [Buffer.from(f.data).toString()] : []));
      assert.deepEqual(out, ['two\n']);
      // Acks only move forward.
      const consumed = frames.flatMap((f) => (f.tag === Tag.STDIN_ACK ? [f.consumed] : []));
      assert.deepEqual(consumed, [...consumed].sort((a, b) => a - b));
      ws.close();
      assert.equal((await job.exit).exitCode, 0);
    });
  });

  it('delivers the exit status only after all output', async () => {
    await withServer(async ({ client }) => {
      const job = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'head -c 3000000 /dev/zero; exit 3'], queueName: 'unlimited' });
      const att = await client.attach(job.id);
      let bytes = 0;
      let exitSeenEarly = false;
      void att.exit.then(() => {
        if (bytes < 3_000_000) exitSeenEarly = true;
      });
      for await (const c of att.output) bytes += c.data.byteLength;
      const exit = await att.exit;
      assert.equal(bytes, 3_000_000);
      assert.equal(exitSeenEarly, false);
      assert.equal(exit.exitCode, 3);
      assert.equal(exit.status, 'Failed');
    });
  });
});
