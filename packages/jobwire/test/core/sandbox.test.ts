/**
 * Sandboxes through the SDK: uploads placed in the job's directory before it starts, output files
 * kept after it ends — also in distributed mode (npm test runs test/core again with the Redis
 * backend, where a worker fetches the inputs and returns the outputs through Redis).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SANDBOX_FILE_LIMIT } from '../../src/jobs/sandbox.js';
import { sleepUntil, withServer } from '../helpers.js';

const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

describe('sandboxes: input and output files', () => {
  it('places uploads in the working directory, runs an uploaded executable, and keeps the files matching the output patterns', async () => {
    await withServer(async (s) => {
      const script = await s.client.upload('#!/bin/sh\ntr a-z A-Z < in/words.txt > shout.txt\necho two > part-2.txt\necho one > part-1.txt\necho skipped > other.log\n');
      const words = await s.client.upload('hello sandbox\n');
      const job = await s.client.submitBatchJob({
        executable: './run.sh',
        inputFiles: { 'run.sh': script.id, 'in/words.txt': words.id },
        outputFiles: ['shout.txt', 'part-*.txt'],
      });
      const done = await s.client.waitUntilDone(job.id);
      assert.equal(done.status, 'Success', done.error ?? '');
      const files = await s.client.getOutputFiles(job.id);
      assert.deepEqual(files, [
        { name: 'part-1.txt', size: 4 },
        { name: 'part-2.txt', size: 4 },
        { name: 'shout.txt', size: 14 },
      ]);
      assert.equal(text(await s.client.readOutputFile(job.id, 'shout.txt')), 'HELLO SANDBOX\n');
      assert.equal(text(await s.client.readOutputFile(job.id, 'part-2.txt')), 'two\n');
      await assert.rejects(s.client.readOutputFile(job.id, 'other.log'), /kept no output file/);
      // Deleting the job removes what it kept.
      await s.client.deleteJob(job.id);
      await assert.rejects(s.client.getOutputFiles(job.id), /no job/);
    });
  });

  it('fails a job whose output pattern matched nothing, saying which', async () => {
    await withServer(async (s) => {
      const job = await s.client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'echo x > made.txt'], outputFiles: ['made.txt', 'missing-*.dat'] });
      const done = await s.client.waitUntilDone(job.id);
      assert.equal(done.status, 'Failed');
      assert.match(done.error ?? '', /output pattern "missing-\*\.dat" matched no file/);
      assert.deepEqual((await s.client.getOutputFiles(job.id)).map((f) => f.name), ['made.txt']);
    });
  });

  it('refuses an unknown upload, a name that leaves the directory, and an upload over the limit; nothing is queued', async () => {
    await withServer(async (s) => {
      await assert.rejects(
        s.client.submitBatchJob({ executable: 'true', inputFiles: { 'a.txt': '00000000-0000-4000-8000-000000000000' } }),
        (e: Error & { field?: string }) => e.field === 'inputFiles.a.txt' && /no upload/.test(e.message),
      );
      const upload = await s.client.upload('x');
      await assert.rejects(s.client.submitBatchJob({ executable: 'true', inputFiles: { '../a.txt': upload.id } }), (e: Error & { field?: string }) => e.field?.startsWith('inputFiles') === true);
      await assert.rejects(s.client.submitBatchJob({ executable: 'true', outputFiles: ['../*'] }), (e: Error & { field?: string }) => e.field?.startsWith('outputFiles') === true);
      await assert.rejects(s.client.upload(new Uint8Array(SANDBOX_FILE_LIMIT + 1)), (e: Error & { code?: string }) => e.code === 'payload_too_large');
      assert.deepEqual((await s.client.getJobs()).items, []);
    });
  });

  it("keeps one user's uploads from another", async () => {
    await withServer(async (s) => {
      const mine = await s.client.upload('secret');
      const other = s.clientFor('eve');
      await sleepUntil(() => other.whoami().then(() => true, () => false), 10_000, "eve's token to be known");
      await assert.rejects(other.submitBatchJob({ executable: 'cat', arguments: ['x'], inputFiles: { x: mine.id } }), /no upload/);
    });
  });
});
