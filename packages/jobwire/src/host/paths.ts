/**
 * Where a job host keeps its things in a jobwire home.
 * @module
 */
import { join, resolve } from 'node:path';

/** The files and folders of the job host of one home. */
export interface HostPaths {
  /** The home itself, absolute. */
  home: string;
  /** Unix socket clients connect to (0600). */
  socket: string;
  /** `host.json`: the running host's {@link HostInfo}, removed when it exits cleanly. */
  info: string;
  /** The host's own log (its stdout and stderr). */
  log: string;
  /** One file per job the host holds, for recovery after the host died (see journal.ts). */
  journal: string;
  /** Job output folders, one per job (the embedded stream log's folder). */
  output: string;
}

/** The {@link HostPaths} of `home`. */
export function hostPaths(home: string): HostPaths {
  const root = resolve(home);
  return {
    home: root,
    socket: join(root, 'host.sock'),
    info: join(root, 'host.json'),
    log: join(root, 'host.log'),
    journal: join(root, 'host-jobs'),
    output: join(root, 'output'),
  };
}
