/**
 * What the Slurm executor makes of Slurm's words, without a cluster: every end state mapped as
 * issue 11 says, the phases, and the parsers of squeue, scontrol and sinfo output. The real
 * cluster tests (slurm-executor.test.ts) cover what a one-node test cluster can produce; node
 * failures, preemption and out-of-memory kills it cannot, so their mapping is checked here.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { batchScript, endResult, jobFiles, parseScontrolJob, parseSinfo, parseSqueue, phaseOf, scontrolComment, shellQuote, timeLimit } from '../../src/executors/slurm/commands.js';

const end = (state: string, reason = 'None', extra: { recordedExit?: number; terminated?: boolean; exitCode?: number; exitSignal?: number } = {}) =>
  endResult({
    slurmId: '42',
    state: { state, reason, ...(extra.exitCode !== undefined ? { exitCode: extra.exitCode } : {}), ...(extra.exitSignal !== undefined ? { exitSignal: extra.exitSignal } : {}) },
    recordedExit: extra.recordedExit,
    terminated: extra.terminated ?? false,
  });

test('PENDING and held states are queued; CONFIGURING, RUNNING, COMPLETING are running; the rest ended', () => {
  for (const s of ['PENDING', 'REQUEUED', 'REQUEUE_HOLD']) assert.equal(phaseOf(s), 'queued', s);
  for (const s of ['CONFIGURING', 'RUNNING', 'COMPLETING', 'SUSPENDED']) assert.equal(phaseOf(s), 'running', s);
  for (const s of ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'NODE_FAIL', 'PREEMPTED', 'BOOT_FAIL', 'OUT_OF_MEMORY', 'DEADLINE']) assert.equal(phaseOf(s), 'ended', s);
});

test('COMPLETED → exit code 0; FAILED → the recorded exit code, else Slurm\'s', () => {
  assert.deepEqual(end('COMPLETED'), { exitCode: 0, signal: null });
  assert.deepEqual(end('FAILED', 'NonZeroExitCode', { recordedExit: 3, exitCode: 3 }), { exitCode: 3, signal: null });
  assert.deepEqual(end('FAILED', 'NonZeroExitCode', { exitCode: 7 }), { exitCode: 7, signal: null });
  assert.deepEqual(end('FAILED', 'NonZeroExitCode', { exitCode: 0, exitSignal: 9 }), { exitCode: null, signal: 'SIGKILL' });
});

test('CANCELLED → SIGTERM; when jobwire did not cancel it, a cancel outside jobwire (the job ends Cancelled with it)', () => {
  assert.deepEqual(end('CANCELLED', 'None', { terminated: true }), { exitCode: null, signal: 'SIGTERM' });
  assert.deepEqual(end('FAILED', 'None', { terminated: true, exitSignal: 15 }), { exitCode: null, signal: 'SIGTERM' });
  const outside = end('CANCELLED');
  assert.equal(outside.error, undefined);
  assert.match(outside.cancelled ?? '', /^Slurm job 42 was CANCELLED in Slurm, not by jobwire$/);
});

test('TIMEOUT, NODE_FAIL, PREEMPTED, BOOT_FAIL, OUT_OF_MEMORY → an error with the state and Slurm\'s reason', () => {
  for (const [state, reason] of [['TIMEOUT', 'TimeLimit'], ['NODE_FAIL', 'NodeDown'], ['PREEMPTED', 'None'], ['BOOT_FAIL', 'BootFail'], ['OUT_OF_MEMORY', 'OutOfMemory']] as const) {
    const result = end(state, reason, { exitCode: 0, exitSignal: 9 });
    assert.equal(result.exitCode, null, state);
    assert.equal(result.error, `Slurm job 42 ended ${state}${reason === 'None' ? '' : `, reason ${reason}`}`);
  }
});

test('squeue lines: id → state and reason, flags and "by uid" dropped', () => {
  const jobs = parseSqueue('12|RUNNING|None\n13|PENDING|Resources\n14|CANCELLED by 0|None\n\n');
  assert.deepEqual([...jobs], [
    ['12', { state: 'RUNNING', reason: 'None' }],
    ['13', { state: 'PENDING', reason: 'Resources' }],
    ['14', { state: 'CANCELLED', reason: 'None' }],
  ]);
});

test('squeue lines with the comment: the rest of the line after the reason, separators and all', () => {
  const jobs = parseSqueue('12|RUNNING|None|jobwire:abc\n13|PENDING|JobHeldUser|(null)\n14|PENDING|Priority|a|b\n');
  assert.deepEqual([...jobs], [
    ['12', { state: 'RUNNING', reason: 'None', comment: 'jobwire:abc' }],
    ['13', { state: 'PENDING', reason: 'JobHeldUser', comment: '(null)' }],
    ['14', { state: 'PENDING', reason: 'Priority', comment: 'a|b' }],
  ]);
});

test('scontrol show job: the comment, or \'\' when it prints none', () => {
  assert.equal(scontrolComment('JobId=5 JobState=PENDING Reason=None Comment=jobwire:x StdOut=/o'), 'jobwire:x');
  assert.equal(scontrolComment('JobId=5 JobState=PENDING Reason=None StdOut=/o'), '');
});

test('scontrol show job: state, reason and ExitCode code:signal', () => {
  const line = 'JobId=5 JobName=a b UserId=root(0) JobState=TIMEOUT Reason=TimeLimit Dependency=(null) ExitCode=0:15 Comment=jobwire:x';
  assert.deepEqual(parseScontrolJob(line), { state: 'TIMEOUT', reason: 'TimeLimit', exitCode: 0, exitSignal: 15 });
  assert.equal(parseScontrolJob('slurm_load_jobs error: Invalid job id specified'), undefined);
});

test('sinfo lines: partitions once each, the default marked', () => {
  assert.deepEqual(parseSinfo('debug*|up\nshort|up\ndebug*|up\n'), [
    { name: 'debug', isDefault: true, avail: 'up' },
    { name: 'short', isDefault: false, avail: 'up' },
  ]);
});

test('time limits in minutes:seconds, rounded up to the second', () => {
  assert.equal(timeLimit(1), '1:00');
  assert.equal(timeLimit(0.5), '0:30');
  assert.equal(timeLimit(90.01), '90:01');
});

test('the batch script quotes every word and variable, records the exit code, and records a missing folder or program as an error', () => {
  assert.equal(shellQuote("it's"), `'it'\\''s'`);
  const script = batchScript(
    { executable: 'echo', arguments: ['$HOME', "a'b"], schedulerArguments: ['--mem=10M'], stdin: 'in put' },
    { X: "$(rm -rf /)'" },
    jobFiles('/jobs/', 'j1'),
    '/w d',
  );
  assert.equal(
    script,
    [
      '#!/bin/sh',
      '#SBATCH --mem=10M',
      `fail() { printf 'error: %s (on %s)\\n' "$1" "$(hostname)" > '/jobs/j1.exit.tmp' && mv '/jobs/j1.exit.tmp' '/jobs/j1.exit'; exit 127; }`,
      `cd '/w d' 2>/dev/null || fail 'cannot start "echo": working directory /w d: ENOENT (no such directory)'`,
      `export X='$(rm -rf /)'\\'''`,
      `command -v 'echo' >/dev/null 2>&1 || fail 'cannot start "echo": ENOENT (not found)'`,
      `'echo' '$HOME' 'a'\\''b' < 'in put'`,
      'code=$?',
      `printf '%s\\n' "$code" > '/jobs/j1.exit.tmp' && mv '/jobs/j1.exit.tmp' '/jobs/j1.exit'`,
      'exit $code',
      '',
    ].join('\n'),
  );
});
