/**
 * What the Slurm executor says to Slurm and how it reads the answers: the options of `sbatch`
 * and `srun` made from a job description, the batch script, and the parsers of `squeue`,
 * `scontrol show job` and `sinfo` output. Pure functions, no processes.
 * @module
 */
import type { JobDescription } from '@jobwire/client';
import type { ProcessResult } from '../types.js';

/** Separates the fields of the `squeue` and `sinfo` lines we ask for (never in a state, id or name). */
const SEP = '|';

/**
 * `squeue` options: one line per job, `id|STATE|reason|comment`, all states Slurm still
 * remembers (the comment, `jobwire:ID` for jobwire's jobs, tells whose job an id is).
 */
export const SQUEUE_FORMAT = ['--noheader', '--states=all', `--format=%i${SEP}%T${SEP}%r${SEP}%k`];
/** `sinfo` options: one line per partition, `name|avail` (the default partition ends with `*`). */
export const SINFO_FORMAT = ['--noheader', `--format=%P${SEP}%a`];

/** Quotes a word for a POSIX shell. */
export function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The files of one batch job in the executor's job folder. */
export interface JobFiles {
  stdout: string;
  stderr: string;
  /** Written by the batch script with the command's exit code once it has ended. */
  exit: string;
}

/** The files of job `jobId` in `folder`. */
export function jobFiles(folder: string, jobId: string): JobFiles {
  const base = `${folder.replace(/\/+$/, '')}/${jobId}`;
  return { stdout: `${base}.out`, stderr: `${base}.err`, exit: `${base}.exit` };
}

/** `--time` for a maxRuntime in minutes (fractions allowed): `M:SS`, Slurm's minutes:seconds. */
export function timeLimit(maxRuntime: number): string {
  const seconds = Math.ceil(maxRuntime * 60);
  return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}`;
}

/**
 * Options shared by `sbatch` and `srun`: name, working directory, partition, time, tasks, cores,
 * memory and the jobwire id as comment (so `squeue -o %k` shows which jobwire job it is).
 */
export function resourceOptions(jobId: string, description: JobDescription, cwd: string, partition: string | undefined): string[] {
  const options = [`--job-name=${description.name ?? jobName(description)}`, `--chdir=${cwd}`, `--comment=${commentOf(jobId)}`];
  if (partition !== undefined) options.push(`--partition=${partition}`);
  if (description.maxRuntime !== undefined && description.maxRuntime > 0) options.push(`--time=${timeLimit(description.maxRuntime)}`);
  if (description.tasks !== undefined) options.push(`--ntasks=${description.tasks}`);
  if (description.coresPerTask !== undefined) options.push(`--cpus-per-task=${description.coresPerTask}`);
  if (description.maxMemory !== undefined && description.maxMemory > 0) options.push(`--mem=${Math.ceil(description.maxMemory)}M`);
  return options;
}

/** The default job name: the executable's base name. */
function jobName(description: JobDescription): string {
  return (description.executable ?? 'job').split('/').pop() || 'job';
}

/**
 * The batch script: scheduler arguments as `#SBATCH` lines, the environment exported in the
 * script (quoted; nothing relies on sbatch passing ours on, so the same script works through
 * SSH), the command with its stdin file, then its exit code written to `files.exit` (through a
 * temporary file, so a reader never sees half of it) and copies of the output to the
 * description's stdout/stderr files. A missing working directory or program is written to the
 * exit file as `error: ...` instead.
 */
