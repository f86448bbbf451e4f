import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConnectionError, JobwireError, NotFoundError, type JobInfo } from '@jobwire/client';
import { CliError, describeError, noServerMessage, UsageError } from '../../src/cli/errors.js';
import { EscapeScanner } from '../../src/cli/escape.js';
import { ExitCode, exitCodeForErrorCode, exitCodeForJob, exitCodeForSignal, signalNumber } from '../../src/cli/exit-codes.js';
import {
  formatDuration,
  formatGroups,
  formatInfoBlock,
  formatInfoBlocks,
  formatQueues,
  formatResult,
  formatSummaryLine,
  formatTable,
  formatTimestamp,
  printable,
  sortJobsByDate,
} from '../../src/cli/format.js';
import { buildDescription, envPair, integer, nameFromLine, resolveModulePath, statusList } from '../../src/cli/options.js';
import { endNote } from '../../src/cli/session.js';

const utc = { timeZone: 'utc' as const };

function job(fields: Partial<JobInfo> = {}): JobInfo {
  return {
    id: '0c1ce595-4f6d-4fcb-b872-90118f6b1cd9',
    type: 'job',
    name: 'js',
    group: 'analysis-7:step-2',
    owner: 'admin',
    status: 'Success',
    queue: 'multi',
    progress: null,
    exitCode: 0,
    signal: null,
    error: null,
    result: 15,
    url: null,
    interactive: false,
    tty: false,
    node: 'box1',
    reason: null,
    createdAt: '2015-06-01T15:46:49.977Z',
    startedAt: '2015-06-01T15:46:49.981Z',
    endedAt: '2015-06-01T15:46:51.281Z',
    ...fields,
  };
}

describe('exit codes of commands that wait for a job', () => {
  it('is the exit code of a job that succeeded or exited non-zero', () => {
    assert.equal(exitCodeForJob({ status: 'Success', exitCode: 0, signal: null }), 0);
    assert.equal(exitCodeForJob({ status: 'Success', exitCode: null, signal: null }), 0);
    assert.equal(exitCodeForJob({ status: 'Failed', exitCode: 3, signal: null }), 3);
  });

  it('is 128 + the signal number for a job killed by a signal', () => {
    assert.equal(exitCodeForJob({ status: 'Failed', exitCode: null, signal: 'SIGKILL' }), 137);
    assert.equal(exitCodeForJob({ status: 'Failed', exitCode: null, signal: 'SIGTERM' }), 143);
    assert.equal(exitCodeForSignal('SIGINT'), 130);
    assert.equal(signalNumber('kill'), 9);
    assert.equal(exitCodeForSignal('SIGNOSUCH'), 1);
  });

  it('is 1 for a job that failed without an exit code, and never 0 for a failure', () => {
    assert.equal(exitCodeForJob({ status: 'Failed', exitCode: null, signal: null }), 1);
    assert.equal(exitCodeForJob({ status: 'Failed', exitCode: 0, signal: null }), 1);
  });

  it('is 130 for Cancelled (whatever signal stopped it), 75 for Lost, 5 when still running', () => {
    assert.equal(exitCodeForJob({ status: 'Cancelled', exitCode: null, signal: 'SIGTERM' }), 130);
    assert.equal(exitCodeForJob({ status: 'Lost', exitCode: null, signal: null }), 75);
    assert.equal(exitCodeForJob({ status: 'Running', exitCode: null, signal: null }), ExitCode.TIMEOUT);
  });
});

