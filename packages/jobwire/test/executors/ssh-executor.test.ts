/**
 * What only the ssh executor promises, against a real sshd: a batch job survives a cut
 * connection and a new executor (a restarted server) with no output lost or repeated; host keys,
 * authentication and reachability fail with clear errors; and through a server, named executors.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BadRequestError, Client } from '@jobwire/client';
import { SshExecutor, type SshConnectionOptions, type SshExecutorOptions } from '../../src/executors/ssh/index.js';
import type { ExecutorState } from '../../src/executors/types.js';
import { startWorker } from '../../src/distributed/worker.js';
import { startServer, type ServerHandle, type ServerOptions } from '../../src/server/index.js';
import { REDIS_URL, dropPrefix, freshPrefix } from '../redis-env.js';
import { cliEnv, runCli, sleepUntil } from '../helpers.js';
import { alive, jobId, recorder, start } from './behaviour.js';
import { freePort, startSshd, type TestSshd } from './sshd.js';
import { XenonClient, grpc, rejectsWith } from '../grpc/xenon-client.js';

const TIMEOUT = { timeout: 90_000 };
/** Prints 1..n, one line every `pause` seconds, to stdout, and every tenth to stderr too. */
const counting = (n: number, pause: number): string[] => ['-c', `i=1; while [ $i -le ${n} ]; do echo $i; [ $((i % 10)) -eq 0 ] && echo e$i >&2; i=$((i+1)); sleep ${pause}; done`];
const expectedOut = (n: number): string => Array.from({ length: n }, (_, i) => `${i + 1}\n`).join('');
const expectedErr = (n: number): string => Array.from({ length: Math.floor(n / 10) }, (_, i) => `e${(i + 1) * 10}\n`).join('');

let sshd: TestSshd;
let jobsFolder: string;
const executors: SshExecutor[] = [];

/** An executor on the test sshd (closed after the file). */
function executor(options: SshExecutorOptions = {}): SshExecutor {
  const made = new SshExecutor(sshd.url, { identityFiles: [sshd.identity], knownHostsFile: sshd.knownHosts, agent: false, jobsFolder, ...options });
  executors.push(made);
  return made;
}

before(async () => {
  sshd = await startSshd();
  jobsFolder = join(sshd.dir, 'jobs');
  mkdirSync(jobsFolder);
});
after(async () => {
  for (const made of executors) made.close();
  await sshd.stop();
});

