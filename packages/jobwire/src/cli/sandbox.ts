/**
 * The CLI's side of sandboxes: `--input FILE` (and a JDL file's InputSandbox) uploads each file
 * before the job is submitted and names it in the description's `inputFiles`; `jobwire output`
 * writes the files a job kept into a folder.
 * @module
 */
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import type { JobDescription, JobwireApi } from '@jobwire/client';
import { UsageError } from './errors.js';

/** Checks that every input file exists and that no two share a name in the job's directory; returns name → local path. */
export function inputFileNames(files: readonly string[], cwd: string = process.cwd(), what = '--input'): Map<string, string> {
  const names = new Map<string, string>();
  for (const file of files) {
    const full = resolve(cwd, file);
    if (!existsSync(full) || !statSync(full).isFile()) throw new UsageError(`${what} ${file}: no such file (looked for ${full})`);
    const name = basename(full);
    if (names.has(name)) throw new UsageError(`${what}: two input files are named ${name} (${names.get(name)} and ${full}); the job's directory holds one`);
    names.set(name, full);
  }
  return names;
}

/** Uploads the input files and names them in `d.inputFiles`. */
export async function uploadInputFiles(api: JobwireApi, d: JobDescription, files: Map<string, string>): Promise<void> {
  if (files.size === 0) return;
  const inputs: Record<string, string> = { ...d.inputFiles };
  for (const [name, full] of files) inputs[name] = (await api.upload(readFileSync(full))).id;
  d.inputFiles = inputs;
}

/** Writes the files job `id` kept into `dir` (created); returns the paths written. */
export async function fetchOutputFiles(api: JobwireApi, id: string, dir: string): Promise<string[]> {
  const files = await api.getOutputFiles(id);
  const written: string[] = [];
  for (const file of files) {
    const target = resolve(dir, file.name);
    const rel = relative(resolve(dir), target);
    // The server keeps relative names only; a name that would leave the folder is skipped.
    if (rel === '' || rel.startsWith(`..${sep}`) || rel === '..') continue;
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, await api.readOutputFile(id, file.name));
    written.push(join(dir, file.name));
  }
  return written;
}
