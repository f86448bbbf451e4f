/**
 * gLite JDL jobs through the CLI: the parser's errors, a Normal job with its attributes, and the
 * gLite seed's interactive script as an Interactive JDL job typed at a real terminal (tmux).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, chmodSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { JdlError, jdlJob, parseJdl } from '../../src/cli/jdl.js';
import { CLI, FIXTURES, cliEnv, runCli, sleepUntil, withServer } from '../helpers.js';

const run = promisify(execFile);

/** A temporary folder for the duration of `fn`. */
async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'jobwire-jdl-')));
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const count = (text: string, part: string): number => text.split(part).length - 1;

describe('JDL: the parser', () => {
  it('reads statements, lists, comments, numbers, booleans and expressions, names case-insensitive', () => {
    const attributes = parseJdl(
      [
        '[ # a gLite job',
        '  JobType = "Normal";',
        '  executable = "job.sh"; // the script',
        '  Arguments = "-n \\"two words\\" x";',
        '  /* several',
        '     lines */',
        '  Environment = {"A=1", "B=x y"};',
        '  RetryCount = 3;',
        '  PerusalFileEnable = true;',
        '  Requirements = other.GlueCEStateStatus == "Production" && other.GlueCEPolicyMaxCPUTime > 60;',
        ']',
      ].join('\n'),
    );
    assert.deepEqual(
      attributes.map((a) => [a.name, a.value]),
      [
        ['JobType', 'Normal'],
        ['executable', 'job.sh'],
        ['Arguments', '-n "two words" x'],
        ['Environment', ['A=1', 'B=x y']],
        ['RetryCount', 3],
        ['PerusalFileEnable', true],
        ['Requirements', { expression: 'other.GlueCEStateStatus == "Production" && other.GlueCEPolicyMaxCPUTime > 60' }],
      ],
    );
    const job = jdlJob(attributes, 'x.jdl', '/tmp');
    assert.equal(job.description.executable, 'job.sh');
    assert.deepEqual(job.description.arguments, ['-n', 'two words', 'x']);
    assert.deepEqual(job.description.environment, { A: '1', B: 'x y' });
    assert.equal(job.description.retries, 3);
    assert.deepEqual(job.unused, ['PerusalFileEnable', 'Requirements']);
    assert.deepEqual(job.description.attributes, { PerusalFileEnable: 'true', Requirements: 'other.GlueCEStateStatus == "Production" && other.GlueCEPolicyMaxCPUTime > 60' });
  });

  it('names the line and column of a syntax error', () => {
    const cases: [string, RegExp][] = [
      ['Executable = "a.sh"\nArguments = "x";', /^j\.jdl:2:1: expected ";" after the value of Executable, found "A"$/],
      ['Executable = "a.sh;\n', /^j\.jdl:1:14: unterminated string/],
      ['Executable "a.sh";', /^j\.jdl:1:12: expected "=" after Executable/],
      ['InputSandbox = {"a", "b";', /^j\.jdl:1:16: unterminated list|^j\.jdl:1:\d+: expected "," or "}"/],
      ['Executable = "a";\n  = 3;', /^j\.jdl:2:3: expected an attribute name, found "="$/],
      ['[ Executable = "a";', /^j\.jdl:1:\d+: missing "]"/],
      ['Executable = "a";\nexecutable = "b";', /^j\.jdl:2:1: executable is given twice$/],
    ];
    for (const [text, message] of cases) {
      assert.throws(() => parseJdl(text, 'j.jdl'), (e: unknown) => e instanceof JdlError && message.test(e.message), text);
    }
  });
});