describe('exit codes of errors', () => {
  it('maps SDK error codes to usage, no server, not found, timeout and failure', () => {
    assert.equal(exitCodeForErrorCode('invalid_description'), 2);
    assert.equal(exitCodeForErrorCode('bad_request'), 2);
    assert.equal(exitCodeForErrorCode('no_server'), 3);
    assert.equal(exitCodeForErrorCode('connection'), 3);
    assert.equal(exitCodeForErrorCode('not_found'), 4);
    assert.equal(exitCodeForErrorCode('timeout'), 5);
    assert.equal(exitCodeForErrorCode('conflict'), 1);
    assert.equal(exitCodeForErrorCode('unauthorized'), 1);
    assert.equal(exitCodeForErrorCode('internal'), 1);
  });

  it('reports a missing job with exit code 4 and no stack', () => {
    const report = describeError(new NotFoundError('no job "x"'));
    assert.deepEqual(report, { message: 'no job "x"', exitCode: 4 });
  });

  it('names the URL when no server listens there, and the home when none is known', () => {
    const refused = new ConnectionError('refused', { code: 'no_server' });
    assert.deepEqual(describeError(refused, { url: 'http://127.0.0.1:9', home: '/h' }), {
      message: 'no server running at http://127.0.0.1:9 (start one with: jobwire server)',
      exitCode: 3,
    });
    assert.equal(noServerMessage({ home: '/h' }), 'no jobwire server found in /h (start one with: jobwire server)');
    const raw = Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) });
    assert.equal(describeError(raw, { url: 'http://h:1', home: '/h' }).exitCode, 3);
  });

  it('adds the field to an invalid description and a hint to a wrong token', () => {
    const bad = new JobwireError('invalid_description', 'expected number', { field: 'maxRuntime' });
    assert.deepEqual(describeError(bad), { message: 'expected number (field: maxRuntime)', exitCode: 2 });
    assert.match(describeError(new JobwireError('unauthorized', 'missing or invalid token')).message, /--token/);
  });

  it('keeps the exit code of CLI errors and reports unexpected errors as failures', () => {
    assert.deepEqual(describeError(new UsageError('bad')), { message: 'bad', exitCode: 2 });
    assert.deepEqual(describeError(new CliError('gone', 4)), { message: 'gone', exitCode: 4 });
    const report = describeError(new Error('boom'));
    assert.equal(report.exitCode, 1);
    assert.equal(report.message, 'boom');
    assert.ok(report.stack?.includes('boom'));
  });
});

