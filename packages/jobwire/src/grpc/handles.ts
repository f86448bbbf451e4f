/**
 * Scheduler and file system handles of Xenon clients. A handle is a small record in this
 * server's memory (like xenon-grpc's); the jobs and files behind it live in the store and on
 * disk, so a client that lost its handles (say, after a server restart) creates new ones and
 * finds its jobs again. Each user holds at most {@link MAX_HANDLES} handles of each kind.
 * @module
 */
import { status as Status } from '@grpc/grpc-js';
import { XenonError } from './errors.js';
import type { CreateRequest } from './messages.js';
import type { SftpFiles } from './sftp.js';

/** Most handles of one kind a user may hold at once. */
export const MAX_HANDLES = 256;

/** What every handle has. */
export interface HandleBase {
  /** Handle id, as sent to the client. */
  id: string;
  /** jobwire user that created it. */
  owner: string;
  /** Adaptor name ("local", "file", "sftp", ...). */
  adaptor: string;
  /** Location given at creation. */
  location: string;
}

/** A scheduler handle. */
export interface SchedulerHandle extends HandleBase {
  kind: 'scheduler';
  /** For an `ssh` or `slurm` scheduler: the server's named executor its jobs run on. */
  executor?: string;
  /** The file system handle returned by getFileSystem, once asked for. */
  fileSystemId?: string;
  /** A scheduler with the caller's own credential: as getCredential shows it (no secret). */
  credential?: Record<string, unknown>;
  /** A scheduler with the caller's own credential: the sftp create request its getFileSystem makes (in memory only). */
  sftpRequest?: CreateRequest;
}

/** A file system handle. */
export interface FileSystemHandle extends HandleBase {
  kind: 'filesystem';
  /** Current working directory (absolute; for `file`, inside the user's file space). */
  cwd: string;
  /** For an `sftp` handle: the remote host's files. */
  sftp?: SftpFiles;
  /** For an `sftp` handle: the credential it was created with, as getCredential shows it (no secret). */
  credential?: Record<string, unknown>;
}

/** Handles of one kind, by id, each visible to its owner only. */
export class HandleTable<H extends HandleBase> {
  private readonly byId = new Map<string, H>();
  private seq = 0;

  constructor(private readonly what: string) {}

  /** A fresh id for a handle of `owner` on `adaptor` at `location`. */
  newId(adaptor: string, owner: string, location: string): string {
    return `${adaptor}://${owner}@${location}#${++this.seq}`;
  }

  /** Adds a handle; RESOURCE_EXHAUSTED when its owner holds too many. */
  add(handle: H): H {
    if (this.list(handle.owner).length >= MAX_HANDLES) {
      throw new XenonError('XenonException', handle.adaptor, `you hold ${MAX_HANDLES} open ${this.what}s; close some first`, { code: Status.RESOURCE_EXHAUSTED });
    }
    this.byId.set(handle.id, handle);
    return handle;
  }

  /** The handle `id` of `owner`, or undefined (another user's handle looks like none). */
  find(owner: string, id: string | undefined): H | undefined {
    const handle = id === undefined ? undefined : this.byId.get(id);
    return handle && handle.owner === owner ? handle : undefined;
  }

  /** Handles of `owner`, oldest first. */
  list(owner: string): H[] {
    return [...this.byId.values()].filter((h) => h.owner === owner);
  }

  /** Every handle, of every owner. */
  all(): H[] {
    return [...this.byId.values()];
  }

  /** Forgets a handle. */
  remove(handle: H): void {
    this.byId.delete(handle.id);
  }
}
