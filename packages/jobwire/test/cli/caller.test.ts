/**
 * The CLI as a Slurm or git user expects it: jobs start in the caller's directory, connection
 * options stand before or after the command, short job ids.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { CLI, cliEnv, runCli, withServer } from '../helpers.js';

/** A temporary folder for the duration of `fn`. */
async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'jobwire-caller-'));
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("the caller's directory", () => {
  it('cd DIR && jobwire run -- sh script.sh finds script.sh and runs in DIR (jobwire on the PATH as npm link puts it)', async () => {
    await withServer(async (s) => {
      await withDir(async (dir) => {
        // What `npm link -w jobwire` (README, quick start) makes: a `jobwire` link to the package's bin.
        const bin = join(dir, 'bin');
        mkdirSync(bin);
        symlinkSync(CLI, join(bin, 'jobwire'));
        const project = join(dir, 'project');
        mkdirSync(project);
        writeFileSync(join(project, 'script.sh'), 'echo "ran in $(pwd)"\n');
        const { stdout, stderr } = await promisify(execFile)('sh', ['-c', `cd '${project}' && jobwire run -- sh script.sh`], {
          env: { ...process.env, ...cliEnv(s), PATH: `${bin}:${dirname(process.execPath)}:/usr/bin:/bin` },
        });
        assert.equal(stderr, '');
        assert.equal(stdout, `ran in ${realpathSync(project)}\n`);
      });
    });
  });

  it('--cwd still overrides the caller’s directory', async () => {
    await withServer(async (s) => {
      await withDir(async (dir) => {
        const r = await runCli(['run', '--cwd', '/', '--', 'pwd'], { env: cliEnv(s), cwd: dir });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, '/\n');
      });
    });
  });

  it('a submit directory missing on the machine that runs the job: the work folder, and a first stderr line saying so', async () => {
    await withServer(async (s) => {
      const job = await s.client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'pwd; echo mine >&2'], submitDirectory: '/no/such/place' });
      const done = await s.client.waitUntilDone(job.id);
      assert.equal(done.status, 'Success');
      const out = new TextDecoder().decode((await s.client.readOutput(job.id, 'stdout')).data);
      const err = new TextDecoder().decode((await s.client.readOutput(job.id, 'stderr')).data);
      assert.equal(out, `${s.server.workDir}\n`);
      const lines = err.split('\n');
      assert.match(lines[0]!, /^jobwire: the directory the job was submitted from, \/no\/such\/place, does not exist on .+; the job starts in .+ instead$/);
      assert.equal(lines[1], 'mine');
    });
  });

  it('refuses a relative submit directory, naming the field', async () => {
    await withServer(async (s) => {
      await assert.rejects(s.client.submitBatchJob({ executable: 'true', submitDirectory: 'rel/dir' }), (e: Error & { field?: string }) => e.field === 'submitDirectory');
    });
  });
});

describe('CLI edges', () => {
  it('takes --url, --token and --home before the command too', async () => {
    await withServer(async (s) => {
      const r = await runCli(['--url', s.url, '--token', s.token, '--home', s.home, 'jobs', '--json'], { env: { JOBWIRE_URL: '', JOBWIRE_TOKEN: '', JOBWIRE_HOME: '' } });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout), []);
      const wrong = await runCli(['--token', 'nope', 'jobs'], { env: cliEnv(s) });
      assert.notEqual(wrong.code, 0, 'the leading --token is the one used, over JOBWIRE_TOKEN');
      assert.match(wrong.stderr, /token/i);
    });
  });

  it('accepts a unique prefix of a job id, and lists the candidates of an ambiguous one', async () => {
    await withServer(async (s) => {
      const ids: string[] = [];
      for (let i = 0; i < 40; i++) ids.push((await s.client.submitBatchJob({ executable: 'true' })).id);
      const unique = ids.find((id) => ids.filter((other) => other.startsWith(id.slice(0, 3))).length === 1)!;
      const status = await runCli(['status', unique.slice(0, 3)], { env: cliEnv(s) });
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, new RegExp(`^id\\s*: ${unique}$`, 'm'));
      // 40 ids over 16 first characters: some first character starts two or more.
      const first = ids.map((id) => id[0]!).find((c, _i, all) => all.filter((d) => d === c).length > 1)!;
      const candidates = ids.filter((id) => id.startsWith(first));
      const ambiguous = await runCli(['status', first], { env: cliEnv(s) });
      assert.notEqual(ambiguous.code, 0);
      assert.match(ambiguous.stderr, /ambiguous/);
      for (const id of candidates) assert.ok(ambiguous.stderr.includes(id), `${id} listed in ${ambiguous.stderr}`);
      const none = await runCli(['status', 'zzz'], { env: cliEnv(s) });
      assert.equal(none.code, 4, none.stderr);
    });
  });

  it("prints docs/cli.md's messages: the delete hint, the failed-start note, a function job's exit code", async () => {
    await withServer(async (s) => {
      const env = cliEnv(s);
      const running = await s.client.submitBatchJob({ executable: 'sleep', arguments: ['30'], queueName: 'unlimited' });
      await s.client.waitUntilRunning(running.id, 10_000);
      const del = await runCli(['delete', running.id], { env });
      assert.equal(del.code, 1);
      assert.equal(del.stderr, `jobwire: job ${running.id} is Running; cancel it before deleting it: jobwire cancel --wait ${running.id}\n`);
      await s.client.cancelJob(running.id);
      const missing = await runCli(['run', '--', 'nosuch-program-h13'], { env });
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /^jobwire: job \S+ failed: cannot start "nosuch-program-h13": ENOENT: no such file or directory\n$/);
      const threw = await runCli(['submit', '--block', '--js', "throw new Error('boom')"], { env });
      assert.equal(threw.code, 1, threw.stderr);
      assert.match(threw.stdout, /^exit code\s*: 1$/m);
    });
  });

  it('help says only what each command accepts', async () => {
    const attach = await runCli(['attach', '--help']);
    assert.equal(attach.code, 0);
    assert.doesNotMatch(attach.stdout, /With -i|With -t|\s-i,|\s-t,/);
    const run = await runCli(['run', '--help']);
    assert.doesNotMatch(run.stdout, /--cmd|--js|"js"/);
  });
});
