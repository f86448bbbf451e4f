/**
 * A real one-node Slurm cluster for the tests: munged, slurmctld and slurmd (Debian's `munge`,
 * `slurmctld`, `slurmd`, `slurm-client`) started by hand — there is no systemd here — with a
 * private munge key and socket, a private slurm.conf on free ports, no accounting, and two
 * partitions: `debug` (the default, no time limit) and `short` (at most one minute, enforced at
 * submission). Every Slurm test file shares one cluster: the first starts it in a fixed folder
 * under the temporary directory, the next find it up and reuse it; `npm test` stops it at the
 * end (scripts/test.mjs), or run `node packages/jobwire/dist/test/slurm-env.js stop`.
 * The daemons run as root (SlurmUser=root): the tests must run as root.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { freePort } from './redis-env.js';

/** The folder of the shared test cluster (configuration, key, sockets, state, logs). */
export const SLURM_DIR = join(tmpdir(), 'jobwire-test-slurm');
/** Its slurm.conf: give it to Slurm's commands as `SLURM_CONF`. */
export const SLURM_CONF = join(SLURM_DIR, 'slurm.conf');
/** The environment Slurm's commands need to reach the test cluster. */
export const SLURM_ENV = { SLURM_CONF };
/** Partitions of the test cluster. */
export const PARTITIONS = { default: 'debug', short: 'short' } as const;

const DAEMONS = ['munged', 'slurmctld', 'slurmd'] as const;
const LOCK = `${SLURM_DIR}.lock`;

/** A daemon or tool of the test cluster is not installed. */
export class SlurmMissingError extends Error {
  override name = 'SlurmMissingError';
}

