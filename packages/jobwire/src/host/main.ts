/**
 * The job host's process: `node main.js --home DIR [--options JSON]`, started detached (its own
 * session) by {@link ensureHost} with stdout and stderr on `<home>/host.log`. When fd 3 is a
 * pipe it reports there, as one JSON line, whether it is serving (`{"ready":true}`), found
 * another host serving the home (`{"busy":PID}`), or failed (`{"error":"..."}`), then closes it.
 *
 * SIGTERM and SIGINT stop its jobs (SIGTERM, SIGKILL after the grace period), store their ends,
 * and exit; SIGHUP is ignored (no terminal to lose: it runs in a session of its own).
 * @module
 */
import { closeSync, writeSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DEFAULT_GRACE_MS } from './job.js';
import { HostRunningError, JobHost, type JobHostOptions } from './daemon.js';
import { fdLogger } from './log.js';

const READY_FD = 3;

/** Options passed as `--options JSON`: the tunables of {@link JobHostOptions}. */
export type HostProcessOptions = Pick<JobHostOptions, 'idleMs' | 'versions' | 'writeBehindBytes' | 'retryMinMs' | 'retryMaxMs' | 'functionStartHoldMs'>;

function report(message: object): void {
  try {
    writeSync(READY_FD, JSON.stringify(message) + '\n');
    closeSync(READY_FD);
  } catch {
    // Started by hand, without a pipe on fd 3: nobody to tell.
  }
}

async function main(): Promise<void> {
  const log = fdLogger(1);
  // A job host that dies takes every running job with it: an error in one job's bookkeeping is
  // logged and that is all.
  process.on('uncaughtException', (error) => log.error('uncaught exception; the host keeps running', { err: error }));
  process.on('unhandledRejection', (error) => log.error('unhandled rejection; the host keeps running', { err: error }));
  process.on('SIGHUP', () => {});

  const { values } = parseArgs({ options: { home: { type: 'string' }, options: { type: 'string' } }, strict: true });
  if (values.home === undefined) {
    report({ error: 'usage: main.js --home DIR [--options JSON]' });
    process.exit(2);
  }
  let extra: HostProcessOptions = {};
  try {
    extra = values.options === undefined ? {} : (JSON.parse(values.options) as HostProcessOptions);
  } catch (error) {
    report({ error: `--options is not JSON: ${(error as Error).message}` });
    process.exit(2);
  }

  let host: JobHost;
  try {
    host = await JobHost.start({ ...extra, home: values.home, log });
  } catch (error) {
    if (error instanceof HostRunningError) report({ busy: error.pid });
    else report({ error: (error as Error).message });
    log.error('job host could not start', { err: error });
    process.exit(1);
  }
  report({ ready: true, pid: process.pid });

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info(`${signal}: stopping the jobs, then exiting`);
    void host.shutdown(DEFAULT_GRACE_MS);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  await host.closed;
  process.exit(0);
}

void main();
