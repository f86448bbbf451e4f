/**
 * A root server (or worker) runs each jobwire user's jobs as the OS account mapped to them, and
 * refuses the jobs of users with none (docs/security.md). These tests need root: they create
 * throw-away OS accounts with useradd and remove them afterwards. Run as anyone else they fail,
 * saying so — they never skip.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { Client, type JobDescription, type JobInfo } from '@jobwire/client';
import { startWorker } from '../../src/distributed/worker.js';
import { startServer, type ServerHandle } from '../../src/server/index.js';
import { REDIS_URL, dropPrefix, freshPrefix } from '../redis-env.js';
import { addUser, cliEnv, removeHome, runCli, sleepUntil, tempHome } from '../helpers.js';

/** A throw-away OS account. */
interface Account {
  name: string;
  uid: number;
  gid: number;
  home: string;
  /** A supplementary group it is in. */
  group: string;
  groupId: number;
}

const suffix = randomBytes(3).toString('hex');
const accounts: Account[] = [];

function makeAccount(base: string): Account {
  const name = `${base}${suffix}`;
  const group = `jwg${base}${suffix}`;
  execFileSync('groupadd', [group]);
  execFileSync('useradd', ['--create-home', '--shell', '/bin/sh', '--groups', group, name]);
  const id = (flag: string, arg = name): number => Number(execFileSync('id', [flag, arg], { encoding: 'utf8' }).trim());
  const account = { name, uid: id('-u'), gid: id('-g'), home: `/home/${name}`, group, groupId: Number(execFileSync('getent', ['group', group], { encoding: 'utf8' }).split(':')[2]) };
  accounts.push(account);
  return account;
}

/** An embedded server started here (these tests are about the embedded server's own rule). */
async function withRootServer<T>(fn: (s: { server: ServerHandle; home: string; admin: Client; as(user: string, osUser: string | null): Client }) => Promise<T>): Promise<T> {
  const home = tempHome();
  const server = await startServer({ home, port: 0, logLevel: 'warn', graceSeconds: 1, multiSlots: 4 });
  try {
    return await fn({
      server,
      home,
      admin: new Client({ url: server.url, token: server.token }),
      as: (user, osUser) => new Client({ url: server.url, token: addUser(home, user, { osUser }) }),
    });
  } finally {
    await server.close();
    removeHome(home);
  }
}

/** Runs a batch job to its end; returns the record and its output. */
async function runToEnd(client: Client, description: JobDescription): Promise<{ done: JobInfo; stdout: string; stderr: string }> {
  const job = await client.submitBatchJob(description);
  const done = await client.waitUntilDone(job.id, 20_000);
  const text = async (channel: 'stdout' | 'stderr'): Promise<string> => Buffer.from((await client.readOutput(job.id, channel)).data).toString();
  return { done, stdout: await text('stdout'), stderr: description.tty ? '' : await text('stderr') };
}

/** What a job prints about itself, one line per field. */
const WHO = 'id -u; id -g; id -G; echo "$HOME"; echo "$USER"; echo "$LOGNAME"; echo "$SHELL"; pwd; touch made-by-job; stat -c %U made-by-job';

function checkIdentity(lines: string[], account: Account): void {
  const [uid, gid, groups, home, user, logname, shell, cwd, owner] = lines;
  assert.equal(uid, String(account.uid), 'uid');
  assert.equal(gid, String(account.gid), 'gid');
  const groupIds = (groups ?? '').split(' ').map(Number);
  assert.ok(groupIds.includes(account.groupId), `supplementary groups ${groups} include ${account.group}`);
  assert.ok(!groupIds.includes(0), `supplementary groups ${groups} do not include root's group 0`);
  assert.equal(home, account.home, 'HOME');
  assert.equal(user, account.name, 'USER');
  assert.equal(logname, account.name, 'LOGNAME');
  assert.equal(shell, '/bin/sh', 'SHELL');
  assert.equal(cwd, account.home, 'working directory');
  assert.equal(owner, account.name, 'owner of a file the job created');
}

