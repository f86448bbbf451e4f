import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FIXTURES, addUser, cliEnv, runCli, sleepUntil, withServer, type TestServer } from '../helpers.js';
import { isLoopback, peerAddress } from '../../src/grpc/auth.js';
import { XenonClient, clientForUser, grpc, rejectsWith, type Description } from './xenon-client.js';

const S = grpc.status;

/** A server with the gRPC service, and a Xenon client for its admin. */
async function withXenon(fn: (s: TestServer, x: XenonClient) => Promise<void>, options: { anonymous?: boolean } = {}): Promise<void> {
  await withServer(
    async (s) => {
      const x = new XenonClient(`127.0.0.1:${s.server.grpcPort}`, { token: s.token });
      try {
        await fn(s, x);
      } finally {
        x.close();
      }
    },
    { grpcPort: 0, ...(options.anonymous ? { grpcAllowAnonymousLoopback: true } : {}) },
  );
}

const rot13 = (s: string): string =>
  s.replace(/[a-z]/gi, (c) => {
    const base = c <= 'Z' ? 65 : 97;
    return String.fromCharCode(((c.charCodeAt(0) - base + 13) % 26) + base);
  });

describe('Xenon gRPC: authentication', () => {
  it('refuses token-less calls with UNAUTHENTICATED naming --grpc-allow-anonymous-loopback, and wrong tokens', async () => {
    await withXenon(async (s) => {
      const anonymous = new XenonClient(`127.0.0.1:${s.server.grpcPort}`);
      const wrong = new XenonClient(`127.0.0.1:${s.server.grpcPort}`, { token: 'not-a-token' });
      try {
        const e = await rejectsWith(anonymous.sched('localScheduler'), S.UNAUTHENTICATED);
        assert.match(e.details, /--grpc-allow-anonymous-loopback/);
        await rejectsWith(wrong.sched('localScheduler'), S.UNAUTHENTICATED);
        await rejectsWith(anonymous.stream('files', 'list', {}), S.UNAUTHENTICATED);
      } finally {
        anonymous.close();
        wrong.close();
      }
    });
  });

  it('reads loopback peers right: 127.0.0.0/8, ::1 and IPv4-mapped ones, nothing else', () => {
    const loopback = (peer: string): boolean => isLoopback(peerAddress(peer));
    for (const peer of ['127.0.0.1:5000', '127.0.1.1:42', '::1:5000', '[::1]:5000', '::ffff:127.0.0.1:5000', 'ipv4:127.0.0.1:1']) assert.ok(loopback(peer), peer);
    for (const peer of ['10.0.0.1:5000', '192.168.1.5:1', '::ffff:10.0.0.1:5000', 'fe80::1:5000', '[2001:db8::1]:5000', '128.0.0.1:1']) assert.ok(!loopback(peer), peer);
  });

  it('admits token-less loopback calls as the default user when allowed', async () => {
    await withXenon(
      async (s) => {
        const anonymous = new XenonClient(`127.0.0.1:${s.server.grpcPort}`);
        try {
          const sched = await anonymous.sched('localScheduler');
          const job = await anonymous.sched('submitBatchJob', { scheduler: sched, description: { executable: 'true' } });
          // The default user is the server's admin: its REST client sees the job.
          assert.equal((await s.server.store.getJob(job.id))?.owner, 'admin');
        } finally {
          anonymous.close();
        }
      },
      { anonymous: true },
    );
  });

  it("keeps users apart: another user's scheduler handle and job look like none", async () => {
    await withXenon(async (s, x) => {
      const other = await clientForUser(`127.0.0.1:${s.server.grpcPort}`, addUser(s.home, 'bob'));
      try {
        const sched = await x.sched('localScheduler');
        const job = await x.sched('submitBatchJob', { scheduler: sched, description: { executable: 'true' } });
        await rejectsWith(other.sched('getJobStatus', { scheduler: sched, job }), S.NOT_FOUND);
        const bobs = await other.sched('localScheduler');
        await rejectsWith(other.sched('getJobStatus', { scheduler: bobs, job }), S.NOT_FOUND, 'NoSuchJobException');
        assert.deepEqual((await other.sched('listSchedulers')).schedulers, [bobs]);
      } finally {
        other.close();
      }
    });
  });
});