describe('batch jobs survive', () => {
  test('a cut connection: the output is complete after the reconnect, nothing repeated', TIMEOUT, async () => {
    const ssh = executor();
    const job = start(ssh, { executable: 'sh', arguments: counting(60, 0.05) }, sshd.dir);
    await job.waitForOutput('12\n');
    assert.ok(sshd.cutConnections() > 0, 'an sshd process served the connection');
    await sleepUntil(() => ssh.status().state !== 'connected', 10_000, 'the executor to notice the drop');
    assert.deepEqual(await job.done, { exitCode: 0, signal: null });
    assert.equal(job.output('stdout').toString(), expectedOut(60));
    assert.equal(job.output('stderr').toString(), expectedErr(60));
    assert.equal(ssh.status().state, 'connected');
  });

  test('an interactive job whose connection drops ends Lost with the reason', TIMEOUT, async () => {
    const job = start(executor(), { executable: 'cat', interactive: true }, sshd.dir);
    await job.handle.writeStdin(Buffer.from('before\n'));
    await job.waitForOutput('before\n');
    assert.ok(sshd.cutConnections() > 0);
    const result = await job.done;
    assert.match(result.lost ?? '', /the connection to .*@127\.0\.0\.1:\d+ dropped while the interactive job ran/);
  });

  test('a restart: a new executor resumes the job from its state and stored offsets', TIMEOUT, async () => {
    const first = executor();
    const id = jobId();
    const description = { executable: 'sh', arguments: counting(50, 0.05) };
    const before = recorder(id, description, sshd.dir);
    let stopped = false;
    const stored = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
    const spec = { ...before.spec, onOutput: (channel: 'stdout' | 'stderr', data: Buffer) => void (stopped || stored[channel].push(Buffer.from(data))) };
    first.start(spec);
    await sleepUntil(() => Buffer.concat(stored.stdout).toString().includes('15\n'), 20_000, 'output before the restart');
    // The server stops: what it stored so far is all it has.
    stopped = true;
    first.close();
    const state = before.run.states.at(-1) as ExecutorState;
    assert.equal(state.kind, 'ssh-batch');
    const from = { stdout: Buffer.concat(stored.stdout).length, stderr: Buffer.concat(stored.stderr).length };

    const second = executor();
    const after = recorder(id, description, sshd.dir);
    const handle = await second.resume(after.spec, state, from);
    assert.ok(handle, 'the job is found again');
    assert.deepEqual(await handle.done, { exitCode: 0, signal: null });
    assert.equal(Buffer.concat([...stored.stdout, after.run.output('stdout')]).toString(), expectedOut(50));
    assert.equal(Buffer.concat([...stored.stderr, after.run.output('stderr')]).toString(), expectedErr(50));
    assert.equal(await second.resume(after.spec, state, from), undefined, 'a collected job is gone for good');
  });

  test('a host unreachable past the bound ends the job Lost with the reason', TIMEOUT, async () => {
    const own = await startSshd();
    // The keys outlive this sshd (its stop removes its folder).
    const keys = mkdtempSync(join(tmpdir(), 'jobwire-ssh-keys-'));
    copyFileSync(own.identity, join(keys, 'id'));
    copyFileSync(own.knownHosts, join(keys, 'known_hosts'));
    const ssh = new SshExecutor(own.url, { identityFiles: [join(keys, 'id')], knownHostsFile: join(keys, 'known_hosts'), agent: false, jobsFolder: keys, lostAfterMs: 1500 });
    let pid: number | undefined;
    try {
      const job = start(ssh, { executable: 'sh', arguments: ['-c', 'echo started; exec sleep 300'] }, own.dir);
      await job.waitForOutput('started');
      pid = Number(job.states.at(-1)?.pid);
      await own.stop();
      const result = await job.done;
      assert.match(result.lost ?? '', /127\.0\.0\.1 unreachable for 2 s \(cannot reach .*ECONNREFUSED.*\); the job may still run there/);
      assert.ok(alive(pid), 'the job itself was not touched');
      // A restarted server resuming it meets the same bound.
      const resumed = await ssh.resume(recorder(jobId(), { executable: 'sh' }, own.dir).spec, job.states.at(-1)!, { stdout: 8, stderr: 0 });
      assert.match((await resumed?.done)?.lost ?? '', /127\.0\.0\.1 unreachable for 2 s .*; the job may still run there/);
    } finally {
      if (pid !== undefined && pid > 0) process.kill(-pid, 'SIGKILL');
      ssh.close();
      rmSync(keys, { recursive: true, force: true });
    }
  });
});

describe('short commands on one connection', () => {
  test('a burst of 200 short commands: every one gets its exit status, none is reported dropped', TIMEOUT, async () => {
    const ssh = executor();
    // The status of a command this short comes in the same packets as the channel's open
    // confirmation and close; the runner must still see it. The test sshd takes 100 sessions
    // per connection, so 50 run at a time (each one starts as soon as another ends).
    const commands = Array.from({ length: 200 }, (_, i) => (i % 3 === 0 ? 'true' : i % 3 === 1 ? `echo ${i}` : `exit ${i % 7}`));
    const results: Array<{ code: number | null; signal: string | null; stdout: string } | Error> = [];
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < commands.length) {
        const i = next++;
        results[i] = await ssh.connection.run(commands[i]!).catch((err: unknown) => err as Error);
      }
    };
    await Promise.all(Array.from({ length: 50 }, lane));
    const failed = results.flatMap((r, i) => (r instanceof Error ? [`${commands[i]}: ${r.message}`] : []));
    assert.deepEqual(failed, []);
    results.forEach((r, i) => {
      const expected = i % 3 === 0 ? { code: 0, stdout: '' } : i % 3 === 1 ? { code: 0, stdout: `${i}\n` } : { code: i % 7, stdout: '' };
      assert.deepEqual(r, { ...expected, signal: null, stderr: '' }, commands[i]);
    });
    assert.equal(ssh.status().state, 'connected');
  });
});