describe('JDL jobs through the CLI', () => {
  it('a Normal JDL job with InputSandbox and OutputSandbox: uploaded, run elsewhere, fetched back with jobwire output; unknown attributes kept and reported once', async () => {
    await withServer(async (s) => {
      await withDir(async (dir) => {
        writeFileSync(join(dir, 'job.sh'), '#!/bin/sh\necho "args: $1 $2, greeting: $GREETING, input: $(cat data.txt)"\necho side > result-1.txt\n', { mode: 0o644 });
        writeFileSync(join(dir, 'data.txt'), 'from the sandbox');
        writeFileSync(
          join(dir, 'normal.jdl'),
          '[\n  Executable = "job.sh";\n  Arguments = "one two";\n  Environment = {"GREETING=hello"};\n  StdOutput = "out.txt";\n' +
            '  InputSandbox = {"job.sh", "data.txt"};\n  OutputSandbox = {"out.txt", "result-*.txt"};\n  VirtualOrganisation = "jobwire";\n]\n',
        );
        // The job runs in another, empty directory: it finds its files only because they were uploaded.
        const elsewhere = join(dir, 'elsewhere');
        mkdirSync(elsewhere);
        const r = await runCli(['submit', '--block', '--cwd', elsewhere, 'normal.jdl'], { env: cliEnv(s), cwd: dir });
        assert.equal(r.code, 0, r.stderr + r.stdout);
        assert.equal(count(r.stderr, 'VirtualOrganisation'), 1, r.stderr);
        const id = /Submitted job id: (\S+)/.exec(r.stdout)![1]!;
        const info = await s.client.getJobStatus(id);
        assert.equal(info.status, 'Success');
        assert.deepEqual(info.description?.attributes, { VirtualOrganisation: '"jobwire"' });
        const fetched = join(dir, 'fetched');
        const out = await runCli(['output', id.slice(0, 8), '--dir', fetched], { env: cliEnv(s), cwd: dir });
        assert.equal(out.code, 0, out.stderr);
        assert.deepEqual(out.stdout.trim().split('\n').sort(), [join(fetched, 'out.txt'), join(fetched, 'result-1.txt')]);
        assert.equal(readFileSync(join(fetched, 'out.txt'), 'utf8'), 'args: one two, greeting: hello, input: from the sandbox\n');
        assert.equal(readFileSync(join(fetched, 'result-1.txt'), 'utf8'), 'side\n');
      });
    });
  });

  it('submit --input and --output-file: the same sandboxes without JDL', async () => {
    await withServer(async (s) => {
      await withDir(async (dir) => {
        writeFileSync(join(dir, 'numbers.txt'), '3\n1\n2\n');
        const elsewhere = join(dir, 'elsewhere');
        mkdirSync(elsewhere);
        const r = await runCli(['submit', '--block', '--cwd', elsewhere, '--input', 'numbers.txt', '--output-file', 'sorted.txt', '--cmd', 'sort numbers.txt > sorted.txt'], { env: cliEnv(s), cwd: dir });
        assert.equal(r.code, 0, r.stderr + r.stdout);
        const id = /Submitted job id: (\S+)/.exec(r.stdout)![1]!;
        const out = await runCli(['output', id], { env: cliEnv(s), cwd: dir });
        assert.equal(out.code, 0, out.stderr);
        assert.equal(readFileSync(join(dir, id, 'sorted.txt'), 'utf8'), '1\n2\n3\n');
        const missing = await runCli(['submit', '--input', 'nope.txt', '--', 'true'], { env: cliEnv(s), cwd: dir });
        assert.equal(missing.code, 2);
        assert.match(missing.stderr, /--input nope\.txt: no such file/);
      });
    });
  });

  it('refuses a JDL file with a missing input file or a syntax error, submitting nothing', async () => {
    await withServer(async (s) => {
      await withDir(async (dir) => {
        writeFileSync(join(dir, 'missing.jdl'), 'Executable = "job.sh";\nInputSandbox = {"job.sh"};\n');
        writeFileSync(join(dir, 'broken.jdl'), 'Executable = "job.sh"\nStdOutput = "x";\n');
        const missing = await runCli(['submit', 'missing.jdl'], { env: cliEnv(s), cwd: dir });
        assert.equal(missing.code, 2);
        assert.match(missing.stderr, /missing\.jdl:2:1: InputSandbox: input file job\.sh not found/);
        const broken = await runCli(['submit', 'broken.jdl'], { env: cliEnv(s), cwd: dir });
        assert.equal(broken.code, 2);
        assert.match(broken.stderr, /broken\.jdl:2:1: expected ";" after the value of Executable/);
        assert.deepEqual((await s.client.getJobs()).items, []);
      });
    });
  });

  it("runs the gLite seed's interactive script as an Interactive JDL job typed at a real terminal (tmux): prompts before input, each line once, exit code last", async () => {
    await withServer(async (s) => {
      await withDir(async (dir) => {
        copyFileSync(join(FIXTURES, 'glite.sh'), join(dir, 'job.sh'));
        chmodSync(join(dir, 'job.sh'), 0o755);
        // The seed's own JDL (glite-interactive.txt).
        writeFileSync(join(dir, 'interactive.jdl'), 'JobType = "Interactive" ;\nExecutable = "job.sh" ;\nInputSandbox = {"job.sh"} ;\n');
        const socket = join(dir, 'tmux.sock');
        const tmux = (...args: string[]) => run('tmux', ['-S', socket, ...args]);
        const env = Object.entries(cliEnv(s)).map(([k, v]) => `${k}='${v}'`).join(' ');
        await tmux('new-session', '-d', '-x', '120', '-y', '50', `cd '${dir}' && env ${env} '${process.execPath}' '${CLI}' submit interactive.jdl; echo "EXIT=$?"; sleep 60`);
        try {
          const screen = async (): Promise<string> => (await tmux('capture-pane', '-p', '-J', '-S', '-')).stdout;
          const waitFor = async (text: string): Promise<void> => {
            try {
              await sleepUntil(async () => (await screen()).includes(text), 20_000, `${JSON.stringify(text)} in the tmux pane`);
            } catch (err) {
              throw new Error(`${(err as Error).message}; the pane shows: ${await screen()}`, { cause: err });
            }
          };
          await waitFor('Please tell me your name:'); // (tmux drops trailing blanks)
          let now = await screen();
          assert.ok(now.includes('Welcome!'));
          assert.ok(!now.includes('That is all'), 'nothing runs ahead of the answer');
          await tmux('send-keys', 'Floki', 'Enter');
          await waitFor('Bye bye.');
          now = await screen();
          assert.ok(now.includes('That is all, Floki.'));
          assert.ok(!now.includes('Go away'), 'the second read waits for its answer');
          await tmux('send-keys', 'Odin', 'Enter');
          await waitFor('EXIT=');
          now = await screen();
          for (const line of ['Welcome!', 'Please tell me your name:', 'That is all, Floki.', 'Bye bye.', 'Go away, Odin.']) {
            assert.equal(count(now, line), 1, `${JSON.stringify(line)} shown once in ${now}`);
          }
          const lines = now.split('\n').map((l) => l.trimEnd()).filter((l) => l !== '');
          assert.equal(lines[lines.length - 1], 'EXIT=0', `the exit code comes last: ${now}`);
          assert.ok(now.indexOf('Go away, Odin.') < now.indexOf('EXIT=0'));
        } finally {
          await tmux('kill-server').catch(() => undefined);
        }
      });
    });
  });
});
