/**
 * The host's journal file: entries replaced and forgotten as the host goes, compaction keeping
 * only live entries, lines cut short skipped, and the older one-file-per-job format still read
 * (a dead host of an older jobwire is recovered the same way).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { identify, selfIdentity } from '../../src/executors/local/process-identity.js';
import { journalFileName, JournalWriter, readJournal, readJournalFiles } from '../../src/host/journal.js';
import { hostPaths } from '../../src/host/paths.js';
import { recoverJournal } from '../../src/host/recovery.js';
import { withHostHome } from './helpers.js';

function withDir<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'jobwire-journal-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('job host journal', () => {
  test('entries are recorded, replaced and forgotten; the file stays while an entry is live', () => {
    withDir((dir) => {
      const host = selfIdentity()!;
      const journal = new JournalWriter(dir, host);
      journal.record({ jobId: 'a', host, leader: null, startedAt: 't0' });
      journal.record({ jobId: 'b', host, leader: null, startedAt: 't1' });
      journal.record({ jobId: 'a', host, leader: host, startedAt: 't0' });
      journal.forget('b');
      journal.forget('never-recorded');
      assert.deepEqual(readJournal(dir), [{ jobId: 'a', host, leader: host, startedAt: 't0' }]);
      const [file] = readJournalFiles(dir);
      assert.equal(file?.name, journalFileName(host));
      assert.deepEqual(file?.host, host);
      journal.close();
      assert.equal(existsSync(join(dir, journalFileName(host))), true, 'kept while an entry is live');
      assert.deepEqual(
        readJournal(dir).map((entry) => entry.jobId),
        ['a'],
        'recovery still finds the live entry after the host closed',
      );
    });
  });

  test('a host with no live entry left removes its file when it closes', () => {
    withDir((dir) => {
      const host = selfIdentity()!;
      const journal = new JournalWriter(dir, host);
      journal.record({ jobId: 'a', host, leader: null, startedAt: 't0' });
      journal.forget('a');
      journal.close();
      assert.deepEqual(readdirSync(dir), []);
    });
  });

  test('compaction keeps exactly the live entries and the file stays short', () => {
    withDir((dir) => {
      const host = selfIdentity()!;
      const journal = new JournalWriter(dir, host);
      journal.record({ jobId: 'keep', host, leader: null, startedAt: 't' });
      for (let i = 0; i < 3000; i++) {
        journal.record({ jobId: `j${i}`, host, leader: null, startedAt: 't' });
        journal.forget(`j${i}`);
      }
      journal.record({ jobId: 'last', host, leader: host, startedAt: 't' });
      const path = join(dir, journalFileName(host));
      const lines = readFileSync(path, 'utf8').split('\n').filter((line) => line !== '');
      assert.ok(lines.length < 1100, `compacted: ${lines.length} lines`);
      assert.deepEqual(
        readJournal(dir).map((entry) => entry.jobId),
        ['keep', 'last'],
      );
      assert.equal(existsSync(`${path}.tmp`), false);
      journal.close();
    });
  });

  test('a line cut short by a failed write is skipped, and the next record still counts', () => {
    withDir((dir) => {
      const host = selfIdentity()!;
      const journal = new JournalWriter(dir, host);
      journal.record({ jobId: 'a', host, leader: null, startedAt: 't' });
      // What a write cut short by a full disk leaves behind.
      appendFileSync(join(dir, journalFileName(host)), '\n{"entry":{"jobId":"torn","ho');
      journal.record({ jobId: 'b', host, leader: null, startedAt: 't' });
      assert.deepEqual(
        readJournal(dir).map((entry) => entry.jobId),
        ['a', 'b'],
      );
      journal.close();
    });
  });

  test('recovery of a dead host reads both formats, stops nothing it cannot identify, and removes what it recovered', async () => {
    await withHostHome(async (home) => {
      const dir = hostPaths(home).journal;
      mkdirSync(dir, { recursive: true });
      // A process that has exited stands for the dead host.
      const child = spawn('sleep', ['30']);
      await new Promise((resolve) => child.once('spawn', resolve));
      const dead = identify(child.pid!)!;
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));
      const journal = new JournalWriter(dir, dead);
      journal.record({ jobId: 'new-format', host: dead, leader: null, startedAt: 't' });
      // The file of an older host: one JSON entry per job.
      writeFileSync(join(dir, 'old-format.json'), JSON.stringify({ jobId: 'old-format', host: dead, leader: null, startedAt: 't' }));
      const recovered = await recoverJournal(home, 100);
      assert.deepEqual(recovered.map(({ jobId }) => jobId).sort(), ['new-format', 'old-format']);
      for (const { recovery } of recovered) {
        assert.equal(recovery.kind, 'lost');
        assert.match(recovery.kind === 'lost' ? recovery.reason : '', new RegExp(`job host \\(pid ${dead.pid}\\) died`));
      }
      assert.deepEqual(readdirSync(dir), [], 'the dead host\'s files are gone');
    });
  });
});
