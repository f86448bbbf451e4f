/**
 * Pausing a job's output from two places: the job host (write-behind full) and the copy into
 * the description's stdout file. One must not resume what the other still holds.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { LocalExecutor, type ProcessHandle } from '../../src/executors/index.js';
import { ReadGate } from '../../src/executors/local/setup.js';

test('a stream held by one holder stays paused when another holder resumes it', () => {
  const stream = new PassThrough();
  stream.on('data', () => {});
  const gate = new ReadGate(() => stream);
  gate.hold('caller');
  const copy = gate.as('copy');
  copy.pause();
  copy.resume();
  assert.equal(stream.isPaused(), true, "the copy's resume does not undo the caller's pause");
  gate.release('caller');
  assert.equal(stream.isPaused(), false);
});

test('pauseOutput holds a job that also copies its stdout to a file, until resumeOutput', { timeout: 30_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'jobwire-gate-'));
  try {
    let received = 0;
    let paused = false;
    const handle: ProcessHandle = new LocalExecutor().start({
      jobId: 'gate',
      description: { executable: 'sh', arguments: ['-c', 'head -c 4000000 /dev/zero'], stdout: join(dir, 'copy') },
      defaultCwd: dir,
      env: {},
      onOutput: (_channel, data) => {
        received += data.length;
        // Mid-stream, as a job host does when its buffer fills: the copy, behind on its file,
        // has paused the pipe too and will resume it once the file catches up.
        if (!paused) {
          paused = true;
          handle.pauseOutput?.();
        }
      },
      onProgress: () => {},
    });
    // Whatever the copy does meanwhile (it pauses and resumes the pipe as the file catches up),
    // the job cannot finish while the caller holds its output: 4 MB do not fit in a pipe.
    const settled = await Promise.race([handle.done.then(() => 'ended'), new Promise((resolve) => setTimeout(() => resolve('held'), 1500))]);
    assert.equal(settled, 'held');
    assert.ok(received < 4_000_000);
    handle.resumeOutput?.();
    const result = await handle.done;
    assert.equal(result.exitCode, 0);
    assert.equal(received, 4_000_000);
    assert.equal(statSync(join(dir, 'copy')).size, 4_000_000);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
