/**
 * Where jobs that name no working directory start: a folder beside the jobwire home, never in
 * it. The home holds the token book and every job's output; a job started one folder below it
 * could read them (`cat ../tokens.json`) whenever it runs as the server's OS user.
 * @module
 */
import { realpathSync } from 'node:fs';
import { isAbsolute, relative, resolve, sep } from 'node:path';

/** The default work folder of a home: `<home>-work` (`~/.local/share/jobwire-work` for the default home). */
export function defaultWorkDir(home: string): string {
  return `${resolve(home)}-work`;
}

/**
 * Throws a RangeError when `workDir` is the home or lies inside it (symbolic links resolved as
 * far as the paths exist).
 */
export function checkWorkDir(workDir: string, home: string): void {
  const real = (p: string): string => {
    const full = resolve(p);
    try {
      return realpathSync(full);
    } catch {
      return full;
    }
  };
  const rel = relative(real(home), real(workDir));
  if (rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel))) {
    throw new RangeError(`work folder ${workDir} lies inside the jobwire home ${home}: jobs started there could read its tokens and every job's output; pick a folder outside it`);
  }
}