describe('jobs run as the OS account mapped to their user when the server runs as root', () => {
  let alice: Account;
  let bob: Account;

  before(() => {
    if (process.getuid?.() !== 0) throw new Error('these tests need root (they create OS accounts with useradd and check that jobs run as them); run them as root');
    alice = makeAccount('jwa');
    bob = makeAccount('jwb');
  });

  after(() => {
    for (const account of accounts) {
      try {
        execFileSync('userdel', ['--remove', account.name], { stdio: 'ignore' });
      } catch {
        // Removal is best effort; a failure here must not hide the tests' own result.
      }
      try {
        execFileSync('groupdel', [account.group], { stdio: 'ignore' });
      } catch {
        // Idem.
      }
    }
  });

  it("runs a mapped user's pipe job as their account: uid, gid, groups, HOME, USER, LOGNAME, SHELL, home as working directory, files owned by it", async () => {
    await withRootServer(async ({ as }) => {
      const { done, stdout, stderr } = await runToEnd(as('alice', alice.name), { executable: 'sh', arguments: ['-c', WHO] });
      assert.equal(done.status, 'Success', `${done.error} ${stderr}`);
      checkIdentity(stdout.trim().split('\n'), alice);
      assert.equal(statSync(`${alice.home}/made-by-job`).uid, alice.uid);
    });
  });

  it("keeps a mapped user's job out of the jobwire home and the server's environment", async () => {
    await withRootServer(async ({ as, home }) => {
      process.env.JOBWIRE_TEST_SECRET = 'server-only';
      try {
        const { done, stdout, stderr } = await runToEnd(as('alice', alice.name), {
          executable: 'sh',
          arguments: ['-c', `ls ${home}; cat ${home}/tokens.json; cat ${home}/token; echo "secret=$JOBWIRE_TEST_SECRET"`],
        });
        assert.equal(done.status, 'Success', done.error ?? '');
        assert.equal((stderr.match(/Permission denied/g) ?? []).length, 3, stderr);
        assert.doesNotMatch(stdout, /sha256/);
        assert.match(stdout, /^secret=$/m);
      } finally {
        delete process.env.JOBWIRE_TEST_SECRET;
      }
    });
  });

  it("refuses an unmapped non-admin user's submit with an error naming the user and how to map them, and queues nothing", async () => {
    await withRootServer(async ({ as, admin }) => {
      const mallory = as('mallory', null);
      await assert.rejects(mallory.submitBatchJob({ executable: 'id', arguments: ['-u'] }), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'forbidden');
        assert.match(err.message, /"mallory"/);
        assert.match(err.message, /jobwire token map mallory/);
        return true;
      });
      assert.equal((await mallory.getJobs()).items.length, 0);
      assert.equal((await admin.getJobs()).items.length, 0);
    });
  });

  it("runs the admin's jobs as root, in the server's work folder", async () => {
    await withRootServer(async ({ admin, server }) => {
      const { done, stdout } = await runToEnd(admin, { executable: 'sh', arguments: ['-c', 'id -u; pwd'] });
      assert.equal(done.status, 'Success');
      assert.deepEqual(stdout.trim().split('\n'), ['0', server.workDir]);
    });
  });

  it("runs a mapped user's tty job as their account, owning its terminal", async () => {
    await withRootServer(async ({ as }) => {
      const { done, stdout } = await runToEnd(as('alice', alice.name), { executable: 'sh', arguments: ['-c', `${WHO}; stat -c %U "$(tty)"`], tty: true });
      assert.equal(done.status, 'Success', done.error ?? '');
      const lines = stdout.replace(/\r/g, '').trim().split('\n');
      checkIdentity(lines, alice);
      assert.equal(lines[9], alice.name, 'owner of the terminal');
    });
  });

  it("runs a mapped user's function job as their account", async () => {
    await withRootServer(async ({ as }) => {
      const code = 'return { uid: process.getuid(), gid: process.getgid(), groups: process.getgroups(), home: process.env.HOME, user: process.env.USER, cwd: process.cwd() }';
      const { done } = await runToEnd(as('alice', alice.name), { js: { code } });
      assert.equal(done.status, 'Success', done.error ?? '');
      const result = done.result as { uid: number; gid: number; groups: number[]; home: string; user: string; cwd: string };
      assert.equal(result.uid, alice.uid);
      assert.equal(result.gid, alice.gid);
      assert.ok(result.groups.includes(alice.groupId) && !result.groups.includes(0), `groups ${result.groups.join(',')}`);
      assert.equal(result.home, alice.home);
      assert.equal(result.user, alice.name);
      assert.equal(result.cwd, alice.home);
    });
  });

  it("opens a mapped user's stdin, stdout and stderr files and working directory with the account's rights, not root's", async () => {
    await withRootServer(async ({ as, home }) => {
      const client = as('alice', alice.name);
      // Allowed: files in the account's own home, created by and owned by it.
      const ok = await runToEnd(client, { executable: 'sh', arguments: ['-c', 'cat; echo err >&2'], stdin: '.profile', stdout: 'out.txt', stderr: 'err.txt' });
      assert.equal(ok.done.status, 'Success', ok.done.error ?? '');
      assert.equal(readFileSync(`${alice.home}/out.txt`, 'utf8'), readFileSync(`${alice.home}/.profile`, 'utf8'));
      assert.equal(statSync(`${alice.home}/out.txt`).uid, alice.uid);
      assert.equal(readFileSync(`${alice.home}/err.txt`, 'utf8'), 'err\n');
      // Refused: root's files, read or written through the description.
      const leak = await runToEnd(client, { executable: 'cat', stdin: `${home}/tokens.json` });
      assert.equal(leak.done.status, 'Failed');
      assert.equal(leak.done.exitCode, 126);
      assert.equal(leak.stdout, '');
      assert.match(leak.stderr, /cannot open|Permission denied/);
      const clobber = await runToEnd(client, { executable: 'echo', arguments: ['x'], stdout: `${home}/evil` });
      assert.equal(clobber.done.status, 'Failed');
      assert.match(clobber.done.error ?? '', /could not write the stdout copy/);
      assert.equal(existsSync(`${home}/evil`), false);
      const enter = await runToEnd(client, { executable: 'ls', workingDirectory: home });
      assert.equal(enter.done.status, 'Failed');
      assert.equal(enter.done.exitCode, 126);
      assert.match(enter.stderr, /can't cd|Permission denied/);
      // Another account's home is as closed to it as it is at a login shell.
      execFileSync('chmod', ['0700', bob.home]);
      const other = await runToEnd(client, { executable: 'ls', arguments: [bob.home] });
      assert.equal(other.done.status, 'Failed');
    });
  });

  it('maps users with `jobwire token create USER --os-user NAME` and `jobwire token map USER NAME`, and refuses unknown accounts', async () => {
    await withRootServer(async ({ server, home }) => {
      const env = cliEnv({ url: server.url, token: server.token, home });
      const created = await runCli(['token', 'create', 'carol', '--os-user', bob.name], { env });
      assert.equal(created.code, 0, created.stderr);
      const carol = new Client({ url: server.url, token: created.stdout.trim() });
      await sleepUntil(async () => (await carol.whoami().catch(() => undefined))?.user === 'carol', 5000, 'the new token');
      const asBob = await runToEnd(carol, { executable: 'id', arguments: ['-un'] });
      assert.equal(asBob.stdout.trim(), bob.name);
      const mapped = await runCli(['token', 'map', 'carol', alice.name], { env });
      assert.equal(mapped.code, 0, mapped.stderr);
      await sleepUntil(async () => (await runToEnd(carol, { executable: 'id', arguments: ['-un'] })).stdout.trim() === alice.name, 10_000, 'the new mapping');
      const unknown = await runCli(['token', 'map', 'carol', `nosuch${suffix}`], { env });
      assert.equal(unknown.code, 2);
      assert.match(unknown.stderr, /no OS account "nosuch/);
      const unset = await runCli(['token', 'map', 'carol', '--unset'], { env });
      assert.equal(unset.code, 0, unset.stderr);
      await sleepUntil(async () => (await carol.submitBatchJob({ executable: 'true' }).then(() => false, (err: { code?: string }) => err.code === 'forbidden')), 10_000, 'the mapping to be gone');
    });
  });

  it("a root worker runs a mapped user's job as their account, even one submitted right after the token was made, and fails an unmapped user's job with the reason", async () => {
    const home = tempHome();
    const prefix = freshPrefix();
    const server = await startServer({ home, port: 0, logLevel: 'warn', redis: REDIS_URL, redisPrefix: prefix });
    const worker = await startWorker({ redis: REDIS_URL, prefix, name: `w-${suffix}`, slots: 2, home: `${home}-worker`, keepJobs: false, workDir: `${home}-work`, serverUrl: server.url, logLevel: 'warn' });
    try {
      const mapped = new Client({ url: server.url, token: addUser(home, 'alice', { osUser: alice.name }) });
      const unmapped = new Client({ url: server.url, token: addUser(home, 'mallory', { osUser: null }) });
      // Submitting as soon as the server accepts the new tokens: the server shares its
      // tokens.json with the workers (through Redis) before it queues the job.
      await sleepUntil(async () => (await unmapped.whoami().catch(() => undefined))?.user === 'mallory', 5000, 'the server to accept the tokens');
      const ran = await runToEnd(mapped, { executable: 'sh', arguments: ['-c', 'id -u; pwd'] });
      assert.equal(ran.done.status, 'Success', ran.done.error ?? '');
      assert.deepEqual(ran.stdout.trim().split('\n'), [String(alice.uid), alice.home]);
      const refused = await runToEnd(unmapped, { executable: 'id', arguments: ['-u'] });
      assert.equal(refused.done.status, 'Failed');
      assert.equal(refused.stdout, '');
      assert.match(refused.done.error ?? '', /user "mallory" has no OS account/);
      const admin = await runToEnd(new Client({ url: server.url, token: server.token }), { executable: 'id', arguments: ['-u'] });
      assert.equal(admin.stdout.trim(), '0');
    } finally {
      await worker.close();
      await server.close();
      await dropPrefix(prefix);
      removeHome(home);
      removeHome(`${home}-worker`);
    }
  });
});
