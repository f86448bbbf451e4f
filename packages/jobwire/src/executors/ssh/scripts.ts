/**
 * The shell scripts the ssh executor runs on a host: POSIX `sh`, every value quoted, the
 * environment exported in the script (SSH environment requests are dropped by most servers).
 * Each job has a folder on the host, `~/.jobwire/jobs/<job id>`, holding what a later
 * connection (or a restarted server) needs to find it again.
 * @module
 */
import type { JobDescription } from '@jobwire/client';
import { shellQuote as q } from './connection.js';

/**
 * The job folder on the host, as a shell word: `<base>/<job id>`, where `base` undefined is
 * `~/.jobwire/jobs` (`$HOME` expanded there).
 */
export function folderWord(base: string | undefined, jobId: string): string {
  return `${base === undefined ? '"$HOME"/.jobwire/jobs' : q(base)}/${q(jobId)}`;
}

/** `export NAME='value'` lines for the job's environment. */
function exports(env: Record<string, string>): string {
  return Object.entries(env)
    .map(([name, value]) => `export ${name}=${q(value)}`)
    .join('\n');
}

/** `cd` to the job's working directory (home when none), or record why not and stop. */
function enterCwd(description: JobDescription, onFail: string): string {
  const cwd = description.workingDirectory;
  if (cwd === undefined) return '';
  return `cd ${q(cwd)} 2>/dev/null || ${onFail} ${q(`cannot start "${description.executable ?? ''}": working directory ${cwd}: ENOENT (no such directory on `)}"$(hostname))"`;
}

/** The program check every script makes, so a missing program is a start error, not exit 127. */
function checkProgram(description: JobDescription, onFail: string): string {
  return `command -v ${q(description.executable ?? '')} >/dev/null 2>&1 || ${onFail} ${q(`cannot start "${description.executable ?? ''}": ENOENT (not found on `)}"$(hostname))"`;
}

/** The program and its arguments, quoted. */
function commandWords(description: JobDescription): string {
  return [description.executable ?? '', ...(description.arguments ?? [])].map(q).join(' ');
}

/**
 * A pause in {@link batchStartScript}, for tests only: the script appends a line to
 * `<file>.reached` at point `at`, then waits while `file` exists on the host. `claimed`: after
 * the job folder is made, before the wrapper is started; `started`: after the job started,
 * before its pids are printed.
 */
export interface StartGate {
  file: string;
  at: 'claimed' | 'started';
}

/**
 * Starts a batch job detached, and is safe to run again for the same job (after a dropped
 * connection, or by a restarted server): whichever run it is, the job starts at most once and
 * every run prints the same three lines — the folder, the wrapper's pid and the job's pid (0 when
 * the job could not start). The folder comes first, before anything is started: a run whose
 * connection has dropped (its shell may outlive it) dies there of SIGPIPE.
 *
 * Each run starts a wrapper in its own session (`setsid -f`, surviving the connection) and reads
 * what it prints. The wrapper's first step is the claim: it creates `claim` with `set -C` (an
 * exclusive create); a wrapper that finds it made prints nothing and exits, so two runs racing
 * (the first one's shell outlives its dropped connection) still start one copy, and the run then
 * waits for the claiming wrapper's `ids`. The claiming wrapper records its pid in `wrapper`, runs
 * the job in another session (so TERM to the job's group spares the wrapper), writes `ids` (its
 * pid and the job's), prints them (ignoring a dropped connection), waits for the job and writes
 * its exit code to `exit` (or a start error to `error`). The job's output goes to `out` and
 * `err`. A run exits 91 when the claiming wrapper ended without writing `ids`.
 */
export function batchStartScript(base: string | undefined, jobId: string, description: JobDescription, env: Record<string, string>, gate?: StartGate): string {
  const fail = 'fail';
  const stdin = description.stdin !== undefined ? q(description.stdin) : '/dev/null';
  const copies = [
    description.stdout !== undefined ? `cp -- "$F/out" ${q(description.stdout)}` : '',
    description.stderr !== undefined ? `cp -- "$F/err" ${q(description.stderr)}` : '',
  ].filter(Boolean).join('\n');
  const wrapper = [
    'F=$1',
    // The claim: one wrapper per job, however many starts ran (`true`: a failed redirection does not end the shell).
    'set -C',
    '{ true > "$F/claim"; } 2>/dev/null || exit 0',
    'set +C',
    'echo $$ > "$F/wrapper"',
    ': > "$F/out" && : > "$F/err" || exit 0',
    // One short write: a reader sees the file empty or whole.
    `ids() { printf '%s\\n%s\\n' $$ "$1" > "$F/ids"; trap '' PIPE; printf '%s\\n%s\\n' $$ "$1"; exec >/dev/null; }`,
    `finish() { echo "$1" > "$F/exit.tmp" && mv "$F/exit.tmp" "$F/exit"; exit 0; }`,
    `fail() { printf '%s\\n' "$1" > "$F/error"; ids 0; finish 127; }`,
    enterCwd(description, fail),
    exports(env),
    checkProgram(description, fail),
    description.stdin !== undefined ? `[ -r ${stdin} ] || fail ${q(`cannot start "${description.executable ?? ''}": stdin file ${description.stdin}: ENOENT (unreadable)`)}` : '',
    `setsid ${commandWords(description)} < ${stdin} >> "$F/out" 2>> "$F/err" &`,
    'echo $! > "$F/pid"',
    'ids $!',
    'wait $!',
    'code=$?',
    copies,
    'finish $code',
  ].filter(Boolean).join('\n');
  const pause = (at: StartGate['at']): string =>
    gate?.at === at ? `echo "$$" >> ${q(`${gate.file}.reached`)}; while [ -e ${q(gate.file)} ]; do sleep 0.05; done` : '';
  return [
    `F=${folderWord(base, jobId)}`,
    'mkdir -p "$F" || exit 90',
    pause('claimed'),
    // The folder, first: a run whose connection dropped dies here of SIGPIPE instead of going on.
    `printf '%s\\n' "$F" || exit 92`,
    // The claiming wrapper prints its pids and lets go of the pipe; a losing one prints nothing.
    `x=$(setsid -f sh -c ${q(wrapper)} jobwire-job "$F" </dev/null 2>/dev/null) || exit 90`,
    'if [ -z "$x" ]; then',
    // Another run's wrapper claimed the job: wait for its `ids` (2 ms first, then up to every 50 ms).
    '  n=0; d=0.002; W=',
    '  while [ ! -s "$F/ids" ]; do',
    '    [ -n "$W" ] || W=$(cat "$F/wrapper" 2>/dev/null)',
    '    if [ -n "$W" ]; then kill -0 "$W" 2>/dev/null || [ -s "$F/ids" ] || { echo "the job wrapper (pid $W) ended before the job started" >&2; exit 91; }',
    '    else n=$((n+1)); [ $n -lt 1200 ] || { echo "no wrapper took the job in $F" >&2; exit 91; }; fi',
    '    sleep $d',
    '    case $d in 0.002) d=0.005;; 0.005) d=0.01;; 0.01) d=0.02;; *) d=0.05;; esac',
    '  done',
    '  x=$(cat "$F/ids")',
    'fi',
    pause('started'),
    `printf '%s\\n' "$x"`,
  ].filter(Boolean).join('\n');
}

/**
 * Follows a batch job's output from byte offsets `out` and `err`: `out` on the channel's stdout,
 * `err` on its stderr, until the wrapper (pid `wrapper`) has ended and both are read to their
 * end. Then, to save a session, it exits with the job's exit code and removes the folder —
 * unless that code is one of its own ({@link FOLLOW_COLLECT} and the two below), the job could
 * not start, or no exit code was written: it then exits {@link FOLLOW_COLLECT} and leaves the
 * folder for {@link collectScript}. Exits 3 when the folder is gone, 4 when `tail` failed.
 */
export function followScript(folder: string, offsets: { out: number; err: number }, wrapper: number): string {
  const file = (name: string): string => `${q(folder)}/${name}`;
  return [
    `[ -e ${file('out')} ] || exit 3`,
    // A wrapper already gone (or a pid reused since) is not waited for.
    `if [ -e ${file('exit')} ]; then f=''; else f='-f --pid=${wrapper}'; fi`,
    `tail -c +${offsets.out + 1} -s 0.05 $f ${file('out')} & a=$!`,
    `tail -c +${offsets.err + 1} -s 0.05 $f ${file('err')} >&2 & b=$!`,
    'wait $a; ra=$?; wait $b; rb=$?',
    '[ $ra -eq 0 ] && [ $rb -eq 0 ] || exit 4',
    `[ -e ${file('exit')} ] && [ ! -e ${file('error')} ] || exit ${FOLLOW_COLLECT}`,
    `c=$(cat ${file('exit')})`,
    `case "$c" in 3|4|${FOLLOW_COLLECT}|'') exit ${FOLLOW_COLLECT};; esac`,
    `rm -rf -- ${q(folder)}`,
    'exit "$c"',
  ].join('\n');
}

/** The exit status with which {@link followScript} asks for {@link collectScript}. */
export const FOLLOW_COLLECT = 254;

/** Prints a finished batch job's exit code and start error (if any), then removes its folder. */
export function collectScript(folder: string): string {
  return `F=${q(folder)}; [ -e "$F/exit" ] || exit 3; cat "$F/exit"; cat "$F/error" 2>/dev/null; rm -rf -- "$F"`;
}

/**
 * Stops the job's process group: TERM, then KILL after `graceMs` unless it has ended. Detached,
 * so it completes even if the connection drops. `folderWord` is a shell word (quoted).
 */
export function terminateScript(folderWord: string, graceMs: number): string {
  const inner = [
    `F=${folderWord}`,
    'P=$(cat "$F/pid" 2>/dev/null) || exit 0',
    '[ "$P" -gt 0 ] 2>/dev/null || exit 0',
    'kill -TERM -"$P" 2>/dev/null || exit 0',
    `sleep ${(graceMs / 1000).toFixed(3)}`,
    '[ -e "$F/exit" ] || [ ! -e "$F/pid" ] || kill -KILL -"$P" 2>/dev/null',
    'exit 0',
  ].join('\n');
  return `setsid sh -c ${q(inner)} </dev/null >/dev/null 2>&1 &`;
}

/**
 * Runs an interactive or tty job on the exec channel itself: the shell records its pid (it is the
 * session and group leader sshd made) and execs the program. A start error goes to `error` and
 * the script exits 127.
 */
export function interactiveScript(base: string | undefined, jobId: string, description: JobDescription, env: Record<string, string>): string {
  const fail = 'fail';
  const script = [
    'F=$1',
    `fail() { printf '%s\\n' "$1" > "$F/error"; exit 127; }`,
    'mkdir -p "$F" && echo $$ > "$F/pid" || exit 90',
    enterCwd(description, fail),
    exports(env),
    checkProgram(description, fail),
    `exec ${commandWords(description)}`,
  ].filter(Boolean).join('\n');
  return `exec sh -c ${q(script)} jobwire-job ${folderWord(base, jobId)}`;
}

/** Wraps a script for the login shell: `exec sh -c SCRIPT`. */
export function viaSh(script: string): string {
  return `exec sh -c ${q(script)}`;
}
