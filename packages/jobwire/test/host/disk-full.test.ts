/**
 * A full disk while a job writes: the host keeps what it could not store, stops reading the
 * job's output (the job blocks), says why, and goes on when space returns — nothing dropped.
 * The home is a small tmpfs, so the test needs root (it fails, loudly, without).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ensureHost } from '../../src/host/ensure.js';
import { hostPaths } from '../../src/host/paths.js';
import { stopHost } from '../../src/host/recovery.js';
import { sleepUntil } from '../helpers.js';
import { follow, jobSpec } from './helpers.js';

const WRITE_BEHIND = 256 * 1024;

test('disk full: the job blocks with its output kept, the host says why, and it completes with every byte once space returns', { timeout: 90_000 }, async () => {
  assert.equal(process.getuid?.(), 0, 'this test mounts a tmpfs as the home: run it as root');
  const home = mkdtempSync(join(tmpdir(), 'jobwire-full-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0700', 'tmpfs', home]);
  try {
    // Leaves about 1.5 MiB for a job that writes about 3 MB.
    writeFileSync(join(home, 'filler'), Buffer.alloc(2560 * 1024, 1));
    const { client } = await ensureHost(home, { host: { writeBehindBytes: WRITE_BEHIND, retryMinMs: 20, retryMaxMs: 200 } });
    const expected = Array.from({ length: 450_000 }, (_, i) => `${i + 1}\n`).join('');
    await client.start(jobSpec('big', { executable: 'seq', arguments: ['1', '450000'] }));
    const seen = await follow(client, 'big');

    const full = await sleepUntil(() => seen.events.find((event) => event.type === 'storage' && event.storage.state === 'full'), 30_000, 'the host to report a full disk');
    assert.match(JSON.stringify(full), /ENOSPC/);
    const [blocked] = await client.list();
    assert.ok(blocked, 'the host still holds the job');
    assert.equal(blocked.exit, null, 'the job has not ended: it waits for its output to be stored');
    assert.equal(blocked.storage.state, 'full', "the job's state says why");
    assert.ok(blocked.output.end < expected.length, 'the job could not write everything');
    // The job is held back: what is not stored stays within the write-behind bound plus what
    // was already read from the pipe when the pause came.
    assert.ok(blocked.output.end - blocked.output.durable <= WRITE_BEHIND + 256 * 1024, `${blocked.output.end - blocked.output.durable} bytes held in memory`);

    rmSync(join(home, 'filler'));
    const exit = await seen.exit;
    assert.equal(exit.exitCode, 0);
    assert.ok(seen.events.some((event) => event.type === 'storage' && event.storage.state === 'ok'), 'the host said storage works again');
    assert.equal(seen.text(), expected, 'clients got every byte, once, in order');
    assert.equal(readFileSync(join(hostPaths(home).output, 'big', 'stdout'), 'latin1'), expected, 'the files hold every byte');
    client.close();
  } finally {
    await stopHost(home);
    execFileSync('umount', [home]);
    rmdirSync(home);
  }
});
