/**
 * Xenon's FileSystemService for the `file` adaptor: the server's local file system, confined to
 * the caller's file space (see file-space.ts and docs/grpc.md). Errors carry the Xenon kinds a
 * client expects: NoSuchPathException, PathAlreadyExistsException, InvalidPathException,
 * DirectoryNotEmptyException, and PERMISSION_DENIED for a path outside the file space.
 * Streams respect flow control: reading and listing wait for the call to drain, and writing
 * reads the next request only once the previous one is on disk.
 * @module
 */
import { constants } from 'node:fs';
import { lstat, mkdir, open, opendir, readlink, rename, rm, rmdir, stat, symlink, chmod, unlink } from 'node:fs/promises';
import { posix } from 'node:path';
import { status as Status, type ServerReadableStream, type ServerWritableStream, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { WhoAmI } from '@jobwire/client';
import { modeOf, pathAttributes } from './attributes.js';
import { copyStatus, CopyOperations, type CopyOperation } from './copy.js';
import { fromFsError, XenonError } from './errors.js';
import { pathText, type FileSpace } from './file-space.js';
import { HandleTable, type FileSystemHandle } from './handles.js';
import type {
  CopyOperationRequest,
  CopyRequest,
  CreateRequest,
  CreateSymbolicLinkRequest,
  DeleteRequest,
  Empty,
  FileSystemAdaptorDescription,
  Handle,
  ListRequest,
  PathAttributes,
  PathRequest,
  ReadFromFileResponse,
  RenameRequest,
  SetPosixFilePermissionsRequest,
  WaitUntilDoneRequest,
  WriteToFileRequest,
  XenonCopyStatus,
  XenonPath,
} from './messages.js';
import { drained, type CallContext, type Rpc } from './rpc.js';

/** The adaptor name. */
const FILE = 'file';
/** Xenon file adaptor names jobwire does not serve: refused by name, clearly. */
const KNOWN_XENON_ADAPTORS = ['sftp', 'ftp', 'webdav', 's3', 'hdfs'];
/** Bytes per readFromFile message. */
const READ_CHUNK = 64 * 1024;

const DESCRIPTION: FileSystemAdaptorDescription = {
  name: FILE,
  description:
    "The jobwire server's local file system, confined to the caller's file space (<work folder>/<user>/, beside the jobwire home), which is also the working directory of the caller's gRPC jobs.",
  supported_locations: ['(empty)', '/', 'a folder inside your file space'],
  supported_properties: [],
  supports_third_party_copy: false,
  can_create_symboliclinks: true,
  can_read_symboliclinks: true,
  is_connectionless: true,
  supported_credentials: ['DefaultCredential'],
  supports_reading_posix_permissions: true,
  supports_setting_posix_permissions: true,
  supports_rename: true,
  can_append: true,
  needs_size_beforehand: false,
};

/** The FileSystemService, plus what the scheduler service needs of it. */
export interface FileSystemServiceParts {
  implementation: UntypedServiceImplementation;
  /** Opens a handle on `owner`'s file space (Scheduler.getFileSystem). */
  open(owner: string): Handle;
  /** Closes a handle, cancelling its copies. */
  close(owner: string, id: string): void;
  /** Cancels every copy (server shutdown). */
  shutdown(): Promise<void>;
}

/** Runs a file system call, turning Node errors about `path` into Xenon ones. */
async function onDisk<T>(path: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw err instanceof XenonError ? err : fromFsError(err, path);
  }
}

