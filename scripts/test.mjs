#!/usr/bin/env node
// Runs every compiled test file (`*.test.js`) of every package with node's test runner. Only
// test files are passed: given a folder, node 20 would also load the helper modules beside them
// (helpers.js, redis-env.js, …) and list each as an empty test file.
// Test files run in parallel processes (two at a time on a 2-core machine); each file starts
// its own servers on free ports with its own jobwire home, so they do not interfere.
//
// Redis: the tests use the Redis at JOBWIRE_TEST_REDIS (default redis://127.0.0.1:6379). When
// nothing answers there, a private redis-server is started for the run (a free port, a temporary
// folder, no persistence) and stopped after it; when redis-server is not installed either, the
// run stops at once with one line saying what to install.
//
// A run must leave the work tree as it found it (screenshots go to the git-ignored
// test-artifacts/): files that appear in `git status` during the run are listed and fail it.
//
// Slurm: the Slurm tests start a one-node cluster of their own (packages/jobwire/test/slurm-env.ts;
// Debian's munge, slurmctld, slurmd and slurm-client, run as root), shared by all of them and
// stopped at the end of the run.
//
// Then the core behaviour tests and the CLI tests run a second time against distributed mode
// (JOBWIRE_TEST_BACKEND=redis: a Redis-backed server plus a worker, on a fresh key prefix — see
// packages/jobwire/test/helpers.ts). The restart test is left out there: it is about the
// embedded server's own restart (distributed failures have their tests in test/distributed/).
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

const extra = process.argv.slice(2);
const concurrency = process.env.JOBWIRE_TEST_CONCURRENCY ?? String(Math.max(2, availableParallelism()));
const REDIS_ENV = 'packages/jobwire/dist/test/redis-env.js';
const SLURM_ENV = 'packages/jobwire/dist/test/slurm-env.js';

/** Every `*.test.js` under `dir`, sorted. */
function testFiles(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.test.js'))
    .sort()
    .map((f) => join(dir, f));
}

/** Untracked files `git status` shows now (none outside a git checkout). */
function untracked() {
  try {
    const out = execFileSync('git', ['status', '--porcelain', '--untracked-files=all'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return new Set(out.split('\n').filter((line) => line.startsWith('?? ')).map((line) => line.slice(3)));
  } catch {
    return new Set();
  }
}

let current;
let interrupted;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    interrupted = signal;
    current?.kill(signal);
  });
}

function run(label, targets, env = {}, parallel = concurrency) {
  return new Promise((resolve) => {
    console.log(`\n== ${label}\n`);
    // --test-force-exit: a test file's process ends once its tests are done, even if something it
    // started still holds it open (a server left behind by a failed test would otherwise keep the
    // whole run waiting for ever).
    const args = ['--test', `--test-concurrency=${parallel}`, '--test-force-exit', '--test-reporter=spec', ...extra, ...targets];
    current = spawn(process.execPath, args, { stdio: 'inherit', env: { ...process.env, ...env } });
    current.on('exit', (code, signal) => {
      current = undefined;
      resolve(code ?? (signal ? 1 : 0));
    });
  });
}

if (!existsSync(REDIS_ENV)) {
  console.error(`scripts/test.mjs: ${REDIS_ENV} is missing: build first (npm run build), or run \`npm test\``);
  process.exit(1);
}
const { ensureTestRedis, RedisServerMissingError } = await import(`../${REDIS_ENV}`);
let redis;
try {
  redis = await ensureTestRedis();
} catch (err) {
  if (!(err instanceof RedisServerMissingError)) throw err;
  console.error(`npm test: ${err.message}`);
  process.exit(1);
}
if (redis.started) console.log(`== nothing answers at ${process.env.JOBWIRE_TEST_REDIS ?? 'redis://127.0.0.1:6379'}: started a private redis-server at ${redis.url} for this run`);
const redisEnv = { JOBWIRE_TEST_REDIS: redis.url };

const untrackedBefore = untracked();
let status = 1;
try {
  // The files that use the shared Slurm test cluster run after the others, one at a time: two
  // of them side by side disturbed each other's jobs on the one-node cluster.
  const files = [...testFiles('packages/client/dist/test'), ...testFiles('packages/jobwire/dist/test')];
  const slurmFiles = files.filter((file) => readFileSync(file, 'utf8').includes('slurm-env.js'));
  let all = await run('all tests (embedded backend)', files.filter((file) => !slurmFiles.includes(file)), redisEnv);
  if (!interrupted) {
    const slurm = await run('the Slurm tests, one file at a time (one shared test cluster)', slurmFiles, redisEnv, '1');
    if (all === 0) all = slurm;
  }
  let again = 0;
  if (!interrupted) {
    const targets = [
      ...testFiles('packages/jobwire/dist/test/core').filter((f) => !f.endsWith('/restart.test.js')),
      ...testFiles('packages/jobwire/dist/test/cli').filter((f) => f.endsWith('/cli.test.js')),
    ];
    again = await run('core and CLI tests again, distributed mode (redis backend)', targets, { ...redisEnv, JOBWIRE_TEST_BACKEND: 'redis' });
  }
  status = interrupted ? 1 : all !== 0 ? all : again;
} finally {
  await redis.started?.stop();
  // The Slurm tests share one test cluster (started by the first of them); stop it with the run.
  const { stopTestSlurm } = await import(`../${SLURM_ENV}`);
  await stopTestSlurm();
}
const stray = [...untracked()].filter((file) => !untrackedBefore.has(file));
if (stray.length > 0 && !interrupted) {
  console.error(`npm test: the run left files in the work tree (a test wrote where it should not): ${stray.join(', ')}`);
  if (status === 0) status = 1;
}
process.exit(status);