describe('Xenon gRPC: SchedulerService', () => {
  it('describes the local adaptor with queues single (default), multi and unlimited, and refuses other adaptors clearly', async () => {
    await withXenon(async (_s, x) => {
      assert.deepEqual((await x.sched('getAdaptorNames')).name, ['local']);
      const descriptions = (await x.sched('getAdaptorDescriptions')).descriptions;
      assert.equal(descriptions[0].name, 'local');
      assert.equal(descriptions[0].supports_interactive, true);
      assert.equal((await x.sched('getAdaptorDescription', { name: 'local' })).supports_batch, true);
      const sched = await x.sched('create', { adaptor: 'local', location: '' });
      assert.match(sched.id, /^local:\/\//);
      assert.deepEqual((await x.sched('getQueueNames', sched)).name, ['single', 'multi', 'unlimited']);
      assert.equal((await x.sched('getDefaultQueueName', sched)).name, 'single');
      assert.equal((await x.sched('getDefaultRuntime', sched)).value, 0);
      assert.equal((await x.sched('getAdaptorName', sched)).name, 'local');
      assert.equal((await x.sched('getLocation', sched)).location, '');
      assert.equal((await x.sched('isOpen', sched)).value, true);
      assert.equal((await x.sched('getCredential', sched)).default_credential.username, 'admin');
      assert.deepEqual((await x.sched('getProperties', sched)).properties, {});
      const queue = await x.sched('getQueueStatus', { scheduler: sched, queue: 'single' });
      assert.equal(queue.name, 'single');
      assert.equal(queue.scheduler_specific_information.limit, '1');
      const statuses = (await x.sched('getQueueStatuses', { scheduler: sched, queues: ['multi', 'nope'] })).statuses;
      assert.equal(statuses[0].error_type, 'NONE');
      assert.equal(statuses[1].error_type, 'NOT_FOUND');
      await rejectsWith(x.sched('getQueueStatus', { scheduler: sched, queue: 'nope' }), S.NOT_FOUND, 'NoSuchQueueException');

      const slurm = await rejectsWith(x.sched('create', { adaptor: 'slurm', location: 'cluster' }), S.NOT_FOUND, 'UnknownAdaptorException');
      assert.match(slurm.details, /not available on this jobwire server/);
      await rejectsWith(x.sched('getAdaptorDescription', { name: 'ssh' }), S.NOT_FOUND, 'UnknownAdaptorException');
      await rejectsWith(x.sched('create', { adaptor: 'local', location: 'ssh://far' }), S.FAILED_PRECONDITION, 'InvalidLocationException');
      await rejectsWith(x.sched('create', { adaptor: 'local', password_credential: { username: 'u', password: 'p' } }), S.FAILED_PRECONDITION, 'InvalidCredentialException');
      await rejectsWith(x.sched('create', { adaptor: 'local', properties: { 'xenon.x': '1' } }), S.NOT_FOUND, 'UnknownPropertyException');

      const list = (await x.sched('listSchedulers')).schedulers.map((h: { id: string }) => h.id);
      assert.ok(list.includes(sched.id));
      await x.sched('close', sched);
      await rejectsWith(x.sched('getQueueNames', sched), S.NOT_FOUND);
    });
  });

  it('runs a batch job writing "Hello, World!" to a stdout file, waited on until done', async () => {
    await withXenon(async (_s, x) => {
      const sched = await x.sched('localScheduler');
      const job = await x.sched('submitBatchJob', { scheduler: sched, description: { executable: 'echo', arguments: ['Hello, World!'], stdout: 'hello.txt', name: 'hello' } });
      assert.equal(typeof job.id, 'string');
      const status = await x.sched('waitUntilDone', { scheduler: sched, job, timeout: 0 });
      assert.equal(status.done, true);
      assert.equal(status.running, false);
      assert.equal(status.state, 'DONE');
      assert.equal(status.exit_code, 0);
      assert.equal(status.error_type, 'NONE');
      assert.equal(status.name, 'hello');
      assert.equal(status.job.id, job.id);
      assert.equal(status.scheduler_specific_information['jobwire.status'], 'Success');
      // The job's working directory is the scheduler's file system's: read the file through it.
      const fs = await x.sched('getFileSystem', sched);
      const chunks = await x.stream('files', 'readFromFile', { filesystem: fs, path: { path: 'hello.txt' } });
      assert.equal(Buffer.concat(chunks.map((c) => c.buffer)).toString(), 'Hello, World!\n');
    });
  });

  it('waitUntilDone with a timeout returns the not-done status; cancelJob gives KILLED; statuses stay queryable', async () => {
    await withXenon(async (_s, x) => {
      const sched = await x.sched('localScheduler');
      const job = await x.sched('submitBatchJob', { scheduler: sched, description: { executable: 'sleep', arguments: ['30'], queue_name: 'unlimited' } });
      const running = await x.sched('waitUntilRunning', { scheduler: sched, job, timeout: 5000 });
      assert.equal(running.state, 'RUNNING');
      assert.equal(running.running, true);
      const started = Date.now();
      const notDone = await x.sched('waitUntilDone', { scheduler: sched, job, timeout: 300 });
      assert.ok(Date.now() - started >= 250, 'waited for the timeout');
      assert.equal(notDone.done, false);
      assert.equal(notDone.state, 'RUNNING');
      assert.deepEqual((await x.sched('getJobs', { scheduler: sched, queues: [] })).jobs, [job]);
      assert.deepEqual((await x.sched('getJobs', { scheduler: sched, queues: ['single'] })).jobs, []);
      await rejectsWith(x.sched('getJobs', { scheduler: sched, queues: ['nope'] }), S.NOT_FOUND, 'NoSuchQueueException');

      const cancelled = await x.sched('cancelJob', { scheduler: sched, job });
      const final = cancelled.done ? cancelled : await x.sched('waitUntilDone', { scheduler: sched, job, timeout: 0 });
      assert.equal(final.state, 'KILLED');
      assert.equal(final.done, true);
      assert.equal(final.error_type, 'CANCELLED');
      assert.match(final.error_message, /^local adaptor: /);
      // Unlike xenon-grpc, a finished job is not forgotten.
      for (let i = 0; i < 2; i++) assert.equal((await x.sched('getJobStatus', { scheduler: sched, job })).state, 'KILLED');
      const statuses = (await x.sched('getJobStatuses', { scheduler: sched, jobs: [job, { id: 'no-such-job' }] })).statuses;
      assert.equal(statuses[0].state, 'KILLED');
      assert.equal(statuses[1].error_type, 'NOT_FOUND');
      await rejectsWith(x.sched('getJobStatus', { scheduler: sched, job: { id: 'no-such-job' } }), S.NOT_FOUND, 'NoSuchJobException');
    });
  });

  it('maps exit codes, start failures and bad descriptions the way Xenon clients read them', async () => {
    await withXenon(async (_s, x) => {
      const sched = await x.sched('localScheduler');
      const run = async (description: Description): Promise<any> => {
        const job = await x.sched('submitBatchJob', { scheduler: sched, description: { queue_name: 'unlimited', ...description } });
        return x.sched('waitUntilDone', { scheduler: sched, job, timeout: 0 });
      };
      const three = await run({ executable: 'sh', arguments: ['-c', 'exit 3'] });
      assert.deepEqual([three.state, three.exit_code, three.error_type], ['DONE', 3, 'NONE']);
      const missing = await run({ executable: 'no-such-program-jobwire' });
      assert.deepEqual([missing.state, missing.done, missing.error_type], ['ERROR', true, 'XENON']);
      assert.match(missing.error_message, /no-such-program-jobwire/);
      const env = await run({ executable: 'sh', arguments: ['-c', 'test "$GREETING" = hi && test "$(pwd)" = /tmp'], environment: { GREETING: 'hi' }, working_directory: '/tmp' });
      assert.equal(env.exit_code, 0);

      const submit = (description: Description): Promise<unknown> => x.sched('submitBatchJob', { scheduler: sched, description });
      await rejectsWith(submit({ arguments: ['x'] }), S.INVALID_ARGUMENT, 'IncompleteJobDescriptionException');
      const queue = await rejectsWith(submit({ executable: 'true', queue_name: 'gpu' }), S.NOT_FOUND, 'NoSuchQueueException');
      assert.match(queue.details, /queue_name/);
      await rejectsWith(submit({ executable: 'true', max_memory: 100 }), S.UNIMPLEMENTED, 'UnsupportedJobDescriptionException');
      await rejectsWith(submit({ executable: 'true', tasks: 4 }), S.UNIMPLEMENTED, 'UnsupportedJobDescriptionException');
      await rejectsWith(submit({ executable: 'true', start_time: 'now' }), S.UNIMPLEMENTED, 'UnsupportedJobDescriptionException');
      await rejectsWith(submit({ executable: 'true', environment: { 'BAD NAME': 'x' } }), S.FAILED_PRECONDITION, 'InvalidJobDescriptionException');
      await rejectsWith(x.sched('submitBatchJob', { scheduler: { id: 'local://nobody@#1' }, description: { executable: 'true' } }), S.NOT_FOUND);
    });
  });

  it('a job submitted over gRPC is an ordinary jobwire job: `jobwire jobs` lists it', async () => {
    await withXenon(async (s, x) => {
      const sched = await x.sched('localScheduler');
      const job = await x.sched('submitBatchJob', { scheduler: sched, description: { executable: 'echo', arguments: ['listed'], name: 'from-xenon' } });
      await x.sched('waitUntilDone', { scheduler: sched, job, timeout: 0 });
      const r = await runCli(['jobs', '--json'], { env: cliEnv(s) });
      assert.equal(r.code, 0, r.stderr);
      const jobs = JSON.parse(r.stdout) as { id: string; name: string; status: string }[];
      const found = jobs.find((j) => j.id === job.id);
      assert.ok(found, `job ${job.id} not in: ${r.stdout}`);
      assert.equal(found.name, 'from-xenon');
      assert.equal(found.status, 'Success');
      const logs = await runCli(['logs', job.id], { env: cliEnv(s) });
      assert.equal(logs.stdout, 'listed\n');
    });
  });
});

describe('Xenon gRPC: interactive jobs (submitInteractiveJob)', () => {
  it('plays rot13 ping-pong: the first response carries only the job, each reply arrives within a second, half-close gives exit 0', async () => {
    await withXenon(async (_s, x) => {
      const sched = await x.sched('localScheduler');
      const call = x.interactive();
      const trailers = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
      call.write({ scheduler: sched, description: { executable: process.execPath, arguments: [join(FIXTURES, 'rot13.mjs')], queue_name: 'multi' } });
      const it = call[Symbol.asyncIterator]() as AsyncIterator<any>;
      const first = (await it.next()).value;
      assert.equal(typeof first.job.id, 'string');
      assert.equal(first.stdout.length, 0);
      assert.equal(first.stderr.length, 0);
      const lines = ['Zlfgvp aboyr tnf,', 'Urnil lrg syrrgvat sebz tenfc,', 'Oyhr yvxr oheavat vpr.'];
      for (const line of lines) {
        const sent = Date.now();
        call.write({ stdin: Buffer.from(line + '\n') });
        let got = '';
        while (!got.endsWith('\n')) {
          const next = await it.next();
          assert.equal(next.done, false, 'output ended before the reply');
          assert.equal(next.value.job.id, first.job.id);
          got += Buffer.from(next.value.stdout).toString();
        }
        assert.equal(got, rot13(line) + '\n');
        assert.ok(Date.now() - sent < 1000, `reply took ${Date.now() - sent} ms`);
      }
      call.end(); // half-close: end of stdin
      assert.equal((await it.next()).done, true, 'the stream ends after the output');
      const status = await trailers;
      assert.equal(status.code, S.OK);
      assert.deepEqual(status.metadata.get('jobwire-status'), ['Success']);
      assert.deepEqual(status.metadata.get('jobwire-exit-code'), ['0']);
      const final = await x.sched('waitUntilDone', { scheduler: sched, job: first.job, timeout: 0 });
      assert.deepEqual([final.state, final.exit_code], ['DONE', 0]);
    });
  });

  it('carries 16 MiB of random bytes through cat unchanged, and half-close ends it with exit code 0', async () => {
    await withXenon(async (_s, x) => {
      const sched = await x.sched('localScheduler');
      const input = randomBytes(16 * 1024 * 1024);
      const call = x.interactive();
      call.write({ scheduler: sched, description: { executable: 'cat', queue_name: 'unlimited' } });
      const received: Buffer[] = [];
      let jobId = '';
      const done = new Promise<void>((resolve, reject) => {
        call.on('data', (m: any) => {
          jobId ||= m.job.id;
          if (m.stdout.length > 0) received.push(m.stdout);
          assert.equal(m.stderr.length, 0);
        });
        call.on('end', resolve);
        call.on('error', reject);
      });
      for (let i = 0; i < input.length; i += 64 * 1024) {
        if (!call.write({ stdin: input.subarray(i, i + 64 * 1024) })) await new Promise((r) => call.once('drain', r));
      }
      call.end();
      await done;
      const output = Buffer.concat(received);
      assert.equal(output.length, input.length);
      assert.ok(output.equals(input), 'bytes differ');
      const status = await x.sched('getJobStatus', { scheduler: sched, job: { id: jobId } });
      assert.deepEqual([status.state, status.exit_code, status.done], ['DONE', 0, true]);
    });
  });

  it('keeps the order of stdout and stderr as the job wrote them', async () => {
    await withXenon(async (_s, x) => {
      const sched = await x.sched('localScheduler');
      const call = x.interactive();
      call.write({ scheduler: sched, description: { executable: 'sh', arguments: ['-c', 'echo one; sleep 0.1; echo two >&2; sleep 0.1; echo three; sleep 0.1; echo four >&2'], queue_name: 'unlimited' } });
      call.end();
      const seen: string[] = [];
      for await (const m of call) {
        if (m.stdout.length > 0) seen.push(`out:${Buffer.from(m.stdout).toString().trim()}`);
        if (m.stderr.length > 0) seen.push(`err:${Buffer.from(m.stderr).toString().trim()}`);
      }
      assert.deepEqual(seen, ['out:one', 'err:two', 'out:three', 'err:four']);
    });
  });

  it('slows a fast stdin writer instead of buffering for it, and detaching leaves the job running', async () => {
    await withXenon(async (s, x) => {
      const sched = await x.sched('localScheduler');
      const call = x.interactive();
      call.on('error', () => undefined);
      // The job never reads its stdin.
      call.write({ scheduler: sched, description: { executable: 'sleep', arguments: ['30'], queue_name: 'unlimited' } });
      const first = await new Promise<any>((resolve) => call.once('data', resolve));
      const piece = Buffer.alloc(256 * 1024, 1);
      let offered = 0;
      let blocked = false;
      const deadline = Date.now() + 3000;
      while (Date.now() < deadline && offered < 64 * 1024 * 1024) {
        offered += piece.length;
        if (!call.write({ stdin: piece })) {
          const drained = await Promise.race([new Promise((r) => call.once('drain', () => r(true))), new Promise((r) => setTimeout(() => r(false), 500))]);
          if (!drained) {
            blocked = true;
            break;
          }
        }
      }
      assert.ok(blocked, `the client could write ${offered} bytes without being held back`);
      const sizes = await s.server.store.streams.sizes(first.job.id);
      assert.ok(sizes.stdin <= 1024 * 1024 + piece.length, `server accepted ${sizes.stdin} stdin bytes ahead of the job`);
      call.cancel();
      await new Promise((r) => setTimeout(r, 200));
      const status = await x.sched('getJobStatus', { scheduler: sched, job: first.job });
      assert.equal(status.state, 'RUNNING', 'detaching does not stop the job');
      await x.sched('cancelJob', { scheduler: sched, job: first.job });
    });
  });

  it('refuses a bad description on the first request with a Xenon error', async () => {
    await withXenon(async (_s, x) => {
      const sched = await x.sched('localScheduler');
      const call = x.interactive();
      call.write({ scheduler: sched, description: { executable: '' } });
      const err = await new Promise<grpc.ServiceError>((resolve) => {
        call.on('error', resolve);
        call.on('data', () => undefined);
      });
      assert.equal(err.code, S.INVALID_ARGUMENT);
      assert.match(err.details, /^IncompleteJobDescriptionException:/);
      await sleepUntil(() => true);
    });
  });
});
