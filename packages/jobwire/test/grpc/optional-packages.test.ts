import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { removeHome, tempHome } from '../helpers.js';

/** The monorepo's installed packages. */
const NODE_MODULES = fileURLToPath(new URL('../../../../../node_modules/', import.meta.url));

/**
 * An install of jobwire without the optional gRPC packages: a `node_modules` of links to every
 * installed package except `@grpc/*`. Run with `--preserve-symlinks`, node resolves imports from
 * the links' paths, so `@grpc/grpc-js` is simply not there — as after `npm install jobwire`
 * without the optional peers.
 */
function installWithoutGrpc(): string {
  const dir = mkdtempSync(join(tmpdir(), 'jobwire-nogrpc-'));
  const target = join(dir, 'node_modules');
  mkdirSync(target);
  for (const name of readdirSync(NODE_MODULES)) {
    if (name === '@grpc' || name === '.bin' || name.startsWith('.')) continue;
    if (name.startsWith('@')) {
      mkdirSync(join(target, name));
      for (const member of readdirSync(join(NODE_MODULES, name))) symlinkSync(join(NODE_MODULES, name, member), join(target, name, member));
    } else {
      symlinkSync(join(NODE_MODULES, name), join(target, name));
    }
  }
  return dir;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `jobwire ARGS` from the install in `dir`; `until` may end it early (SIGTERM) once the output satisfies it. */
function jobwireFrom(dir: string, args: string[], until?: (stdout: string) => boolean): Promise<Run> {
  const cli = join(dir, 'node_modules', 'jobwire', 'bin', 'jobwire.js');
  const env = { ...process.env };
  delete env.NODE_PATH;
  const proc = spawn(process.execPath, ['--preserve-symlinks', '--preserve-symlinks-main', cli, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    if (until?.(stdout)) proc.kill('SIGTERM');
  });
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => proc.on('close', (code) => resolve({ code, stdout, stderr })));
}

describe('gRPC packages are optional', () => {
  let dir: string;
  before(() => {
    // A node_modules above the temporary folder would let the packages be found after all.
    assert.equal(existsSync(join(tmpdir(), 'node_modules')), false, `${join(tmpdir(), 'node_modules')} must not exist for this test`);
    dir = installWithoutGrpc();
    assert.equal(existsSync(join(dir, 'node_modules', '@grpc')), false);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('without @grpc/grpc-js and @grpc/proto-loader, `jobwire server` runs (embedded mode needs neither)', async () => {
    const home = tempHome();
    try {
      const run = await jobwireFrom(dir, ['server', '--port', '0', '--home', home, '--log-level', 'warn'], (out) => out.includes('jobwire server listening on'));
      assert.match(run.stdout, /jobwire server listening on http:\/\/127\.0\.0\.1:\d+/, run.stderr);
      assert.equal(run.code, 0, `a clean stop after SIGTERM: ${run.stderr}`);
    } finally {
      removeHome(home);
    }
  });

  it('without them, `jobwire server --grpc-port` stops at start with one line saying what to install', async () => {
    const home = tempHome();
    try {
      const run = await jobwireFrom(dir, ['server', '--port', '0', '--home', home, '--log-level', 'warn', '--grpc-port', '0']);
      assert.equal(run.code, 1, run.stderr);
      const lines = run.stderr.trim().split('\n');
      assert.equal(lines.length, 1, `one line: ${run.stderr}`);
      assert.match(lines[0]!, /--grpc-port: the gRPC service needs the optional packages @grpc\/grpc-js and @grpc\/proto-loader: npm install @grpc\/grpc-js@\S+ @grpc\/proto-loader@\S+$/);
    } finally {
      removeHome(home);
    }
  });
});
