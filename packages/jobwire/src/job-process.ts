/**
 * The identity of a job's processes, as jobwire records it with the job: a data shape shared by
 * the executors that produce it (`executors/local/process-identity.ts`, which also checks it),
 * the stores that keep it, and the restart logic that stops orphans with it. It lives here, below
 * all three, so that no store depends on an executor.
 * @module
 */

/** One process, for ever: pid, start time and the boot they belong to. */
export interface ProcessIdentity {
  pid: number;
  /** Start time: field 22 of /proc/PID/stat, in clock ticks since boot. */
  startTicks: number;
  /** /proc/sys/kernel/random/boot_id of the boot the process ran in. */
  bootId: string;
}

/**
 * What a store keeps about the processes of a running job (server-side only, never in public
 * info): the leader of the job's process group and the process that ran the job for jobwire
 * (the server or worker), so that a job whose runner is still alive is never taken for an orphan.
 */
export interface JobProcess {
  /** The job's process-group leader. */
  leader: ProcessIdentity;
  /** The process that started the job and watches it. */
  runner: ProcessIdentity;
}