/** Builds the FileSystemService implementation. */
export function fileSystemService(rpc: Rpc, space: FileSpace): FileSystemServiceParts {
  const handles = new HandleTable<FileSystemHandle>('file system');
  const copies = new CopyOperations();

  const openHandle = (owner: string, location: string, cwd: string): Handle => {
    const id = handles.newId(FILE, owner, location || '/');
    handles.add({ kind: 'filesystem', id, owner, adaptor: FILE, location, cwd });
    return { id };
  };

  const fileSystem = (who: WhoAmI, handle: Handle | null | undefined): FileSystemHandle => {
    const found = handles.find(who.user, handle?.id);
    if (!found) {
      throw new XenonError('FileSystemClosedException', FILE, `no file system ${JSON.stringify(handle?.id ?? '')}: create one first (handles are forgotten when closed or when the server restarts)`, {
        code: Status.NOT_FOUND,
      });
    }
    return found;
  };

  /** The absolute, checked path a request names. */
  const at = async (who: WhoAmI, fs: FileSystemHandle, path: XenonPath | null | undefined, follow: boolean): Promise<string> => {
    const text = pathText(path);
    return onDisk(text, () => space.resolve(who.user, fs.cwd, text, { follow }));
  };

  const notRoot = (who: WhoAmI, p: string, what: string): void => {
    if (p === space.root(who.user)) throw new XenonError('InvalidPathException', FILE, `${p}: the root of your file space cannot be ${what}`);
  };

  const copyOf = (who: WhoAmI, request: CopyOperationRequest): CopyOperation => {
    fileSystem(who, request.filesystem);
    const op = copies.find(who.user, request.copy_operation?.id);
    if (!op) throw new XenonError('NoSuchCopyException', FILE, `no copy operation ${JSON.stringify(request.copy_operation?.id ?? '')}`);
    return op;
  };

  const checkAdaptor = (name: string): void => {
    if (name === FILE) return;
    const known = KNOWN_XENON_ADAPTORS.includes(name) ? ' is not available on this jobwire server' : ' is unknown';
    throw new XenonError('UnknownAdaptorException', name || '(none)', `the file system adaptor "${name}"${known}; this server offers: ${FILE}`);
  };

  const create = async (who: WhoAmI, request: CreateRequest): Promise<Handle> => {
    checkAdaptor(request.adaptor);
    if (request.credential !== undefined && request.credential !== 'default_credential') {
      throw new XenonError('InvalidCredentialException', FILE, `the file adaptor takes no ${request.credential.replace('_', ' ')}; callers authenticate to jobwire with a bearer token`);
    }
    const props = Object.keys(request.properties);
    if (props.length > 0) throw new XenonError('UnknownPropertyException', FILE, `unknown propert${props.length > 1 ? 'ies' : 'y'} ${props.join(', ')}`);
    const root = space.root(who.user);
    let location = request.location.replace(/^file:\/\//, '');
    if (location === '' || location === '/') return openHandle(who.user, request.location, root);
    if (!location.startsWith('/')) throw new XenonError('InvalidLocationException', FILE, `location ${JSON.stringify(request.location)}: give an absolute folder (or nothing)`);
    location = await onDisk(location, () => space.resolve(who.user, root, location, { follow: true }));
    const st = await onDisk(location, () => stat(location));
    if (!st.isDirectory()) throw new XenonError('InvalidLocationException', FILE, `location ${location}: not a directory`);
    return openHandle(who.user, request.location, location);
  };

  /** Writes `messages` to a server stream, waiting for 'drain' whenever the call is full. */
  const writeAll = async <T>(call: ServerWritableStream<unknown, T>, ctx: CallContext, message: T): Promise<void> => {
    if (!call.write(message)) await drained(call, ctx.signal);
  };

  /** Reads a client stream request by request; `apply` handles one before the next is read. */
  const eachRequest = <T>(call: ServerReadableStream<T, unknown>, ctx: CallContext, apply: (request: T) => Promise<void>): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      let chain = Promise.resolve();
      let failed = false;
      const stop = (err: unknown): void => {
        if (failed) return;
        failed = true;
        call.off('data', onData);
        reject(err);
      };
      const onData = (request: T): void => {
        call.pause();
        chain = chain.then(() => apply(request)).then(
          () => {
            if (!failed) call.resume();
          },
          stop,
        );
      };
      call.on('data', onData);
      call.once('end', () => {
        chain.then(() => {
          if (!failed) resolve();
        }, stop);
      });
      ctx.signal.addEventListener('abort', () => stop(new XenonError('XenonException', FILE, 'the call was cancelled', { code: Status.CANCELLED })), { once: true });
    });

  /** writeToFile and appendToFile: the first request opens, every request writes. */
  const streamToFile = (append: boolean) =>
    rpc.clientStream<WriteToFileRequest, Empty>(FILE, async (call, ctx) => {
      let file: Awaited<ReturnType<typeof open>> | undefined;
      let path = '';
      try {
        await eachRequest(call, ctx, async (request) => {
          if (!file) {
            const fs = fileSystem(ctx.who, request.filesystem);
            path = await at(ctx.who, fs, request.path, true);
            const target = path;
            // Xenon's writeToFile creates a new file; appendToFile needs an existing regular file.
            file = await onDisk(target, async () => {
              if (append && !(await stat(target)).isFile()) throw new XenonError('InvalidPathException', FILE, `${target}: not a regular file`);
              return open(target, append ? constants.O_WRONLY | constants.O_APPEND : 'wx', 0o644);
            });
          }
          const handle = file;
          if (request.buffer.byteLength > 0) await onDisk(path, () => handle.write(request.buffer).then(() => undefined));
        });
        if (!file) throw new XenonError('InvalidPathException', FILE, `${append ? 'appendToFile' : 'writeToFile'}: the first request names the file system and the path`, { code: Status.INVALID_ARGUMENT });
        return {};
      } finally {
        await (file as { close(): Promise<void> } | undefined)?.close().catch(() => undefined);
      }
    });

  /** Lists `dir` (and below, when recursive) without following links. */
  const listInto = async (call: ServerWritableStream<ListRequest, PathAttributes>, ctx: CallContext, dir: string, recursive: boolean): Promise<void> => {
    const entries = await onDisk(dir, () => opendir(dir));
    for await (const entry of entries) {
      if (ctx.signal.aborted) return;
      const child = posix.join(dir, entry.name);
      const st = await lstat(child).catch(() => undefined);
      if (!st) continue; // removed meanwhile
      await writeAll(call, ctx, await pathAttributes(child, st));
      if (recursive && st.isDirectory()) await listInto(call, ctx, child, true);
    }
  };

  const f = FILE;
  const implementation: UntypedServiceImplementation = {
    getAdaptorDescriptions: rpc.unary<Empty, unknown>(f, async () => ({ descriptions: [DESCRIPTION] })),
    getAdaptorNames: rpc.unary<Empty, unknown>(f, async () => ({ name: [FILE] })),
    getAdaptorDescription: rpc.unary<{ name: string }, FileSystemAdaptorDescription>(f, async (request) => {
      checkAdaptor(request.name);
      return DESCRIPTION;
    }),
    create: rpc.unary<CreateRequest, Handle>(f, async (request, { who }) => create(who, request)),
    localFileSystems: rpc.unary<Empty, unknown>(f, async (_request, { who }) => ({ filesystems: [openHandle(who.user, '/', space.root(who.user))] })),
    listFileSystems: rpc.unary<Empty, unknown>(f, async (_request, { who }) => ({ filesystems: handles.list(who.user).map((h) => ({ id: h.id })) })),
    close: rpc.unary<Handle, Empty>(f, async (request, { who }) => {
      const fs = fileSystem(who, request);
      copies.cancelAllOf(fs.id);
      handles.remove(fs);
      return {};
    }),
    isOpen: rpc.unary<Handle, unknown>(f, async (request, { who }) => {
      fileSystem(who, request);
      return { value: true };
    }),
    getAdaptorName: rpc.unary<Handle, unknown>(f, async (request, { who }) => ({ name: fileSystem(who, request).adaptor })),
    getLocation: rpc.unary<Handle, unknown>(f, async (request, { who }) => ({ location: fileSystem(who, request).location })),
    getCredential: rpc.unary<Handle, unknown>(f, async (request, { who }) => {
      fileSystem(who, request);
      return { default_credential: { username: who.user } };
    }),
    getProperties: rpc.unary<Handle, unknown>(f, async (request, { who }) => {
      fileSystem(who, request);
      return { properties: {} };
    }),
    getPathSeparator: rpc.unary<Handle, unknown>(f, async (request, { who }) => {
      fileSystem(who, request);
      return { separator: '/' };
    }),
    getWorkingDirectory: rpc.unary<Handle, XenonPath>(f, async (request, { who }) => ({ path: fileSystem(who, request).cwd, separator: '/' })),
    setWorkingDirectory: rpc.unary<PathRequest, Empty>(f, async (request, { who }) => {
      const fs = fileSystem(who, request.filesystem);
      const p = await at(who, fs, request.path, true);
      const st = await onDisk(p, () => stat(p));
      if (!st.isDirectory()) throw new XenonError('InvalidPathException', FILE, `${p}: not a directory`);
      fs.cwd = p;
      return {};
    }),
    exists: rpc.unary<PathRequest, unknown>(f, async (request, { who }) => {
      const p = await at(who, fileSystem(who, request.filesystem), request.path, true);
      try {
        await stat(p);
        return { value: true };
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') return { value: false };
        throw fromFsError(err, p);
      }
    }),
    createDirectory: rpc.unary<PathRequest, Empty>(f, async (request, { who }) => {
      const p = await at(who, fileSystem(who, request.filesystem), request.path, false);
      await onDisk(p, () => mkdir(p));
      return {};
    }),
    createDirectories: rpc.unary<PathRequest, Empty>(f, async (request, { who }) => {
      const p = await at(who, fileSystem(who, request.filesystem), request.path, false);
      await onDisk(p, async () => {
        if (await lstat(p).then(() => true, () => false)) throw new XenonError('PathAlreadyExistsException', FILE, `${p}: path already exists`);
        await mkdir(p, { recursive: true });
      });
      return {};
    }),
    createFile: rpc.unary<PathRequest, Empty>(f, async (request, { who }) => {
      const p = await at(who, fileSystem(who, request.filesystem), request.path, false);
      await onDisk(p, async () => (await open(p, 'wx', 0o644)).close());
      return {};
    }),
    createSymbolicLink: rpc.unary<CreateSymbolicLinkRequest, Empty>(f, async (request, { who }) => {
      const fs = fileSystem(who, request.filesystem);
      const link = await at(who, fs, request.link, false);
      const target = pathText(request.target);
      if (target === '') throw new XenonError('InvalidPathException', FILE, 'createSymbolicLink: the target is empty');
      await onDisk(link, () => symlink(target, link));
      return {};
    }),
    readSymbolicLink: rpc.unary<PathRequest, XenonPath>(f, async (request, { who }) => {
      const p = await at(who, fileSystem(who, request.filesystem), request.path, false);
      const target = await onDisk(p, () => readlink(p));
      // As Xenon does: a relative target is given relative to the folder holding the link.
      return { path: target.startsWith('/') ? target : posix.join(posix.dirname(p), target), separator: '/' };
    }),
    rename: rpc.unary<RenameRequest, Empty>(f, async (request, { who }) => {
      const fs = fileSystem(who, request.filesystem);
      const source = await at(who, fs, request.source, false);
      const target = await at(who, fs, request.target, false);
      notRoot(who, source, 'renamed');
      await onDisk(source, () => lstat(source));
      if (source === target) return {};
      if (await lstat(target).then(() => true, () => false)) throw new XenonError('PathAlreadyExistsException', FILE, `${target}: path already exists`);
      await onDisk(target, () => rename(source, target));
      return {};
    }),
    delete: rpc.unary<DeleteRequest, Empty>(f, async (request, { who }) => {
      const p = await at(who, fileSystem(who, request.filesystem), request.path, false);
      notRoot(who, p, 'deleted');
      const st = await onDisk(p, () => lstat(p));
      if (!st.isDirectory()) await onDisk(p, () => unlink(p));
      else if (request.recursive) await onDisk(p, () => rm(p, { recursive: true }));
      else await onDisk(p, () => rmdir(p));
      return {};
    }),
    getAttributes: rpc.unary<PathRequest, PathAttributes>(f, async (request, { who }) => {
      const p = await at(who, fileSystem(who, request.filesystem), request.path, false);
      return pathAttributes(p, await onDisk(p, () => lstat(p)));
    }),
    setPosixFilePermissions: rpc.unary<SetPosixFilePermissionsRequest, Empty>(f, async (request, { who }) => {
      const p = await at(who, fileSystem(who, request.filesystem), request.path, true);
      await onDisk(p, () => chmod(p, modeOf(request.permissions)));
      return {};
    }),
    list: rpc.serverStream<ListRequest, PathAttributes>(f, async (call, ctx) => {
      const request = call.request;
      const dir = await at(ctx.who, fileSystem(ctx.who, request.filesystem), request.dir, true);
      const st = await onDisk(dir, () => stat(dir));
      if (!st.isDirectory()) throw new XenonError('InvalidPathException', FILE, `${dir}: not a directory`);
      await listInto(call, ctx, dir, request.recursive);
    }),
    readFromFile: rpc.serverStream<PathRequest, ReadFromFileResponse>(f, async (call, ctx) => {
      const request = call.request;
      const p = await at(ctx.who, fileSystem(ctx.who, request.filesystem), request.path, true);
      const file = await onDisk(p, () => open(p, 'r'));
      try {
        if (!(await file.stat()).isFile()) throw new XenonError('InvalidPathException', FILE, `${p}: not a regular file`);
        for (;;) {
          if (ctx.signal.aborted) return;
          const buffer = Buffer.allocUnsafe(READ_CHUNK);
          const { bytesRead } = await onDisk(p, () => file.read(buffer, 0, READ_CHUNK, null));
          if (bytesRead === 0) return;
          await writeAll(call, ctx, { buffer: buffer.subarray(0, bytesRead) });
        }
      } finally {
        await file.close().catch(() => undefined);
      }
    }),
    writeToFile: streamToFile(false),
    appendToFile: streamToFile(true),
    copy: rpc.unary<CopyRequest, Handle>(f, async (request, { who }) => {
      const fs = fileSystem(who, request.filesystem);
      const destinationFs = request.destination_filesystem?.id ? fileSystem(who, request.destination_filesystem) : fs;
      const source = await at(who, fs, request.source, true);
      const destination = await at(who, destinationFs, request.destination, false);
      notRoot(who, destination, 'replaced');
      const op = copies.start({ owner: who.user, fileSystemId: fs.id, source, destination, mode: request.mode, recursive: request.recursive });
      return { id: op.id };
    }),
    getStatus: rpc.unary<CopyOperationRequest, XenonCopyStatus>(f, async (request, { who }) => copyStatus(copyOf(who, request))),
    cancel: rpc.unary<CopyOperationRequest, XenonCopyStatus>(f, async (request, { who }) => {
      const op = copyOf(who, request);
      copies.cancel(op);
      await op.done;
      return copyStatus(op);
    }),
    waitUntilDone: rpc.unary<WaitUntilDoneRequest, XenonCopyStatus>(f, async (request, ctx) => {
      const op = copyOf(ctx.who, request);
      await copies.wait(op, request.timeout, ctx.signal);
      return copyStatus(op);
    }),
  };

  return {
    implementation,
    open: (owner) => openHandle(owner, '/', space.root(owner)),
    close: (owner, id) => {
      const fs = handles.find(owner, id);
      if (!fs) return;
      copies.cancelAllOf(fs.id);
      handles.remove(fs);
    },
    shutdown: () => copies.cancelAll(),
  };
}
