/**
 * Jobs outlive the server: they run on the home's job host, so a server killed with -9 or
 * stopped cleanly leaves them running and the next server on the home follows them again —
 * attachments resume, stdin still reaches them, output is complete and the end is right. Only a
 * job whose host died is Lost (with a reason naming the host), its processes stopped; a pid now
 * used by another process is never signalled. One server per home; `jobwire server stop --jobs`.
 * Real server processes, real job host, real processes throughout.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, type OutputChunk } from '@jobwire/client';
import { identify } from '../../src/executors/local/process-identity.js';
import { hostStatus } from '../../src/host/index.js';
import { openEmbeddedStore } from '../../src/store/embedded/index.js';
import { printedPids, removeHome, runCli, runs, sleepUntil, startServerProcess, tempHome, type ServerProcess } from '../helpers.js';
import { newJob } from '../store/store-behaviour.js';

/** What an attachment has printed so far, read as it arrives. */
function transcript(output: AsyncIterable<OutputChunk>): { text(): string; waitFor(pattern: string | RegExp, what: string): Promise<string> } {
  let text = '';
  void (async () => {
    for await (const chunk of output) text += Buffer.from(chunk.data).toString();
  })();
  return {
    text: () => text,
    waitFor: (pattern, what) =>
      sleepUntil(() => (typeof pattern === 'string' ? text.includes(pattern) && text : pattern.test(text) && text), 20_000, what),
  };
}

/** `seq from to` as the shell prints it. */
function seq(from: number, to: number): string {
  let out = '';
  for (let i = from; i <= to; i++) out += `${i}\n`;
  return out;
}

async function stopServer(server: ServerProcess, signal: NodeJS.Signals): Promise<void> {
  server.proc.kill(signal);
  await server.exited;
}

