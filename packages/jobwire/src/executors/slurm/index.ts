/**
 * The Slurm executor: jobs on a Slurm cluster through its commands (`sbatch`, `squeue`,
 * `scontrol`, `scancel`, `sinfo`, `srun`), run on a submit host — this machine, or a login
 * node reached another way.
 * @module
 */
export { slurmExecutor, SlurmExecutor, SlurmCommandError, type SlurmExecutorOptions, type SlurmJobRecord } from './slurm-executor.js';
export { LocalSubmitHost, type LocalSubmitHostOptions, type SubmitHost, type CommandResult, type HostCommand } from './submit-host.js';
export { SshSubmitHost } from './ssh-submit-host.js';