export function batchScript(description: JobDescription, env: Record<string, string>, files: JobFiles, cwd: string): string {
  const lines = ['#!/bin/sh'];
  for (const argument of description.schedulerArguments ?? []) lines.push(`#SBATCH ${argument}`);
  const exit = (printf: string): string => `${printf} > ${shellQuote(`${files.exit}.tmp`)} && mv ${shellQuote(`${files.exit}.tmp`)} ${shellQuote(files.exit)}`;
  // A job that cannot start records why in its exit file ("error: ..."), not an exit code.
  lines.push(`fail() { ${exit(`printf 'error: %s (on %s)\\n' "$1" "$(hostname)"`)}; exit 127; }`);
  const program = description.executable ?? '';
  lines.push(`cd ${shellQuote(cwd)} 2>/dev/null || fail ${shellQuote(`cannot start "${program}": working directory ${cwd}: ENOENT (no such directory)`)}`);
  for (const [key, value] of Object.entries(env)) lines.push(`export ${key}=${shellQuote(value)}`);
  lines.push(`command -v ${shellQuote(program)} >/dev/null 2>&1 || fail ${shellQuote(`cannot start "${program}": ENOENT (not found)`)}`);
  const command = [description.executable ?? '', ...(description.arguments ?? [])].map(shellQuote).join(' ');
  lines.push(`${command} < ${description.stdin !== undefined ? shellQuote(description.stdin) : '/dev/null'}`);
  lines.push('code=$?');
  lines.push(exit(`printf '%s\\n' "$code"`));
  if (description.stdout !== undefined) lines.push(`cat ${shellQuote(files.stdout)} > ${shellQuote(description.stdout)}`);
  if (description.stderr !== undefined) lines.push(`cat ${shellQuote(files.stderr)} > ${shellQuote(description.stderr)}`);
  lines.push('exit $code', '');
  return lines.join('\n');
}

/** Environment variable names a shell can export. */
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Where a Slurm job stands, as jobwire sees it. */
export type SlurmPhase = 'queued' | 'running' | 'ended';

const QUEUED = new Set(['PENDING', 'REQUEUED', 'REQUEUE_HOLD', 'REQUEUE_FED', 'RESV_DEL_HOLD', 'SPECIAL_EXIT']);
const RUNNING = new Set(['CONFIGURING', 'RUNNING', 'COMPLETING', 'SUSPENDED', 'STOPPED', 'SIGNALING', 'STAGE_OUT', 'RESIZING']);

/** PENDING (and held states) → queued; CONFIGURING, RUNNING, COMPLETING (and the like) → running; anything else has ended. */
export function phaseOf(state: string): SlurmPhase {
  if (QUEUED.has(state)) return 'queued';
  if (RUNNING.has(state)) return 'running';
  return 'ended';
}

/** One job as `squeue` or `scontrol` reports it. */
export interface SlurmJobState {
  state: string;
  reason: string;
  /** `scontrol`'s ExitCode (code:signal), when known. */
  exitCode?: number;
  exitSignal?: number;
  /**
   * The job's comment (`jobwire:ID` for a jobwire job; `(null)` or '' for none), when the
   * answer tells it; undefined when it does not (sacct without `job_comment` accounting).
   */
  comment?: string;
}

/** The comment jobwire gives the Slurm job of jobwire job `jobId` (`--comment`). */
export function commentOf(jobId: string): string {
  return `jobwire:${jobId}`;
}

/** Parses `squeue` lines made with {@link SQUEUE_FORMAT}: Slurm job id → state (and comment, when the line has one). */
export function parseSqueue(text: string): Map<string, SlurmJobState> {
  const jobs = new Map<string, SlurmJobState>();
  for (const line of text.split('\n')) {
    // A reason never holds the separator; a comment (anyone's) may: it is the rest of the line.
    const [id, state, reason = '', ...comment] = line.trim().split(SEP);
    if (id && state) jobs.set(id, { state: baseState(state), reason, ...(comment.length > 0 ? { comment: comment.join(SEP) } : {}) });
  }
  return jobs;
}

/** The comment of `scontrol --oneliner show job` output: '' when the job has none (scontrol then prints no `Comment=`). */
export function scontrolComment(text: string): string {
  return /\bComment=(\S*)/.exec(text)?.[1] ?? '';
}