describe('info block', () => {
  it('prints moi-style `key : value` lines under a header, result as JSON', () => {
    assert.equal(
      formatInfoBlock(job(), utc),
      [
        '********** 0c1ce595-4f6d-4fcb-b872-90118f6b1cd9 **********',
        'id : 0c1ce595-4f6d-4fcb-b872-90118f6b1cd9',
        'name : js',
        'group : analysis-7:step-2',
        'owner : admin',
        'status : Success',
        'queue : multi',
        'node : box1',
        'progress : -',
        'created : 2015-06-01 15:46:49.977',
        'started : 2015-06-01 15:46:49.981',
        'ended : 2015-06-01 15:46:51.281',
        'runtime : 1.3s',
        'exit code : 0',
        'signal : -',
        'error : -',
        'result : 15',
        'url : -',
      ].join('\n'),
    );
  });

  it('shows a queued job without times, with the reason it waits', () => {
    const text = formatInfoBlock(job({ status: 'Queued', startedAt: null, endedAt: null, exitCode: null, result: null, node: null, reason: 'queue "single" is busy' }), utc);
    assert.match(text, /^started : -$/m);
    assert.match(text, /^result : -$/m);
    assert.doesNotMatch(text, /^runtime/m);
    assert.match(text, /^reason : queue "single" is busy$/m);
  });

  it('indents the lines of a multi-line error and defuses terminal escapes', () => {
    const text = formatInfoBlock(job({ status: 'Failed', error: 'Error: boom\n    at f (x.js:1)', progress: 'evil \u001b[2J' }), utc);
    assert.match(text, /^error : Error: boom\n      at f \(x\.js:1\)$/m);
    assert.match(text, /^progress : evil \\u001b\[2J$/m);
  });

  it('computes the runtime of a running job from now', () => {
    const text = formatInfoBlock(job({ status: 'Running', endedAt: null }), { ...utc, now: new Date('2015-06-01T15:48:49.981Z') });
    assert.match(text, /^runtime : 2m 00s$/m);
  });

  it('separates blocks with a blank line', () => {
    const two = formatInfoBlocks([job({ id: 'a' }), job({ id: 'b' })], utc);
    assert.match(two, /url : -\n\n\*{10} b \*{10}/);
  });

  it('prints results as one line of JSON', () => {
    assert.equal(formatResult({ a: [1, 'x'] }), '{"a":[1,"x"]}');
    assert.equal(formatResult('hi'), '"hi"');
    assert.equal(formatResult(null), '-');
    assert.equal(formatResult(false), 'false');
  });
});

describe('summary, tables, times', () => {
  it('prints the summary line moi prints, with the name', () => {
    assert.equal(
      formatSummaryLine(job({ name: 'first' }), utc),
      'date: 2015-06-01 15:46:49.977    id: 0c1ce595-4f6d-4fcb-b872-90118f6b1cd9    status: Success    name: first',
    );
  });

  it('sorts jobs oldest first, then by id', () => {
    const sorted = sortJobsByDate([
      job({ id: 'c', createdAt: '2020-01-02T00:00:00Z' }),
      job({ id: 'b', createdAt: '2020-01-01T00:00:00Z' }),
      job({ id: 'a', createdAt: '2020-01-01T00:00:00Z' }),
    ]);
    assert.deepEqual(sorted.map((j) => j.id), ['a', 'b', 'c']);
  });

  it('aligns table columns without trailing spaces', () => {
    assert.equal(formatTable(['A', 'BB'], [['long', ''], ['x', 'y']]), 'A     BB\nlong\nx     y');
    assert.equal(
      formatQueues([
        { name: 'single', limit: 1, running: 1, queued: 2 },
        { name: 'unlimited', limit: null, running: 0, queued: 0 },
      ]),
      'QUEUE      LIMIT      RUNNING  QUEUED\nsingle     1          1        2\nunlimited  unlimited  0        0',
    );
    assert.equal(
      formatGroups([{ id: '1', type: 'group', name: 'b', path: 'a:b', parent: 'a', owner: 'u', createdAt: '2020-01-01T00:00:00Z' }, { id: '2', type: 'group', name: 'a', path: 'a', parent: null, owner: 'u', createdAt: '2020-01-01T00:00:00Z' }], utc),
      'GROUP  CREATED\na      2020-01-01 00:00:00.000\na:b    2020-01-01 00:00:00.000',
    );
  });

  it('formats durations for humans', () => {
    assert.equal(formatDuration(850), '850ms');
    assert.equal(formatDuration(12_345), '12.3s');
    assert.equal(formatDuration(245_000), '4m 05s');
    assert.equal(formatDuration(2 * 3600_000 + 3 * 60_000), '2h 03m');
    assert.equal(formatDuration(3 * 86_400_000 + 4 * 3600_000), '3d 04h');
    assert.equal(formatDuration(-5), '0ms');
  });

  it('formats timestamps, and keeps what is not one', () => {
    assert.equal(formatTimestamp('2015-06-01T15:46:49.977Z', utc), '2015-06-01 15:46:49.977');
    assert.equal(formatTimestamp(null), '-');
    assert.equal(formatTimestamp('soon'), 'soon');
  });

  it('escapes control characters but keeps newlines and tabs', () => {
    assert.equal(printable('a\tb\r\nc\u0007'), 'a\tb\nc\\u0007');
  });
});

describe('option values and the job description', () => {
  it('builds a shell job from --cmd, named after the line', () => {
    assert.deepEqual(buildDescription({ cmd: 'sleep 10; foobar' }, '/home/u'), { executable: 'sh', arguments: ['-c', 'sleep 10; foobar'], name: 'sleep 10; foobar', submitDirectory: '/home/u' });
    assert.equal(nameFromLine('x'.repeat(100)).length, 80);
  });

  it('builds a function job from --js and --js-module', () => {
    assert.deepEqual(buildDescription({ js: 'x = 5; return x + 10' }, '/work'), { js: { code: 'x = 5; return x + 10' }, submitDirectory: '/work' });
    assert.deepEqual(buildDescription({ jsModule: './job.mjs', export: 'run' }, '/work'), { js: { module: '/work/job.mjs', export: 'run' }, submitDirectory: '/work' });
    assert.equal(resolveModulePath('some-package', '/work'), 'some-package');
  });

  it('builds a program job with everything else', () => {
    assert.deepEqual(
      buildDescription(
        { command: ['make', '-j8'], name: 'build', group: 'ci', queue: 'single', env: { A: '1' }, cwd: 'src', maxRuntime: 5, interactive: true, tty: true, size: { cols: 80, rows: 24 } },
        '/home/u',
      ),
      {
        executable: 'make',
        arguments: ['-j8'],
        name: 'build',
        group: 'ci',
        queueName: 'single',
        environment: { A: '1' },
        workingDirectory: '/home/u/src',
        maxRuntime: 5,
        interactive: true,
        tty: true,
        size: { cols: 80, rows: 24 },
      },
    );
  });

  it('refuses nothing to run, two things to run, and a stray --export', () => {
    assert.throws(() => buildDescription({}), (e: unknown) => e instanceof UsageError && /nothing to run/.test(e.message));
    assert.throws(() => buildDescription({ js: '1', cmd: 'ls' }), (e: unknown) => e instanceof UsageError && /--js and --cmd/.test(e.message));
    assert.throws(() => buildDescription({ cmd: 'ls', export: 'x' }), UsageError);
    assert.throws(() => buildDescription({ cmd: '  ' }), UsageError);
  });

  it('parses --env, --status and whole numbers', () => {
    assert.deepEqual(envPair('B=x=y', envPair('A=1')), { A: '1', B: 'x=y' });
    assert.throws(() => envPair('=1'));
    assert.throws(() => envPair('1A=1'));
    assert.deepEqual(statusList('running, QUEUED', statusList('running')), ['Running', 'Queued']);
    assert.throws(() => statusList('done'));
    assert.equal(integer(0, 65535)('7700'), 7700);
    assert.throws(() => integer(0, 65535)('70000'));
    assert.throws(() => integer(1)('1.5'));
    assert.throws(() => integer(1)(''));
  });
});

describe('raw terminal escape', () => {
  const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString();

  it('detaches on ~. at the start of a line, also split across reads', () => {
    const s = new EscapeScanner();
    assert.deepEqual(s.push(Buffer.from('ls\r~')), { forward: Uint8Array.from(Buffer.from('ls\r')), detach: false });
    assert.equal(s.push(Buffer.from('.rest')).detach, true);
    assert.equal(new EscapeScanner().push(Buffer.from('~.')).detach, true);
  });

  it('passes ~ through elsewhere, and ~~ as one ~', () => {
    const s = new EscapeScanner();
    const a = s.push(Buffer.from('a~.'));
    assert.equal(a.detach, false);
    assert.equal(text(a.forward), 'a~.');
    const b = s.push(Buffer.from('\n~~.'));
    assert.equal(b.detach, false);
    assert.equal(text(b.forward), '\n~.');
    const c = s.push(Buffer.from('\r~x'));
    assert.equal(text(c.forward), '\r~x');
  });
});

describe('notes after a job ended', () => {
  it('explains failures the output cannot', () => {
    assert.equal(endNote({ status: 'Failed', exitCode: null, signal: null, error: 'spawn nope ENOENT\nmore' }, 'J'), 'job J failed: spawn nope ENOENT');
    assert.equal(endNote({ status: 'Failed', exitCode: null, signal: 'SIGKILL', error: null }, 'J'), 'job J was killed by SIGKILL');
    assert.equal(endNote({ status: 'Cancelled', exitCode: null, signal: 'SIGTERM', error: null }, 'J'), 'job J was cancelled');
    assert.equal(endNote({ status: 'Lost', exitCode: null, signal: null, error: 'server died' }, 'J'), 'job J was lost: server died');
  });

  it('says nothing about an ordinary exit code', () => {
    assert.equal(endNote({ status: 'Failed', exitCode: 3, signal: null, error: null }, 'J'), undefined);
    assert.equal(endNote({ status: 'Success', exitCode: 0, signal: null, error: null }, 'J'), undefined);
  });
});