/**
 * A start paused at a known point: the executor's start script (test hook `startGate`) appends a
 * line to `<file>.reached` there and waits while `file` exists. The job appends a line to `runs`
 * (so a second copy would show), prints to both channels and exits 3.
 */
function pausedStart(at: 'claimed' | 'started'): { gate: { file: string; at: 'claimed' | 'started' }; reached: () => number; runs: string; description: { executable: string; arguments: string[] } } {
  const id = jobId();
  const file = join(sshd.dir, `gate-${id}`);
  const runs = join(sshd.dir, `runs-${id}`);
  writeFileSync(file, '');
  const reached = (): number => (existsSync(`${file}.reached`) ? readFileSync(`${file}.reached`, 'utf8').split('\n').filter(Boolean).length : 0);
  return { gate: { file, at }, reached, runs, description: { executable: 'sh', arguments: ['-c', `echo run >> '${runs}'; echo out; echo err >&2; exit 3`] } };
}

describe('a batch job whose start is interrupted runs exactly once', () => {
  for (const at of ['claimed', 'started'] as const) {
    const point = at === 'claimed' ? 'folder made, no wrapper yet' : 'job started, pids not yet sent';
    test(`a connection cut while the start script runs (${point}): the start runs again after the reconnect, the job runs once, output and exit code right`, TIMEOUT, async () => {
      const paused = pausedStart(at);
      const ssh = executor({ startGate: paused.gate });
      const job = start(ssh, paused.description, sshd.dir);
      await sleepUntil(() => paused.reached() === 1, 30_000, 'the start script at the gate');
      assert.ok(sshd.cutConnections() > 0, 'an sshd process served the connection');
      // The executor reconnects and runs the start script again: it reaches the gate a second time.
      await sleepUntil(() => paused.reached() === 2, 60_000, 'the start script run again after the reconnect');
      rmSync(paused.gate.file);
      assert.deepEqual(await job.done, { exitCode: 3, signal: null });
      assert.equal(job.output('stdout').toString(), 'out\n');
      assert.equal(job.output('stderr').toString(), 'err\n');
      assert.equal(readFileSync(paused.runs, 'utf8'), 'run\n', 'the job ran once');
      assert.deepEqual(job.states.map((state) => (state.starting === true ? 'starting' : state.kind)), ['starting', 'ssh-batch']);
    });

    test(`a restart while the start script runs (${point}): a new executor given the starting state starts the job once, output and exit code right`, TIMEOUT, async () => {
      const paused = pausedStart(at);
      const first = executor({ startGate: paused.gate });
      const id = jobId();
      const before = recorder(id, paused.description, sshd.dir);
      first.start(before.spec);
      await sleepUntil(() => paused.reached() === 1, 30_000, 'the start script at the gate');
      // The server stops mid-start: all it stored is the starting state.
      first.close();
      const state = before.run.states.at(-1) as ExecutorState;
      assert.deepEqual({ kind: state.kind, starting: state.starting }, { kind: 'ssh-batch', starting: true });

      const second = executor({ startGate: paused.gate });
      const after = recorder(id, paused.description, sshd.dir);
      const handle = await second.resume(after.spec, state, { stdout: 0, stderr: 0 });
      assert.ok(handle, 'the job is started or found again');
      await sleepUntil(() => paused.reached() === 2, 60_000, 'the start script run by the new executor');
      rmSync(paused.gate.file);
      assert.deepEqual(await handle.done, { exitCode: 3, signal: null });
      assert.equal(after.run.output('stdout').toString(), 'out\n');
      assert.equal(after.run.output('stderr').toString(), 'err\n');
      assert.equal(readFileSync(paused.runs, 'utf8'), 'run\n', 'the job ran once');
    });
  }

  test('a host unreachable past the bound while the start script runs ends the job Lost with the reason; the cut-off start starts nothing', TIMEOUT, async () => {
    const own = await startSshd();
    // The keys, the jobs folder and the gate outlive this sshd (its stop removes its folder).
    const keys = mkdtempSync(join(tmpdir(), 'jobwire-ssh-keys-'));
    copyFileSync(own.identity, join(keys, 'id'));
    copyFileSync(own.knownHosts, join(keys, 'known_hosts'));
    const gate = join(keys, 'gate');
    const runs = join(keys, 'runs');
    writeFileSync(gate, '');
    const ssh = new SshExecutor(own.url, { identityFiles: [join(keys, 'id')], knownHostsFile: join(keys, 'known_hosts'), agent: false, jobsFolder: keys, lostAfterMs: 1500, startGate: { file: gate, at: 'claimed' } });
    try {
      const job = start(ssh, { executable: 'sh', arguments: ['-c', `echo run >> '${runs}'`] }, keys);
      const reached = (): string => (existsSync(`${gate}.reached`) ? readFileSync(`${gate}.reached`, 'utf8').trim() : '');
      await sleepUntil(() => reached() !== '', 30_000, 'the start script at the gate');
      const shell = Number(reached());
      await own.stop();
      const result = await job.done;
      assert.match(result.lost ?? '', /127\.0\.0\.1 unreachable for 2 s \(cannot reach .*ECONNREFUSED.*\); the job may still run there/);
      // The start script whose connection was cut goes no further once let go.
      rmSync(gate);
      await sleepUntil(() => !alive(shell), 30_000, 'the cut-off start script to end');
      assert.equal(existsSync(runs), false, 'the job did not start');
    } finally {
      ssh.close();
      rmSync(keys, { recursive: true, force: true });
    }
  });

  test('two start scripts of one job racing past the check start it once: the wrapper\'s exclusive create is the claim', TIMEOUT, async () => {
    // Two connections (two executors on the same jobs folder) both with the folder made and no
    // wrapper yet, let go at once: both launch a wrapper, one claims the job.
    const paused = pausedStart('claimed');
    const id = jobId();
    const runs = [executor({ startGate: paused.gate }), executor({ startGate: paused.gate })].map((ssh) => {
      const run = recorder(id, paused.description, sshd.dir);
      return { run: run.run, handle: ssh.start(run.spec) };
    });
    await sleepUntil(() => paused.reached() === 2, 30_000, 'both start scripts at the gate');
    rmSync(paused.gate.file);
    await sleepUntil(() => runs.every(({ run }) => run.states.length === 2), 30_000, 'both starts answered');
    const [a, b] = runs.map(({ run }) => run.states.at(-1)!);
    assert.deepEqual(a, b, 'both starts report the same wrapper and job');
    assert.ok(Number(a!.pid) > 0);
    await Promise.all(runs.map(({ handle }) => handle.done));
    assert.equal(readFileSync(paused.runs, 'utf8'), 'run\n', 'the job ran once');
  });
});