/** Parses one job of `scontrol --oneliner show job ID`; undefined when it names no state. */
export function parseScontrolJob(text: string): SlurmJobState | undefined {
  const state = /\bJobState=(\S+)/.exec(text)?.[1];
  if (state === undefined) return undefined;
  const parsed: SlurmJobState = { state: baseState(state), reason: /\bReason=(\S+)/.exec(text)?.[1] ?? 'None' };
  const exit = /\bExitCode=(\d+):(\d+)/.exec(text);
  if (exit) {
    parsed.exitCode = Number(exit[1]);
    parsed.exitSignal = Number(exit[2]);
  }
  return parsed;
}

/** `CANCELLED by 0` → `CANCELLED`; `COMPLETING+` style flags dropped. */
function baseState(state: string): string {
  return state.split(/[\s+]/)[0]!.toUpperCase();
}

/** A partition from `sinfo`. */
export interface Partition {
  name: string;
  /** The cluster's default partition (`sinfo` marks it with `*`). */
  isDefault: boolean;
  /** `up`, `down`, `drain` or `inact`. */
  avail: string;
}

/** Parses `sinfo` lines made with {@link SINFO_FORMAT}; a partition listed twice counts once. */
export function parseSinfo(text: string): Partition[] {
  const partitions = new Map<string, Partition>();
  for (const line of text.split('\n')) {
    const [raw, avail = ''] = line.trim().split(SEP);
    if (!raw) continue;
    const name = raw.replace(/\*$/, '');
    partitions.set(name, { name, isDefault: raw.endsWith('*'), avail });
  }
  return [...partitions.values()];
}

/** Signal names by number, for Slurm's `ExitCode=0:15`. */
const SIGNALS: Record<number, string> = { 1: 'SIGHUP', 2: 'SIGINT', 6: 'SIGABRT', 9: 'SIGKILL', 11: 'SIGSEGV', 15: 'SIGTERM' };

/** How the job of a Slurm state ended, as a process result. */
export interface EndFacts {
  slurmId: string;
  state: SlurmJobState;
  /** The exit code the batch script recorded, when its exit file was found. */
  recordedExit: number | undefined;
  /** True when jobwire itself cancelled the job (terminate). */
  terminated: boolean;
}

/**
 * The result of an ended Slurm job. COMPLETED → exit code 0 (or the recorded one); FAILED → the
 * exit code; CANCELLED → killed by SIGTERM (an error naming Slurm's reason when jobwire did not
 * cancel it); TIMEOUT, NODE_FAIL, PREEMPTED, BOOT_FAIL, OUT_OF_MEMORY and every other end →
 * an error naming the state and Slurm's reason.
 */
export function endResult(facts: EndFacts): ProcessResult {
  const { state, recordedExit, slurmId } = facts;
  // Stopped by jobwire: TERM reached the script (FAILED 0:15) or Slurm cancelled it.
  if (facts.terminated && state.state !== 'COMPLETED' && recordedExit === undefined) return { exitCode: null, signal: 'SIGTERM' };
  const reason = state.reason && state.reason !== 'None' ? `, reason ${state.reason}` : '';
  switch (state.state) {
    case 'COMPLETED':
      return { exitCode: recordedExit ?? state.exitCode ?? 0, signal: null };
    case 'FAILED': {
      if (recordedExit !== undefined) return { exitCode: recordedExit, signal: null };
      if (state.exitSignal) return { exitCode: null, signal: SIGNALS[state.exitSignal] ?? `SIG${state.exitSignal}` };
      if (state.exitCode) return { exitCode: state.exitCode, signal: null };
      return { exitCode: null, signal: null, error: `Slurm job ${slurmId} FAILED${reason}` };
    }
    case 'CANCELLED':
      if (facts.terminated) return { exitCode: null, signal: 'SIGTERM' };
      // Not by jobwire: an operator's scancel (or Slurm's own). The job ends Cancelled, saying so.
      return { exitCode: null, signal: 'SIGTERM', cancelled: `Slurm job ${slurmId} was CANCELLED in Slurm, not by jobwire${reason}` };
    default:
      return { exitCode: null, signal: null, error: `Slurm job ${slurmId} ended ${state.state}${reason}` };
  }
}
