/**
 * Where a job starts when its description names no working directory but says where it was
 * submitted from (`submitDirectory`, sent by the CLI as `srun` and `sbatch` do): there, when that
 * directory exists on the machine that runs the job; else in the default directory, with a first
 * line on the job's stderr saying so — Slurm's behaviour ("couldn't chdir to …, going to /tmp").
 * @module
 */
import { statSync } from 'node:fs';
import type { JobDescription } from '@jobwire/client';

/** The description a job starts with, and the notice its stderr opens with, if any. */
export interface StartDirectory {
  description: JobDescription;
  /** A line (with its newline) for the job's stderr, written before anything of the job's. */
  notice?: string;
}

/** True when `dir` is a directory this process can see. */
function isDirectory(dir: string): boolean {
  try {
    return statSync(dir).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Chooses the start directory of a job run on `node` whose default directory is `defaultCwd`.
 * A description with a `workingDirectory`, or without a `submitDirectory`, is returned as it is.
 */
export function startDirectory(description: JobDescription, defaultCwd: string, node: string): StartDirectory {
  const submitted = description.submitDirectory;
  if (description.workingDirectory !== undefined || submitted === undefined) return { description };
  if (isDirectory(submitted)) return { description: { ...description, workingDirectory: submitted } };
  return {
    description,
    notice: `jobwire: the directory the job was submitted from, ${submitted}, does not exist on ${node}; the job starts in ${defaultCwd} instead\n`,
  };
}
