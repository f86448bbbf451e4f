/**
 * Sandboxes (gLite's InputSandbox and OutputSandbox) for every job: files uploaded before the
 * job (`POST /v1/uploads`) are placed in its working directory before it starts
 * (`inputFiles`: name → upload id), and the files matching its `outputFiles` patterns are kept
 * with it after it ends, in the store (`GET /v1/jobs/:id/files`). Both go through the store's
 * {@link FileBlobs}, so a worker on another machine fetches the inputs and returns the outputs
 * through Redis.
 * @module
 */
import { createHash } from 'node:crypto';
import { chmod, lstat, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { glob } from 'tinyglobby';
import type { JobDescription } from '@jobwire/client';
import type { OsAccount } from '../executors/local/os-account.js';
import type { FileBlobs } from '../store/types.js';

/** Largest upload, and largest output file kept. */
export const SANDBOX_FILE_LIMIT = 64 * 1024 * 1024;
/** Most output files kept per job (the first ones, by name, beyond are reported). */
export const OUTPUT_FILES_LIMIT = 1000;
/** The one file name inside an upload's folder. */
const UPLOAD_FILE = 'data';

/** The folder of upload `id` of `owner` (owners never see each other's uploads). */
export function uploadFolder(owner: string, id: string): string {
  return `upload/${createHash('sha256').update(owner).digest('hex').slice(0, 32)}/${id}`;
}

/** The folder of a job's kept output files. */
export function outputFolder(jobId: string): string {
  return `output/${jobId}`;
}

/** Stores an upload of `owner` from `chunks`; returns its size (payload_too_large past the limit). */
export function storeUpload(blobs: FileBlobs, owner: string, id: string, chunks: AsyncIterable<Uint8Array>, limit = SANDBOX_FILE_LIMIT): Promise<number> {
  return blobs.write(uploadFolder(owner, id), UPLOAD_FILE, chunks, limit);
}

/** The size of `owner`'s upload `id`, undefined when there is none. */
export async function uploadSize(blobs: FileBlobs, owner: string, id: string): Promise<number | undefined> {
  return (await blobs.list(uploadFolder(owner, id))).find((e) => e.name === UPLOAD_FILE)?.size;
}

/** True when the description asks for input or output files. */
export function hasSandbox(d: JobDescription): boolean {
  return Object.keys(d.inputFiles ?? {}).length > 0 || (d.outputFiles ?? []).length > 0;
}

/**
 * Places the job's input files in `cwd`, creating folders on the way; an input named as the
 * executable is made executable (as gLite did). Throws an Error saying what is wrong.
 */
export async function placeInputFiles(blobs: FileBlobs, owner: string, d: JobDescription, cwd: string, account: OsAccount | undefined): Promise<void> {
  if (!hasSandbox(d)) return;
  // Written by the server's account, they would belong to it: refused rather than chowned.
  if (account !== undefined) throw new Error(`input and output files are not supported for jobs run as another OS account (${account.name}) yet`);
  for (const [name, id] of Object.entries(d.inputFiles ?? {})) {
    const data = await blobs.read(uploadFolder(owner, id), UPLOAD_FILE);
    if (data === undefined) throw new Error(`input file ${name}: upload ${id} no longer exists`);
    const file = join(cwd, name);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, data);
    const executable = d.executable?.replace(/^\.\//, '');
    if (executable === name) await chmod(file, 0o755);
  }
}

/**
 * Keeps the files of `cwd` matching the job's `outputFiles` patterns (regular files only, never
 * through a link) with the job. Returns what went wrong — a pattern that matched nothing, a file
 * over the limit — or undefined.
 */
export async function keepOutputFiles(blobs: FileBlobs, jobId: string, d: JobDescription, cwd: string): Promise<string | undefined> {
  const patterns = d.outputFiles ?? [];
  if (patterns.length === 0) return undefined;
  const problems: string[] = [];
  const kept = new Set<string>();
  for (const pattern of patterns) {
    let found: string[];
    try {
      found = await glob(pattern, { cwd, onlyFiles: true, dot: true, followSymbolicLinks: false, expandDirectories: false });
    } catch (err) {
      problems.push(`output pattern ${JSON.stringify(pattern)}: ${(err as Error).message}`);
      continue;
    }
    const files: string[] = [];
    for (const name of found.sort()) {
      const file = join(cwd, name);
      if (relative(cwd, file).startsWith(`..${sep}`)) continue;
      if ((await lstat(file).catch(() => undefined))?.isFile()) files.push(name);
    }
    if (files.length === 0) {
      problems.push(`output pattern ${JSON.stringify(pattern)} matched no file in ${cwd}`);
      continue;
    }
    for (const name of files) {
      if (kept.has(name)) continue;
      if (kept.size >= OUTPUT_FILES_LIMIT) {
        problems.push(`more than ${OUTPUT_FILES_LIMIT} output files: ${name} and later ones not kept`);
        break;
      }
      try {
        await blobs.write(outputFolder(jobId), name, [await readFile(join(cwd, name))], SANDBOX_FILE_LIMIT);
        kept.add(name);
      } catch (err) {
        problems.push(`output file ${name} not kept: ${(err as Error).message}`);
      }
    }
  }
  return problems.length === 0 ? undefined : problems.join('; ');
}
