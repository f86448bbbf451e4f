/**
 * The jobwire home is private: an existing home open to others is tightened to 0700 when a
 * server or worker starts on it, the database and output files are 0600, and a home that
 * belongs to another user is refused.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Client } from '@jobwire/client';
import { CLI, runCli, sleepUntil, startServerProcess, removeHome, tempHome } from '../helpers.js';
import { REDIS_URL, dropPrefix, freshPrefix } from '../redis-env.js';

const mode = (path: string): number => statSync(path).mode & 0o777;

/** Every file and folder under `dir`, with its mode. */
function modesUnder(dir: string): Array<[string, number]> {
  const found: Array<[string, number]> = [];
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    const path = join(entry.parentPath, entry.name);
    found.push([path, mode(path)]);
  }
  return found;
}

describe('home permissions', () => {
  it('makes an existing 0755 home private on start, with the database and output files readable by no one else', async () => {
    const home = tempHome();
    chmodSync(home, 0o755);
    const server = await startServerProcess(home);
    try {
      assert.equal(mode(home).toString(8), '700');
      const client = new Client({ url: server.url, token: server.token });
      const job = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'echo secret; echo more >&2'] });
      assert.equal((await client.waitUntilDone(job.id, 15_000)).status, 'Success');
      const output = join(home, 'output');
      const db = ['jobwire.db', 'jobwire.db-wal', 'jobwire.db-shm'].map((f) => join(home, f));
      const stored = [...db.map((f): [string, number] => [f, mode(f)]), [output, mode(output)] as [string, number], ...modesUnder(output)];
      assert.ok(stored.some(([path]) => path.endsWith('/stdout')), `output files: ${stored.map(([p]) => p).join(', ')}`);
      const open = stored.filter(([, m]) => (m & 0o077) !== 0).map(([path, m]) => `${path} ${m.toString(8)}`);
      assert.deepEqual(open, [], 'files others can read');
    } finally {
      server.proc.kill('SIGTERM');
      await server.exited;
      removeHome(home);
    }
  });

  it("refuses to start a server in another user's home, changing nothing", async () => {
    // As root: a folder handed to nobody (65534). Otherwise "/" (root's, and not ours to chmod).
    const asRoot = process.getuid!() === 0;
    const home = asRoot ? tempHome() : '/';
    if (asRoot) {
      chmodSync(home, 0o755);
      chownSync(home, 65534, 65534);
    }
    try {
      const result = await runCli(['server', '--port', '0', '--home', home, '--log-level', 'warn']);
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /jobwire home .* belongs to another user \(uid \d+; this process runs as uid \d+\)/);
      assert.equal(mode(home).toString(8), '755', 'the mode is left alone');
      if (asRoot) assert.deepEqual(readdirSync(home), [], 'nothing written into it');
    } finally {
      if (asRoot) removeHome(home);
    }
  });

  it('makes the home of `jobwire worker --home` private too', async () => {
    const home = tempHome();
    chmodSync(home, 0o755);
    mkdirSync(join(home, 'work'), { mode: 0o755 });
    const prefix = freshPrefix();
    const worker = spawn(process.execPath, [CLI, 'worker', '--redis', REDIS_URL, '--redis-prefix', prefix, '--home', home, '--name', 'home-test', '--slots', '1', '--log-level', 'warn'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    worker.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    worker.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise((resolve) => worker.on('exit', resolve));
    try {
      await sleepUntil(() => {
        if (worker.exitCode !== null) throw new Error(`worker exited with ${worker.exitCode}: ${stderr}`);
        return stdout.includes('ready');
      }, 20_000, 'the worker to be ready');
      assert.equal(mode(home).toString(8), '700');
      assert.match(stderr, /made it private/);
    } finally {
      worker.kill('SIGTERM');
      await exited;
      await dropPrefix(prefix);
      removeHome(home);
    }
  });
});