describe('restart: jobs outlive the server', () => {
  for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
    it(`after ${signal === 'SIGKILL' ? 'kill -9' : 'a clean stop (SIGTERM)'} and a restart, the attachment to an interactive cat resumes and typed lines still echo; a batch job's output is complete and its exit code right`, async () => {
      const home = tempHome();
      const go = join(`${home}-work`, 'go');
      let second: ServerProcess | undefined;
      try {
        const first = await startServerProcess(home);
        const port = new URL(first.url).port;
        const client = new Client({ url: first.url, token: first.token, reconnectTimeout: 60_000 });
        const cat = await client.submitInteractiveJob({ executable: 'sh', arguments: ['-c', 'echo pid $$; exec cat'], queueName: 'unlimited' });
        const seen = transcript(cat.output);
        const catPid = Number(/pid (\d+)\n/.exec(await seen.waitFor(/pid \d+\n/, 'the cat job to start'))![1]);
        await cat.stdin.write('one\n');
        await seen.waitFor('one\n', 'the first line to echo');
        // Half its output before the restart, half after; it waits for `go` in between.
        const batch = await client.submitBatchJob({
          executable: 'sh',
          arguments: ['-c', `echo $$; seq 1 20000; while [ ! -e ${go} ]; do sleep 0.05; done; seq 20001 40000; exit 3`],
          queueName: 'unlimited',
        });
        const [batchPid] = await printedPids(client, batch.id);
        const half = `${batchPid}\n${seq(1, 20000)}`;
        await sleepUntil(async () => (await client.readOutput(batch.id, 'stdout')).size >= half.length, 20_000, 'the first half of the output');

        await stopServer(first, signal);
        assert.ok(runs(catPid) && runs(batchPid!), 'the jobs outlive the server');

        // The same port, so the same client (and its attachment) reconnects by itself.
        second = await startServerProcess(home, ['--port', port]);
        await cat.stdin.write('two\n');
        await seen.waitFor('one\ntwo\n', 'a line typed after the restart to echo');
        assert.equal((await client.getJobStatus(cat.jobId)).status, 'Running');

        writeFileSync(go, '');
        const done = await client.waitUntilDone(batch.id, 30_000);
        assert.equal(done.status, 'Failed');
        assert.equal(done.exitCode, 3);
        const out = Buffer.from((await client.readOutput(batch.id, 'stdout')).data).toString();
        assert.equal(out, `${batchPid}\n${seq(1, 40000)}`, 'every line once, in order');

        await cat.stdin.end();
        const exit = await cat.exit;
        assert.equal(exit.status, 'Success');
        assert.equal(exit.exitCode, 0);
        assert.equal(seen.text(), `pid ${catPid}\none\ntwo\n`, 'nothing lost or repeated across the restart');
        assert.ok(!runs(catPid) && !runs(batchPid!), 'both ended');
      } finally {
        if (second) await stopServer(second, 'SIGTERM');
        removeHome(home);
      }
    });
  }

  it('a tty job survives a restart and keeps its terminal size', async () => {
    const home = tempHome();
    let second: ServerProcess | undefined;
    try {
      const first = await startServerProcess(home);
      const port = new URL(first.url).port;
      const client = new Client({ url: first.url, token: first.token, reconnectTimeout: 60_000 });
      const job = await client.submitInteractiveJob({ executable: 'sh', arguments: ['-c', 'stty size; read line; echo "got $line"; stty size'], tty: true, size: { cols: 100, rows: 30 }, queueName: 'unlimited' });
      const seen = transcript(job.output);
      await seen.waitFor('30 100', 'the size before the restart');
      await stopServer(first, 'SIGKILL');
      second = await startServerProcess(home, ['--port', port]);
      await job.stdin.write('after\n');
      const text = await seen.waitFor(/got after\r?\n30 100/, 'the size after the restart');
      assert.equal(text.match(/30 100/g)?.length, 2);
      assert.equal((await job.exit).status, 'Success');
    } finally {
      if (second) await stopServer(second, 'SIGTERM');
      removeHome(home);
    }
  });

  it('a job whose job host is killed ends Lost with a reason naming the host, and none of its processes runs on', async () => {
    const home = tempHome();
    let server: ServerProcess | undefined;
    try {
      server = await startServerProcess(home);
      const client = new Client({ url: server.url, token: server.token });
      const job = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'sleep 1000 & echo $$ $!; wait'], queueName: 'unlimited' });
      const pids = await printedPids(client, job.id);
      assert.ok(pids.every(runs), 'the job runs');
      const host = hostStatus(home);
      assert.equal(host.state, 'running');
      if (host.state !== 'running') return;
      process.kill(host.info.pid, 'SIGKILL');
      const lost = await client.waitUntilDone(job.id, 30_000);
      assert.equal(lost.status, 'Lost');
      assert.equal(lost.error, `its job host (pid ${host.info.pid}) died while it ran; its processes were still running and have been stopped`);
      assert.deepEqual(pids.filter(runs), [], 'nothing of the job runs');
      // The server goes on with a new host.
      const next = await client.submitBatchJob({ executable: 'echo', arguments: ['again'], queueName: 'unlimited' });
      assert.equal((await client.waitUntilDone(next.id, 20_000)).status, 'Success');
    } catch (err) {
      throw new Error(`${(err as Error).message}; server stderr: ${server?.stderr()}`, { cause: err });
    } finally {
      if (server) await stopServer(server, 'SIGTERM');
      removeHome(home);
    }
  });

  it('never signals a recorded pid that now names another process, whether the job ran in an old server or on a job host', async () => {
    const home = tempHome();
    // The job's own leader: started, identified, gone.
    const gone = spawn('true');
    const old = identify(gone.pid!);
    await new Promise((resolve) => gone.on('exit', resolve));
    assert.ok(old, 'the short-lived leader was identified');
    // Start times count in clock ticks (10 ms): the stranger must start in a later tick than the
    // old leader, or it would be the very process the record names (same pid and start time).
    await sleep(30);
    // Another process now holds a pid, leading a group of its own, started after the old leader.
    const stranger = spawn('sleep', ['1000'], { detached: true, stdio: 'ignore' });
    const strangerPid = stranger.pid!;
    try {
      const store = await openEmbeddedStore({ dir: home });
      const ids: string[] = [];
      for (const onHost of [false, true]) {
        const job = await store.createJob(newJob({ owner: 'admin', queue: 'unlimited', description: { executable: 'sleep', arguments: ['1000'] } }));
        // The record names the stranger's pid with the old leader's start time; its runner is gone.
        const process = { leader: { ...old, pid: strangerPid }, runner: { ...old } };
        await store.markRunning(job.id, { startedAt: new Date().toISOString(), pid: strangerPid, node: 'here', process });
        if (onHost) await store.setExecutorState(job.id, { kind: 'job-host', process });
        ids.push(job.id);
      }
      await store.close();

      const server = await startServerProcess(home);
      try {
        const client = new Client({ url: server.url, token: server.token });
        const [inServer, onHost] = await client.getJobStatuses(ids);
        assert.equal(inServer!.status, 'Lost');
        assert.match(inServer!.error ?? '', /server stopped while the job was running \(noticed at restart, [^)]*\)$/);
        assert.equal(onHost!.status, 'Lost');
        assert.equal(onHost!.error, `its job host (pid ${old.pid}) died while it ran`);
        assert.ok(runs(strangerPid), 'the process that reuses the pid was left alone');
      } finally {
        await stopServer(server, 'SIGTERM');
      }
    } finally {
      stranger.kill('SIGKILL');
      removeHome(home);
    }
  });

  it('leaves no orphans after a sequence of kills and restarts: every job is Running exactly when its processes run', async () => {
    const home = tempHome();
    let server: ServerProcess | undefined;
    const jobs = new Map<string, number[]>();
    const start = async (client: Client): Promise<void> => {
      const job = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'sleep 1000 & echo $$ $!; wait'], queueName: 'unlimited' });
      jobs.set(job.id, await printedPids(client, job.id));
    };
    const connect = async (): Promise<Client> => {
      server = await startServerProcess(home);
      return new Client({ url: server.url, token: server.token });
    };
    try {
      let client = await connect();
      await start(client);
      await start(client);
      await stopServer(server!, 'SIGKILL');
      client = await connect();
      await start(client);
      await stopServer(server!, 'SIGKILL');
      const host = hostStatus(home);
      if (host.state === 'running') process.kill(host.info.pid, 'SIGKILL');
      await sleepUntil(() => hostStatus(home).state !== 'running', 10_000, 'the host to die');
      client = await connect();
      await start(client);
      await stopServer(server!, 'SIGTERM');
      client = await connect();
      await start(client);

      const infos = await client.getJobStatuses([...jobs.keys()]);
      assert.deepEqual(infos.map((info) => info.status), ['Lost', 'Lost', 'Lost', 'Running', 'Running']);
      for (const info of infos) {
        const pids = jobs.get(info.id)!;
        if (info.status === 'Running') assert.ok(pids.every(runs), `job ${info.id} is Running and its processes run`);
        else assert.deepEqual(pids.filter(runs), [], `job ${info.id} is ${info.status} and none of its processes runs`);
      }
      // The CLI's listing says the same.
      const listed = await runCli(['jobs', '--url', server!.url, '--token', server!.token]);
      assert.equal(listed.code, 0, listed.stderr);
      assert.equal(listed.stdout.match(/Running/g)?.length, 2, listed.stdout);
    } finally {
      if (server) await stopServer(server, 'SIGTERM');
      removeHome(home);
    }
  });

  it('refuses a second server on the same home before it changes anything, naming the running one', async () => {
    const home = tempHome();
    let server: ServerProcess | undefined;
    try {
      server = await startServerProcess(home);
      const client = new Client({ url: server.url, token: server.token });
      const job = await client.submitBatchJob({ executable: 'sleep', arguments: ['1000'], queueName: 'single' });
      await client.waitUntilRunning(job.id, 10_000);
      const record = readFileSync(join(home, 'server.json'), 'utf8');

      const second = await runCli(['server', '--port', '0', '--home', home, '--log-level', 'warn']);
      assert.equal(second.code, 1);
      assert.match(second.stderr, new RegExp(`another jobwire server \\(pid ${server.proc.pid}, ${server.url.replace(/[.]/g, '\\.')}\\) uses the home`));
      assert.equal(readFileSync(join(home, 'server.json'), 'utf8'), record, 'server.json is untouched');
      assert.equal((await client.getJobStatus(job.id)).status, 'Running', 'its job still runs');
    } finally {
      if (server) await stopServer(server, 'SIGTERM');
      removeHome(home);
    }
  });

  it('jobwire server stop leaves the jobs running; server stop --jobs stops them too, and the next server marks them Lost', async () => {
    const home = tempHome();
    let server: ServerProcess | undefined;
    try {
      server = await startServerProcess(home);
      let client = new Client({ url: server.url, token: server.token });
      const job = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'sleep 1000 & echo $$ $!; wait'], queueName: 'unlimited' });
      const pids = await printedPids(client, job.id);

      const stop = await runCli(['server', 'stop', '--home', home]);
      assert.equal(stop.code, 0, stop.stderr);
      assert.match(stop.stdout, new RegExp(`stopped the jobwire server \\(pid ${server.proc.pid}, `));
      await server.exited;
      assert.ok(pids.every(runs), 'the job runs on');

      server = await startServerProcess(home);
      client = new Client({ url: server.url, token: server.token });
      assert.equal((await client.getJobStatus(job.id)).status, 'Running');

      const stopAll = await runCli(['server', 'stop', '--jobs', '--home', home]);
      assert.equal(stopAll.code, 0, stopAll.stderr);
      assert.match(stopAll.stdout, /stopped the job host and its jobs/);
      await server.exited;
      assert.deepEqual(pids.filter(runs), [], 'no process of the job runs');

      server = await startServerProcess(home);
      client = new Client({ url: server.url, token: server.token });
      const lost = await client.getJobStatus(job.id);
      assert.equal(lost.status, 'Lost');
      assert.match(lost.error ?? '', /^stopped by its job host: /);

      const none = await runCli(['server', 'stop', '--home', `${home}-nothing`]);
      assert.equal(none.code, 1);
      assert.match(none.stderr, /no jobwire server runs on the home/);
    } finally {
      if (server) await stopServer(server, 'SIGTERM');
      removeHome(home);
    }
  });
});
