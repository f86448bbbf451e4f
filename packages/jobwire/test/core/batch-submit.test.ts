/**
 * `POST /v1/jobs/batch` (the SDK's `submitBatchJobs`): many jobs in one request, queued in
 * order, all or nothing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BadRequestError, type JobDescription } from '@jobwire/client';
import { withServer } from '../helpers.js';

describe('batch submit', () => {
  it('queues every job in the order given, and each runs to its end', async () => {
    await withServer(async ({ client }) => {
      const jobs = await client.submitBatchJobs([
        { executable: 'sh', arguments: ['-c', 'echo first'], name: 'one', group: 'batch' },
        { js: { code: 'return args[0] + 1', args: [41] }, name: 'two', group: 'batch' },
        { executable: 'sh', arguments: ['-c', 'exit 3'], name: 'three', group: 'batch' },
      ]);
      assert.deepEqual(
        jobs.map((job) => [job.name, job.status]),
        [
          ['one', 'Queued'],
          ['two', 'Queued'],
          ['three', 'Queued'],
        ],
      );
      const done = await Promise.all(jobs.map((job) => client.waitUntilDone(job.id, 20_000)));
      assert.deepEqual(
        done.map((job) => job.status),
        ['Success', 'Success', 'Failed'],
      );
      assert.equal(done[1]!.result, 42);
      assert.equal(done[2]!.exitCode, 3);
      assert.equal(Buffer.from((await client.readOutput(jobs[0]!.id, 'stdout')).data).toString(), 'first\n');
    });
  });

  it('refuses a batch with one wrong description, naming its index, and queues none of the others', async () => {
    await withServer(async ({ client }) => {
      const batch = [{ executable: 'true', group: 'refused' }, { executable: 42, group: 'refused' }, { executable: 'true', group: 'refused' }] as unknown as JobDescription[];
      await assert.rejects(client.submitBatchJobs(batch), (err: unknown) => {
        assert.ok(err instanceof BadRequestError, String(err));
        assert.equal(err.field, 'jobs.1.executable');
        assert.match(err.message, /^jobs\.1\.executable: /);
        return true;
      });
      // A check the schema cannot make (an upload that does not exist) is refused the same way.
      await assert.rejects(client.submitBatchJobs([{ executable: 'true', group: 'refused' }, { executable: 'cat', inputFiles: { 'in.txt': 'no-such-upload' }, group: 'refused' }]), (err: unknown) => {
        assert.ok(err instanceof BadRequestError, String(err));
        assert.equal(err.field, 'jobs.1.inputFiles.in.txt');
        return true;
      });
      assert.deepEqual((await client.getJobs({ group: 'refused' })).items, [], 'nothing was queued');
    });
  });

  it('refuses an empty batch and one of more than 1000 jobs', async () => {
    await withServer(async ({ client }) => {
      for (const size of [0, 1001]) {
        await assert.rejects(
          client.submitBatchJobs(Array.from({ length: size }, () => ({ executable: 'true' }))),
          (err: unknown) => err instanceof BadRequestError && err.field?.startsWith('jobs') === true,
          `a batch of ${size}`,
        );
      }
      assert.deepEqual((await client.getJobs({})).items, []);
    });
  });
});
