#!/usr/bin/env node
// Runs every compiled test file of every package with node's test runner.
// Test files run in parallel processes (two at a time on a 2-core machine); each file starts
// its own servers on free ports with its own jobwire home, so they do not interfere.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';

const dirs = ['packages/client/dist/test', 'packages/jobwire/dist/test'].filter((d) => existsSync(d));
const concurrency = process.env.JOBWIRE_TEST_CONCURRENCY ?? String(Math.max(2, availableParallelism()));
const args = ['--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...process.argv.slice(2), ...dirs];
const child = spawn(process.execPath, args, { stdio: 'inherit' });
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