describe('connection errors are clear and fail the job, not the executor', () => {
  test('a wrong known_hosts entry is refused with the host key’s fingerprint', TIMEOUT, async () => {
    const result = await start(executor({ knownHostsFile: sshd.wrongKnownHosts }), { executable: 'true' }, sshd.dir).done;
    assert.match(result.error ?? '', /^cannot start on .*: host key of \[127\.0\.0\.1\]:\d+ has CHANGED \(ssh-ed25519 SHA256:[A-Za-z0-9+/]{43} is not the key/);
  });

  test('an unknown host key is refused, never accepted', TIMEOUT, async () => {
    const empty = join(sshd.dir, 'empty_known_hosts');
    rmSync(empty, { force: true });
    mkdirSync(empty);
    const result = await start(executor({ knownHostsFile: join(empty, 'none') }), { executable: 'true' }, sshd.dir).done;
    assert.match(result.error ?? '', /host key of \[127\.0\.0\.1\]:\d+ \(ssh-ed25519 SHA256:\S+\) cannot be checked: known_hosts file .* is unreadable \(ENOENT\)/);
  });

  test('authenticates with the key an ssh-agent holds', TIMEOUT, async () => {
    const socket = join(sshd.dir, 'agent.sock');
    const agent = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
    try {
      await sleepUntil(() => existsSync(socket), 10_000, 'the agent socket');
      execFileSync('ssh-add', ['-q', sshd.identity], { env: { ...process.env, SSH_AUTH_SOCK: socket }, stdio: 'ignore' });
      const job = start(executor({ identityFiles: [], agent: socket }), { executable: 'echo', arguments: ['via agent'] }, sshd.dir);
      assert.deepEqual(await job.done, { exitCode: 0, signal: null });
      assert.equal(job.output().toString(), 'via agent\n');
      const none = await start(executor({ identityFiles: [], agent: false }), { executable: 'true' }, sshd.dir).done;
      assert.match(none.error ?? '', /no way to authenticate to .*: no ssh-agent, no identity file \(give --ssh-identity\) and no password file/);
    } finally {
      agent.kill();
    }
  });

  test('a refused key names what was tried', TIMEOUT, async () => {
    const result = await start(executor({ identityFiles: [sshd.strangerIdentity] }), { executable: 'true' }, sshd.dir).done;
    assert.match(result.error ?? '', /authentication to .*@127\.0\.0\.1:\d+ refused \(tried: key .*stranger_key\)/);
  });

  test('an unreachable host is named', TIMEOUT, async () => {
    const port = await freePort();
    const ssh = new SshExecutor(`ssh://nobody@127.0.0.1:${port}`, { identityFiles: [sshd.identity], knownHostsFile: sshd.knownHosts, agent: false });
    executors.push(ssh);
    const result = await start(ssh, { executable: 'true' }, sshd.dir).done;
    assert.match(result.error ?? '', new RegExp(`cannot reach nobody@127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
    assert.equal(ssh.status().state, 'failing');
  });
});

describe('named executors on a server', () => {
  let home: string;
  /** An embedded server with `executors`, authenticating to the test sshd (`ssh` overrides). */
  const sshServer = (executors: string[], ssh: SshConnectionOptions = {}, more: ServerOptions = {}): Promise<ServerHandle> =>
    startServer({ home, port: 0, logLevel: 'silent', graceSeconds: 1, executors, ssh: { identityFiles: [sshd.identity], knownHostsFile: sshd.knownHosts, agent: false, ...ssh }, ...more });
  before(() => {
    home = mkdtempSync(join(tmpdir(), 'jobwire-ssh-server-'));
  });
  after(() => {
    for (const dir of [home, `${home}-work`, `${home}-worker`]) rmSync(dir, { recursive: true, force: true });
  });

  test('jobs choose an executor by name; unknown names and unreachable hosts are clear errors', TIMEOUT, async () => {
    const server = await sshServer([`box=${sshd.url}`, `stranger=ssh://${sshd.user}@127.0.0.1:${sshd.port}`]);
    const client = new Client({ url: server.url, token: server.token });
    try {
      const names = (await client.getExecutors()).map((e) => `${e.name} ${e.adaptor} ${e.url}`);
      assert.deepEqual(names, ['local local local:', `box ssh ${sshd.url}`, `stranger ssh ssh://${sshd.user}@127.0.0.1:${sshd.port}`]);

      const job = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'echo "on $(hostname) as $JOBWIRE_JOB_ID"'], executor: 'box' });
      const done = await client.waitUntilDone(job.id, 60_000);
      assert.equal(done.status, 'Success');
      const out = await client.readOutput(job.id);
      assert.equal(Buffer.from(out.data).toString().trim(), `on ${(await import('node:os')).hostname()} as ${job.id}`);
      const box = (await client.getExecutors()).find((e) => e.name === 'box');
      assert.equal(box?.state, 'connected');

      await assert.rejects(client.submitBatchJob({ executable: 'true', executor: 'nope' }), (err: unknown) => err instanceof BadRequestError && err.field === 'executor' && /no executor named "nope".*local, box, stranger/.test(err.message));
      await assert.rejects(client.submitBatchJob({ js: { code: 'return 1' }, executor: 'box' }), (err: unknown) => err instanceof BadRequestError && err.field === 'js');

      // The CLI: run on a named executor, list the executors and one executor's queues.
      const env = cliEnv({ url: server.url, token: server.token, home });
      const ran = await runCli(['run', '--executor', 'box', '--cwd', sshd.dir, '--', 'sh', '-c', 'pwd; exit 4'], { env, timeoutMs: 60_000 });
      assert.equal(ran.code, 4);
      assert.equal(ran.stdout, `${sshd.dir}\n`);
      const listed = await runCli(['executors', '--json'], { env });
      assert.deepEqual(
        (JSON.parse(listed.stdout) as { name: string; state: string }[]).map((e) => `${e.name}:${e.state}`),
        ['local:ready', 'box:connected', 'stranger:connected'], // one connection per host: "stranger" names the same one
      );
      const table = await runCli(['executors'], { env });
      assert.match(table.stdout, /^NAME +URL +STATE +QUEUES +REASON\n/);
      const queues = await runCli(['queues', '--executor', 'box'], { env });
      assert.match(queues.stdout, /^QUEUE +LIMIT\nsingle +1\nmulti +4\nunlimited +unlimited\n$/);
      const unknown = await runCli(['queues', '--executor', 'nope'], { env });
      assert.match(unknown.stderr, /the server has no executor named "nope"; it has local, box, stranger/);
    } finally {
      await server.close();
    }
  });

  test('a server stop leaves a batch job running on the host; the next server follows it to its end, output complete', TIMEOUT, async () => {
    let server = await sshServer([`box=${sshd.url}`]);
    try {
      let client = new Client({ url: server.url, token: server.token });
      const job = await client.submitBatchJob({ executable: 'sh', arguments: counting(40, 0.1), executor: 'box' });
      await sleepUntil(async () => Buffer.from((await client.readOutput(job.id)).data).toString().includes('5\n') || undefined, 60_000, 'the first lines');
      await server.close(); // keeps the jobs (the default)
      server = await sshServer([`box=${sshd.url}`]);
      client = new Client({ url: server.url, token: server.token });
      assert.equal((await client.getJobStatus(job.id)).status, 'Running', 'still Running after the restart');
      const done = await client.waitUntilDone(job.id, 60_000);
      assert.equal(done.status, 'Success', done.error ?? '');
      assert.equal(Buffer.from((await client.readOutput(job.id)).data).toString(), expectedOut(40));
      assert.equal(Buffer.from((await client.readOutput(job.id, 'stderr')).data).toString(), expectedErr(40));
    } finally {
      await server.close();
    }
  });

  test('a server stopped while a batch job’s start script runs: the next server starts it once, Success, output complete', TIMEOUT, async () => {
    const paused = pausedStart('claimed');
    // The test hook rides with the ssh options, which the server hands to its ssh executors.
    const gated = { startGate: paused.gate } as SshConnectionOptions;
    let server = await sshServer([`box=${sshd.url}`], gated);
    try {
      let client = new Client({ url: server.url, token: server.token });
      const job = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', `echo run >> '${paused.runs}'; echo out`], executor: 'box' });
      await sleepUntil(() => paused.reached() === 1, 60_000, 'the start script at the gate');
      await server.close(); // keeps the jobs (the default)
      server = await sshServer([`box=${sshd.url}`], gated);
      client = new Client({ url: server.url, token: server.token });
      await sleepUntil(() => paused.reached() === 2, 60_000, 'the start script run by the next server');
      assert.equal((await client.getJobStatus(job.id)).status, 'Running', 'still Running after the restart');
      rmSync(paused.gate.file);
      const done = await client.waitUntilDone(job.id, 60_000);
      assert.equal(done.status, 'Success', done.error ?? '');
      assert.equal(Buffer.from((await client.readOutput(job.id)).data).toString(), 'out\n');
      assert.equal(readFileSync(paused.runs, 'utf8'), 'run\n', 'the job ran once');
    } finally {
      await server.close();
    }
  });

  test('an executor that cannot connect fails its jobs with the reason; the server and other jobs go on', TIMEOUT, async () => {
    const server = await sshServer([`box=${sshd.url}`], { knownHostsFile: sshd.wrongKnownHosts });
    const client = new Client({ url: server.url, token: server.token });
    try {
      const remote = await client.submitBatchJob({ executable: 'true', executor: 'box' });
      const failed = await client.waitUntilDone(remote.id, 60_000);
      assert.equal(failed.status, 'Failed');
      assert.match(failed.error ?? '', /host key of .* has CHANGED \(ssh-ed25519 SHA256:/);
      const box = (await client.getExecutors()).find((e) => e.name === 'box');
      assert.equal(box?.state, 'failing');
      assert.match(box?.reason ?? '', /CHANGED/);
      const local = await client.submitBatchJob({ executable: 'true' });
      assert.equal((await client.waitUntilDone(local.id, 60_000)).status, 'Success');
    } finally {
      await server.close();
    }
  });

  test('Xenon clients reach the ssh executors as the ssh adaptor', TIMEOUT, async () => {
    const server = await sshServer([`box=${sshd.url}`], {}, { grpcPort: 0 });
    const x = new XenonClient(`127.0.0.1:${server.grpcPort}`, { token: server.token });
    const client = new Client({ url: server.url, token: server.token });
    try {
      assert.deepEqual((await x.sched('getAdaptorNames')).name, ['local', 'ssh']);
      const described = await x.sched('getAdaptorDescription', { name: 'ssh' });
      assert.match(described.description, new RegExp(`${sshd.user}@127\\.0\\.0\\.1:${sshd.port}`));
      assert.equal(described.uses_file_system, true);

      const sched = await x.sched('create', { adaptor: 'ssh', location: `127.0.0.1:${sshd.port}`, default_credential: {} });
      assert.equal((await x.sched('getAdaptorName', sched)).name, 'ssh');
      assert.deepEqual((await x.sched('getQueueNames', sched)).name, ['single', 'multi', 'unlimited']);
      const job = await x.sched('submitBatchJob', { scheduler: sched, description: { executable: 'sh', arguments: ['-c', 'pwd; exit 5'], working_directory: sshd.dir } });
      const status = await x.sched('waitUntilDone', { scheduler: sched, job, timeout: 60_000 });
      assert.equal(status.done, true);
      assert.equal(status.exit_code, 5);
      const info = await client.getJobStatus(job.id);
      assert.equal(info.description?.executor, 'box');
      assert.equal(Buffer.from((await client.readOutput(job.id)).data).toString(), `${sshd.dir}\n`);

      await rejectsWith(x.sched('create', { adaptor: 'ssh', location: 'elsewhere:22' }), grpc.status.FAILED_PRECONDITION, 'InvalidLocationException');
      // Password and certificate credentials are taken (test/grpc/scheduler-credentials.test.ts); a keytab is not.
      await rejectsWith(x.sched('create', { adaptor: 'ssh', location: `127.0.0.1:${sshd.port}`, keytab_credential: { username: 'u', keytabfile: '/k' } }), grpc.status.FAILED_PRECONDITION, 'InvalidCredentialException');
      assert.equal((await x.fs('getAdaptorName', await x.sched('getFileSystem', sched))).name, 'sftp');
    } finally {
      x.close();
      await server.close();
    }
  });

  test('a distributed worker with --executor ssh://... runs its jobs there', TIMEOUT, async () => {
    const prefix = freshPrefix();
    const server = await startServer({ home, port: 0, logLevel: 'silent', graceSeconds: 1, redis: REDIS_URL, redisPrefix: prefix });
    const worker = await startWorker({
      redis: REDIS_URL,
      prefix,
      name: 'ssh-fed',
      slots: 2,
      graceSeconds: 1,
      home: `${home}-worker`,
      workDir: `${home}-work`,
      serverUrl: server.url,
      logLevel: 'silent',
      executor: sshd.url,
      ssh: { identityFiles: [sshd.identity], knownHostsFile: sshd.knownHosts, agent: false },
    });
    const client = new Client({ url: server.url, token: server.token });
    try {
      const job = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'cd; echo "$JOBWIRE_JOB_ID in $(pwd)"'] });
      const done = await client.waitUntilDone(job.id, 60_000);
      assert.equal(done.status, 'Success', done.error ?? '');
      assert.equal(Buffer.from((await client.readOutput(job.id)).data).toString(), `${job.id} in ${homedir()}\n`);
      await assert.rejects(client.submitBatchJob({ executable: 'true', executor: 'box' }), (err: unknown) => err instanceof BadRequestError && err.field === 'executor' && /each worker runs its jobs where its --executor says/.test(err.message));
    } finally {
      await worker.close();
      await server.close();
      await dropPrefix(prefix);
    }
  });
});
