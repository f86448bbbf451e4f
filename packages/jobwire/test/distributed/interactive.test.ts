/**
 * Several servers on one Redis serve one cluster: the same tokens, the same jobs, and a job on
 * a worker can be attached to through one server and typed to through another.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Client, NotFoundError } from '@jobwire/client';
import { FIXTURES, addUser, collect, concat, runCli, sleepUntil, removeHome, tempHome } from '../helpers.js';
import { withCluster } from './cluster.js';

const rot13 = (s: string): string =>
  s.replace(/[a-z]/gi, (c) => {
    const base = c <= 'Z' ? 65 : 97;
    return String.fromCharCode(((c.charCodeAt(0) - base + 13) % 26) + base);
  });

describe('distributed: many servers, one cluster', () => {
  it('plays rot13 ping-pong with a job on a worker: attached through server A, typed through server B', async () => {
    await withCluster(async (cluster) => {
      await cluster.addServer();
      await cluster.addServer();
      await cluster.addWorker({ name: 'w1' });
      const viaA = cluster.client(0);
      const viaB = cluster.client(1);
      const job = await viaA.submitInteractiveJob({ executable: process.execPath, arguments: [join(FIXTURES, 'rot13.mjs')], queueName: 'unlimited' });
      const typing = await viaB.attach(job.jobId);
      const replies = job.output[Symbol.asyncIterator]();
      for (const line of ['Zlfgvp aboyr tnf,', 'Urnil lrg syrrgvat sebz tenfc,', 'Oyhr yvxr oheavat vpr.']) {
        await typing.stdin.write(line + '\n');
        let got = '';
        while (!got.endsWith('\n')) {
          const next = await replies.next();
          assert.equal(next.done, false, 'output ended before the reply');
          assert.equal(next.value.channel, 'stdout');
          got += Buffer.from(next.value.data).toString();
        }
        assert.equal(got, rot13(line) + '\n');
      }
      await typing.stdin.end();
      const exit = await job.exit;
      assert.deepEqual([exit.status, exit.exitCode], ['Success', 0]);
      assert.equal((await typing.exit).exitCode, 0);
      assert.equal((await viaB.getJobStatus(job.jobId)).node, 'w1');
    });
  });

  it('accepts the same tokens and shows the same jobs on every server', async () => {
    await withCluster(async (cluster) => {
      const a = await cluster.addServer();
      const b = await cluster.addServer();
      await cluster.addWorker({ name: 'w1' });
      // A user added to server A's tokens.json is known to server B too.
      const token = addUser(a.home, 'carol');
      const carolOnB = new Client({ url: b.url, token });
      const job = await sleepUntil(() => carolOnB.submitBatchJob({ executable: 'sh', arguments: ['-c', 'echo from a worker'] }).catch(() => undefined), 10_000, "carol's token on server B");
      const carolOnA = new Client({ url: a.url, token });
      const done = await carolOnA.waitUntilDone(job.id, 20_000);
      assert.equal(done.status, 'Success');
      assert.equal(Buffer.from((await carolOnA.readOutput(job.id)).data).toString(), 'from a worker\n');
      const ids = async (client: Client): Promise<string[]> => (await client.getJobs()).items.map((j) => j.id);
      assert.deepEqual(await ids(carolOnA), [job.id]);
      assert.deepEqual(await ids(carolOnB), [job.id]);
      // The admin of server B sees nothing of carol's, through either server.
      await assert.rejects(cluster.client(1).getJobStatus(job.id), NotFoundError);
      assert.deepEqual(await ids(cluster.client(0)), []);
      // Output replayed through B is the same bytes, with the exit status last.
      const att = await carolOnB.attach(job.id);
      assert.equal(concat((await collect(att.output)).map((c) => c.data)).toString(), 'from a worker\n');
      assert.equal((await att.exit).status, 'Success');

      // A token made with `jobwire token create --redis` on a machine without a server works everywhere.
      const home = tempHome();
      const made = await runCli(['token', 'create', 'dave', '--home', home, '--redis', cluster.redisUrl, '--redis-prefix', cluster.prefix]);
      removeHome(home);
      assert.equal(made.code, 0, made.stderr);
      const dave = made.stdout.trim();
      for (const server of [a, b]) {
        const who = await sleepUntil(() => new Client({ url: server.url, token: dave }).whoami().catch(() => undefined), 10_000, 'the new token');
        assert.deepEqual(who, { user: 'dave', admin: false });
      }
    });
  });
});
