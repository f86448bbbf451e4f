#!/usr/bin/env node
// Runs every compiled test file of every package with node's test runner.
// Test files run in parallel processes (two at a time on a 2-core machine); each file starts
// its own servers on free ports with its own jobwire home, so they do not interfere.
//
// Then the core behaviour tests and the CLI tests run a second time against distributed mode
// (JOBWIRE_TEST_BACKEND=redis: a Redis-backed server plus a worker, on a fresh key prefix of the
// Redis at 127.0.0.1:6379 — see packages/jobwire/test/helpers.ts). The restart test is left out
// there: it is about the embedded server's own restart (distributed failures have their tests
// in test/distributed/).
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

const extra = process.argv.slice(2);
const concurrency = process.env.JOBWIRE_TEST_CONCURRENCY ?? String(Math.max(2, availableParallelism()));

function run(label, targets, env = {}) {
  return new Promise((resolve) => {
    console.log(`\n== ${label}\n`);
    const args = ['--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...extra, ...targets];
    const child = spawn(process.execPath, args, { stdio: 'inherit', env: { ...process.env, ...env } });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

const dirs = ['packages/client/dist/test', 'packages/jobwire/dist/test'].filter((d) => existsSync(d));
const all = await run('all tests (embedded backend)', dirs);

const core = 'packages/jobwire/dist/test/core';
const redisTargets = [
  ...(existsSync(core) ? readdirSync(core).filter((f) => f.endsWith('.test.js') && f !== 'restart.test.js').map((f) => join(core, f)) : []),
  'packages/jobwire/dist/test/cli/cli.test.js',
].filter((f) => existsSync(f));
const redis = await run('core and CLI tests again, distributed mode (redis backend)', redisTargets, { JOBWIRE_TEST_BACKEND: 'redis' });

process.exit(all !== 0 ? all : redis);