function pidFile(daemon: (typeof DAEMONS)[number]): string {
  return join(SLURM_DIR, `${daemon}.pid`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function daemonPid(daemon: (typeof DAEMONS)[number]): number | undefined {
  try {
    const pid = Number(readFileSync(pidFile(daemon), 'utf8').trim());
    return Number.isSafeInteger(pid) && pid > 0 && alive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Runs a Slurm command against the test cluster; its stdout, or throws with its stderr. */
export function slurmCommand(file: string, args: string[]): string {
  return execFileSync(file, args, { env: { ...process.env, ...SLURM_ENV }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
}

/** The Slurm jobs (any state Slurm still remembers) whose comment names jobwire job `id`: "slurmId STATE" lines. */
export function slurmJobsOf(id: string): string[] {
  return slurmCommand('squeue', ['--noheader', '--states=all', '--format=%i %T %k'])
    .split('\n')
    .filter((line) => line.endsWith(` jobwire:${id}`))
    .map((line) => line.split(' ').slice(0, 2).join(' '));
}

/**
 * Waits until jobwire job `id`'s reason (read with `status`, a client's getJobStatus) says Slurm
 * holds it; returns the job and its Slurm id.
 */
export async function waitInSlurm<T extends { reason?: string | null }>(status: (id: string) => Promise<T>, id: string): Promise<{ job: T; slurmId: string }> {
  const until = Date.now() + 60_000;
  for (;;) {
    const job = await status(id);
    const slurmId = /^queued in Slurm as job (\d+): PENDING/.exec(job.reason ?? '')?.[1];
    if (slurmId !== undefined) return { job, slurmId };
    if (Date.now() > until) throw new Error(`job ${id} did not come to wait in Slurm within 60 s (reason: ${job.reason ?? 'none'})`);
    await sleep(200);
  }
}

/** True when the node answers idle (or mixed/allocated: up and usable). */
function nodeUp(): boolean {
  try {
    return /^(idle|mix|alloc)/m.test(slurmCommand('sinfo', ['--noheader', '--format=%t']));
  } catch {
    return false;
  }
}

/** A config file written as it should be (so a folder from an older helper version is rebuilt). */
function configIsCurrent(text: string): boolean {
  return existsSync(SLURM_CONF) && readFileSync(SLURM_CONF, 'utf8').replace(/^Slurm(ctld|d)Port=.*$/gm, '') === text.replace(/^Slurm(ctld|d)Port=.*$/gm, '');
}

function slurmConf(ctldPort: number, dPort: number): string {
  const node = hostname();
  return `# jobwire test cluster (test/slurm-env.ts): one node, no accounting, no systemd.
ClusterName=jwtest
SlurmctldHost=${node}(127.0.0.1)
SlurmctldPort=${ctldPort}
SlurmdPort=${dPort}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=${join(SLURM_DIR, 'munge.socket')}
StateSaveLocation=${join(SLURM_DIR, 'state')}
SlurmdSpoolDir=${join(SLURM_DIR, 'spool')}
SlurmctldPidFile=${pidFile('slurmctld')}
SlurmdPidFile=${pidFile('slurmd')}
SlurmctldLogFile=${join(SLURM_DIR, 'slurmctld.log')}
SlurmdLogFile=${join(SLURM_DIR, 'slurmd.log')}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
EnforcePartLimits=ALL
OverTimeLimit=0
KillWait=2
MinJobAge=300
MessageTimeout=5
InactiveLimit=0
SlurmctldTimeout=10
SlurmdTimeout=30
# More CPUs than the machine has (config_overrides lets slurmd take the declared ones): the test
# files run side by side, and a node full of one file's jobs would leave another's srun waiting
# for resources (its "queued and waiting" notice arriving where the test expects the job's output).
SlurmdParameters=config_overrides
NodeName=${node} NodeAddr=127.0.0.1 CPUs=16 State=UNKNOWN
PartitionName=${PARTITIONS.default} Nodes=${node} Default=YES MaxTime=INFINITE State=UP
PartitionName=${PARTITIONS.short} Nodes=${node} MaxTime=1 State=UP
`;
}

/**
 * Stops the test cluster's daemons (by their pid files), waits up to 15 s for them to exit (they
 * save state on the way out), then removes its folder.
 */
export async function stopTestSlurm(): Promise<void> {
  const pids = [...DAEMONS].reverse().flatMap((daemon) => daemonPid(daemon) ?? []);
  for (const pid of pids) process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 150 && pids.some(alive); i++) await sleep(100);
  rmSync(SLURM_DIR, { recursive: true, force: true, maxRetries: 5 });
}

/** Takes the start lock (a folder: mkdir is atomic), breaking one older than a minute. */
async function lock(): Promise<() => void> {
  for (let i = 0; ; i++) {
    try {
      mkdirSync(LOCK);
      return () => rmSync(LOCK, { recursive: true, force: true });
    } catch {
      if (i > 1200) rmSync(LOCK, { recursive: true, force: true });
      await sleep(100);
    }
  }
}

/**
 * Makes sure the shared test cluster is up (starting it when it is not) and its node usable.
 * Throws a SlurmMissingError naming what to install when a daemon is missing, and an Error
 * with the daemon's log when one does not come up.
 */
export async function useTestSlurm(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the Slurm tests start slurmctld and slurmd as root (SlurmUser=root): run them as root');
  for (const program of ['munged', 'slurmctld', 'slurmd', 'sbatch']) {
    if (spawnSync('sh', ['-c', `command -v ${program}`]).status !== 0) {
      throw new SlurmMissingError(`${program} is not installed: apt-get install --no-install-recommends munge slurmctld slurmd slurm-client`);
    }
  }
  const unlock = await lock();
  try {
    const expected = slurmConf(0, 0);
    if (DAEMONS.every((d) => daemonPid(d) !== undefined) && configIsCurrent(expected) && nodeUp()) return;
    await stopTestSlurm();
    // munged wants a socket folder everyone may enter.
    mkdirSync(SLURM_DIR, { recursive: true, mode: 0o755 });
    for (const dir of [join(SLURM_DIR, 'state'), join(SLURM_DIR, 'spool')]) mkdirSync(dir, { mode: 0o700 });
    writeFileSync(join(SLURM_DIR, 'munge.key'), randomBytes(1024), { mode: 0o600 });
    writeFileSync(SLURM_CONF, slurmConf(await freePort(), await freePort()));
    execFileSync('munged', [
      `--socket=${join(SLURM_DIR, 'munge.socket')}`,
      `--key-file=${join(SLURM_DIR, 'munge.key')}`,
      `--pid-file=${pidFile('munged')}`,
      `--log-file=${join(SLURM_DIR, 'munged.log')}`,
      `--seed-file=${join(SLURM_DIR, 'munged.seed')}`,
    ]);
    // Both fork into the background once started (-f: our configuration; -N: the node's name).
    execFileSync('slurmctld', ['-f', SLURM_CONF], { env: { ...process.env, ...SLURM_ENV } });
    execFileSync('slurmd', ['-f', SLURM_CONF, '-N', hostname()], { env: { ...process.env, ...SLURM_ENV } });
    for (let i = 0; i < 300; i++) {
      if (nodeUp()) return;
      await sleep(100);
    }
    const log = (name: string): string => (existsSync(join(SLURM_DIR, name)) ? readFileSync(join(SLURM_DIR, name), 'utf8').split('\n').slice(-15).join('\n') : '(no log)');
    throw new Error(`the test Slurm node did not become idle within 30 s\nslurmctld.log:\n${log('slurmctld.log')}\nslurmd.log:\n${log('slurmd.log')}`);
  } finally {
    unlock();
  }
}

// `node slurm-env.js start|stop`: for a shell (and scripts/test.mjs).
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const command = process.argv[2];
  if (command === 'stop') await stopTestSlurm();
  else if (command === 'start') await useTestSlurm();
  else {
    console.error('usage: node slurm-env.js start|stop');
    process.exitCode = 2;
  }
}
