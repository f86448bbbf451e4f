/**
 * Xenon's FileSystemService. The `sftp` adaptor (the hosts of the server's ssh and slurm+ssh
 * executors, offered when it has some) is `sftp.ts`; this module routes its calls there and
 * decides which credentials it takes (docs/grpc.md, "The sftp adaptor"). The `file` adaptor: the server's local file system — all of it,
 * with the server account's permissions, for the admin (as Xenon's own adaptor); for any other
 * user, confined to their file space by the rule written at the top of file-space.ts (every path
 * is held by a descriptor, checked, then used only through it; see also docs/grpc.md). Errors
 * carry the Xenon kinds a client expects: NoSuchPathException, PathAlreadyExistsException,
 * InvalidPathException, DirectoryNotEmptyException, and PERMISSION_DENIED for a path outside
 * the file space.
 * Streams respect flow control: reading and listing wait for the call to drain, and writing
 * reads the next request only once the previous one is on disk.
 * @module
 */
import { constants } from 'node:fs';
import { chmod, lstat, mkdir, open, opendir, readFile, readlink, rename, rmdir, symlink, unlink } from 'node:fs/promises';
import { posix } from 'node:path';
import { status as Status, type ServerReadableStream, type ServerWritableStream, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { ExecutorInfo, WhoAmI } from '@jobwire/client';
import { CREDENTIAL_PREFIX } from '../executors/registry.js';
import { SshConnection, type SshConnectionOptions } from '../executors/ssh/connection.js';
import { parseSshTarget, type SshTarget } from '../executors/ssh/url.js';
import { modeOf, pathAttributes } from './attributes.js';
import { copyStatus, CopyOperations, type CopyOperation } from './copy.js';
import { fromFsError, XenonError, type XenonExceptionKind } from './errors.js';
import { pathText, removeEntry, type FileSpace, type Held, type HeldName, type HoldOptions } from './file-space.js';
import { HandleTable, type FileSystemHandle } from './handles.js';
import { isDirectory, parseSftpLocation, SFTP, sftpAttributes, SftpFiles } from './sftp.js';
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
/** Xenon credential kinds, as adaptor descriptions name them. */
const CREDENTIAL_NAMES: Record<string, string> = { default_credential: 'DefaultCredential', password_credential: 'PasswordCredential', certificate_credential: 'CertificateCredential' };
/** Largest key file a certificate credential may name. */
const MAX_KEY_BYTES = 64 * 1024;
/** Bytes per readFromFile message. */
const READ_CHUNK = 64 * 1024;

const DESCRIPTION: FileSystemAdaptorDescription = {
  name: FILE,
  description:
    "The jobwire server's local file system: for the admin all of it, with the server account's permissions, starting in the server's work folder (--work-dir); for other users confined to their file space (<work folder>/<user>/), which is also the working directory of their gRPC jobs.",
  supported_locations: ['(empty)', '/', 'an absolute folder (inside your file space, unless you are the admin)'],
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

/** The remote hosts the `sftp` adaptor reaches: those of the server's ssh and `slurm+ssh` executors. */
export interface RemoteFileHosts {
  /** The server's named executors (those with `ssh://` and `slurm+ssh://` URLs are the sftp hosts). */
  executors(): ExecutorInfo[];
  /** The shared connection to `target` (the one its executor uses). */
  connection(target: SshTarget): SshConnection;
  /** The server's SSH options (its known_hosts file is the one every sftp connection checks keys against). */
  options: SshConnectionOptions;
}

/** One sftp host: an executor's target. */
interface SftpHost {
  executor: string;
  url: string;
  target: SshTarget;
}

/** The FileSystemService, plus what the scheduler service needs of it. */
export interface FileSystemServiceParts {
  implementation: UntypedServiceImplementation;
  /** Opens a handle on `who`'s file space (Scheduler.getFileSystem). */
  open(who: WhoAmI): Handle;
  /** Opens an sftp handle on the host of the executor `executor` (Scheduler.getFileSystem of an ssh or slurm+ssh scheduler). */
  openRemote(who: WhoAmI, executor: string, location: string): Promise<Handle>;
  /** Opens an sftp handle as FileSystemService.create does (Scheduler.getFileSystem of a scheduler with its own credential). */
  openSftp(who: WhoAmI, request: CreateRequest): Promise<Handle>;
  /** Reads the key file of a certificate credential by the sftp adaptor's rule (see docs/grpc.md); `adaptor` names the caller in messages. */
  keyFile(who: WhoAmI, certfile: string, adaptor: string): Promise<{ key: Buffer; real: string }>;
  /** Closes a handle, cancelling its copies. */
  close(owner: string, id: string): void;
  /** Cancels every copy and ends every sftp session (server shutdown). */
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
export function fileSystemService(rpc: Rpc, space: FileSpace, remote?: RemoteFileHosts): FileSystemServiceParts {
  const handles = new HandleTable<FileSystemHandle>('file system');
  const copies = new CopyOperations();

  /** One sftp session per shared connection, for every default-credential handle on it. */
  const shared = new Map<SshConnection, SftpFiles>();
  const sharedFiles = (target: SshTarget): SftpFiles => {
    const connection = remote!.connection(target);
    let files = shared.get(connection);
    if (files === undefined) shared.set(connection, (files = new SftpFiles(connection, false)));
    return files;
  };

  /** The hosts of the server's ssh and slurm+ssh executors. */
  const sftpHosts = (): SftpHost[] =>
    (remote?.executors() ?? []).flatMap((e) => {
      // Executors of schedulers with a caller's own credential are not the server's hosts.
      if (e.name.startsWith(CREDENTIAL_PREFIX)) return [];
      const scheme = /^(ssh|slurm\+ssh):/i.exec(e.url)?.[1]?.toLowerCase();
      if (scheme === undefined) return [];
      return [{ executor: e.name, url: e.url, target: parseSshTarget(e.url, { scheme: `${scheme}:` }) }];
    });
  /** The adaptors offered now: `file`, and `sftp` when the server has ssh hosts. */
  const offered = (): string[] => [FILE, ...(sftpHosts().length > 0 ? [SFTP] : [])];

  const sftpDescription = (): FileSystemAdaptorDescription => ({
    name: SFTP,
    description:
      `Files on the SSH hosts of this jobwire server's ssh and slurm+ssh executors (${sftpHosts().map((h) => `${h.target.user}@${h.target.host}:${h.target.port}`).join(', ')}), over SFTP. ` +
      "With the default credential the server's own connection to the host is used (its account there, the one the executor's jobs run as); " +
      'with a password credential, or a certificate credential naming a key file the caller may read through the file adaptor, the handle logs in with that instead, to one of the same hosts. ' +
      "Host keys are checked against the server's known_hosts. Paths are the host's; a new file system starts in the account's home (or the folder the location names).",
    supported_locations: ['host[:port]', 'user@host[:port]', '[user@]host[:port]/folder', 'sftp://[user@]host[:port][/folder]'],
    supported_properties: [],
    supports_third_party_copy: false,
    can_create_symboliclinks: true,
    can_read_symboliclinks: true,
    is_connectionless: false,
    supported_credentials: ['DefaultCredential', 'PasswordCredential', 'CertificateCredential'],
    supports_reading_posix_permissions: true,
    supports_setting_posix_permissions: true,
    supports_rename: true,
    can_append: true,
    needs_size_beforehand: false,
  });
  const descriptionOf = (name: string): FileSystemAdaptorDescription => (name === SFTP ? sftpDescription() : DESCRIPTION);

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

  /** The absolute path a request names, as text; PERMISSION_DENIED unless under the user's root. */
  const pathOf = (who: WhoAmI, fs: FileSystemHandle, path: XenonPath | null | undefined): string => space.path(who, fs.cwd, pathText(path));

  /** Runs `fn` on the object at `p`, held and checked (file-space.ts, rule 3). */
  const withHeld = <T>(who: WhoAmI, p: string, options: HoldOptions, fn: (held: Held) => Promise<T>): Promise<T> =>
    onDisk(p, async () => {
      const held = await space.hold(who, p, options);
      try {
        return await fn(held);
      } finally {
        await held.close();
      }
    });

  /** Runs `fn` on the name `p` in its held, checked folder (file-space.ts, rule 4). */
  const withName = <T>(who: WhoAmI, p: string, fn: (name: HeldName) => Promise<T>): Promise<T> =>
    onDisk(p, async () => {
      const name = await space.holdName(who, p);
      try {
        return await fn(name);
      } finally {
        await name.dir.close();
      }
    });

  /** Runs `fn` on the folder at `p`; InvalidPathException (or `kind`) when it is not one. */
  const withDirectory = <T>(who: WhoAmI, p: string, fn: (held: Held) => Promise<T>, kind: XenonExceptionKind = 'InvalidPathException'): Promise<T> =>
    withHeld(who, p, { follow: true }, async (held) => {
      if (!(await held.stat()).isDirectory()) throw new XenonError(kind, FILE, `${p}: not a directory`);
      return fn(held);
    });

  const notRoot = (who: WhoAmI, p: string, what: string): void => {
    if (p === space.root(who)) throw new XenonError('InvalidPathException', FILE, `${p}: the root of your file space cannot be ${what}`);
  };

  const copyOf = (who: WhoAmI, request: CopyOperationRequest): CopyOperation => {
    fileSystem(who, request.filesystem);
    const op = copies.find(who.user, request.copy_operation?.id);
    if (!op) throw new XenonError('NoSuchCopyException', FILE, `no copy operation ${JSON.stringify(request.copy_operation?.id ?? '')}`);
    return op;
  };

  const checkAdaptor = (name: string): void => {
    const names = offered();
    if (names.includes(name)) return;
    const how = name === SFTP ? ' (it has no ssh or slurm+ssh executor whose host sftp could reach: jobwire server --executor NAME=ssh://host)' : '';
    const known = KNOWN_XENON_ADAPTORS.includes(name) ? ` is not available on this jobwire server${how}` : ' is unknown';
    throw new XenonError('UnknownAdaptorException', name || '(none)', `the file system adaptor "${name}"${known}; this server offers: ${names.join(', ')}`);
  };

  /** The sftp host `location` names: one of the executors' hosts (and, when a user is named and `sameUser`, its user). */
  const sftpHostAt = (location: string, sameUser: boolean): { host: SftpHost; wanted: SshTarget; folder?: string } => {
    const parsed = parseSftpLocation(location);
    let wanted: SshTarget;
    try {
      wanted = parseSshTarget(parsed.target);
    } catch (err) {
      throw new XenonError('InvalidLocationException', SFTP, `location ${JSON.stringify(location)}: ${(err as Error).message}`);
    }
    const hosts = sftpHosts();
    const host = hosts.find((h) => h.target.host === wanted.host && h.target.port === wanted.port && (!sameUser || !parsed.explicitUser || h.target.user === wanted.user));
    if (host === undefined) {
      throw new XenonError('InvalidLocationException', SFTP, `location ${JSON.stringify(location)}: this server reaches no such host by sftp; its hosts are those of its ssh and slurm+ssh executors: ${hosts.map((h) => `${h.target.user}@${h.target.host}:${h.target.port} (${h.executor})`).join(', ')}`);
    }
    return { host, wanted, ...(parsed.folder !== undefined ? { folder: parsed.folder } : {}) };
  };

  /**
   * A key file named by a certificate credential, read if `who` may read it through the file
   * adaptor; with where it really is. `adaptor` names who asks, in messages.
   */
  const keyFileOf = async (who: WhoAmI, certfile: string, adaptor: string): Promise<{ key: Buffer; real: string }> => {
    if (certfile === '') throw new XenonError('InvalidCredentialException', adaptor, 'the certificate credential names no key file (certfile)');
    // The same rule as every file call: the admin reads any file the server's account may, another
    // user only files inside their file space (held and checked, then read through the descriptor).
    const p = space.path(who, space.home(who), certfile);
    return withHeld(who, p, { follow: true }, async (held) => {
      const st = await held.stat();
      if (!st.isFile()) throw new XenonError('InvalidCredentialException', adaptor, `${p}: not a regular file`);
      // Private keys are a few KiB: a bigger file is not one (and is not read into memory).
      if (st.size > MAX_KEY_BYTES) throw new XenonError('InvalidCredentialException', adaptor, `${p}: ${st.size} bytes is too big for a private key (at most ${MAX_KEY_BYTES})`);
      return { key: await readFile(held.at), real: held.real };
    });
  };
  const keyFile = async (who: WhoAmI, certfile: string): Promise<Buffer> => (await keyFileOf(who, certfile, SFTP)).key;

  /** Opens an sftp handle on `files`, starting in `folder` or the account's home; the first use connects. */
  const openSftp = async (owner: string, location: string, files: SftpFiles, folder: string | undefined, credential: Record<string, unknown>): Promise<Handle> => {
    let cwd: string;
    try {
      cwd = await files.home();
      if (folder !== undefined) {
        cwd = posix.resolve(cwd, folder);
        await files.directory(cwd, 'InvalidLocationException');
      }
    } catch (err) {
      files.close();
      const cause = (err as { cause?: { kind?: string } }).cause;
      if (err instanceof XenonError && err.kind === 'NotConnectedException' && cause?.kind === 'auth') throw new XenonError('InvalidCredentialException', SFTP, err.message, { cause: err });
      if (err instanceof XenonError && err.kind === 'NotConnectedException' && cause?.kind === 'host-key') throw new XenonError('XenonException', SFTP, err.message, { cause: err, code: Status.FAILED_PRECONDITION });
      throw err;
    }
    const id = handles.newId(SFTP, owner, location);
    try {
      handles.add({ kind: 'filesystem', id, owner, adaptor: SFTP, location, cwd, sftp: files, credential });
    } catch (err) {
      files.close();
      throw err;
    }
    return { id };
  };

  const createSftp = async (who: WhoAmI, request: CreateRequest): Promise<Handle> => {
    const kind = request.credential ?? 'default_credential';
    if (kind === 'default_credential') {
      const { host, folder } = sftpHostAt(request.location, true);
      return openSftp(who.user, request.location, sharedFiles(host.target), folder, { default_credential: { username: host.target.user } });
    }
    if (kind !== 'password_credential' && kind !== 'certificate_credential') {
      throw new XenonError('InvalidCredentialException', SFTP, `the sftp adaptor takes a default, password or certificate credential, not a ${kind.replace('_', ' ')}`);
    }
    // Another login, to one of the same hosts only: the server reaches no host it was not told of.
    const { host, wanted, folder } = sftpHostAt(request.location, false);
    const given = kind === 'password_credential' ? request.password_credential : request.certificate_credential;
    const user = given?.username || (parseSftpLocation(request.location).explicitUser ? wanted.user : host.target.user);
    const own: SshConnectionOptions = { agent: false, identityFiles: [], ...(remote!.options.knownHostsFile !== undefined ? { knownHostsFile: remote!.options.knownHostsFile } : {}) };
    const target = { user, host: host.target.host, port: host.target.port };
    if (kind === 'password_credential') {
      const password = request.password_credential?.password ?? '';
      if (password === '') throw new XenonError('InvalidCredentialException', SFTP, 'the password credential has an empty password');
      return openSftp(who.user, request.location, new SftpFiles(new SshConnection(target, { ...own, password }), true), folder, { password_credential: { username: user, password: '' } });
    }
    const cert = request.certificate_credential;
    const key = await keyFile(who, cert?.certfile ?? '');
    const privateKey = { key, source: cert!.certfile, ...(cert?.passphrase ? { passphrase: cert.passphrase } : {}) };
    return openSftp(who.user, request.location, new SftpFiles(new SshConnection(target, { ...own, privateKey }), true), folder, { certificate_credential: { username: user, certfile: cert!.certfile, passphrase: '' } });
  };

  /** The absolute remote path a request names, taken from the handle's working directory. */
  const remotePath = (fs: FileSystemHandle, path: XenonPath | null | undefined): string => posix.resolve(fs.cwd, pathText(path));

  /** Forgets a handle: cancels its copies and ends its sftp session (and own connection). */
  const forget = (fs: FileSystemHandle): void => {
    copies.cancelAllOf(fs.id);
    handles.remove(fs);
    fs.sftp?.close();
  };

  const create = async (who: WhoAmI, request: CreateRequest): Promise<Handle> => {
    checkAdaptor(request.adaptor);
    if (request.adaptor === SFTP) {
      const props = Object.keys(request.properties);
      if (props.length > 0) throw new XenonError('UnknownPropertyException', SFTP, `unknown propert${props.length > 1 ? 'ies' : 'y'} ${props.join(', ')}`);
      return createSftp(who, request);
    }
    if (request.credential !== undefined && request.credential !== 'default_credential') {
      throw new XenonError('InvalidCredentialException', FILE, `the file adaptor takes no ${request.credential.replace('_', ' ')}; callers authenticate to jobwire with a bearer token`);
    }
    const props = Object.keys(request.properties);
    if (props.length > 0) throw new XenonError('UnknownPropertyException', FILE, `unknown propert${props.length > 1 ? 'ies' : 'y'} ${props.join(', ')}`);
    const root = space.root(who);
    let location = request.location.replace(/^file:\/\//, '');
    // As Xenon's local file system: no location (or the root) starts in the working directory.
    if (location === '' || location === '/') return openHandle(who.user, request.location, space.home(who));
    if (!location.startsWith('/')) throw new XenonError('InvalidLocationException', FILE, `location ${JSON.stringify(request.location)}: give an absolute folder (or nothing)`);
    location = space.path(who, root, location);
    await withDirectory(who, location, async () => undefined, 'InvalidLocationException');
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
      let remoteFile: { files: SftpFiles; handle: Buffer; at: number } | undefined;
      let path = '';
      try {
        await eachRequest(call, ctx, async (request) => {
          if (remoteFile) {
            const r = remoteFile;
            if (request.buffer.byteLength > 0) await r.files.write(path, r.handle, request.buffer, r.at);
            r.at += request.buffer.byteLength;
            return;
          }
          if (!file) {
            const fs = fileSystem(ctx.who, request.filesystem);
            if (fs.sftp) {
              const files = fs.sftp;
              path = remotePath(fs, request.path);
              let at = 0;
              let handle: Buffer;
              if (append) {
                at = (await files.regularFile(path)).size;
                handle = await files.open(path, 'r+');
              } else {
                await files.mustBeFree(path);
                await files.parentMustExist(path);
                handle = await files.open(path, 'wx');
              }
              remoteFile = { files, handle, at };
              if (request.buffer.byteLength > 0) await files.write(path, handle, request.buffer, at);
              remoteFile.at += request.buffer.byteLength;
              return;
            }
            path = pathOf(ctx.who, fs, request.path);
            const target = path;
            // Xenon's writeToFile creates a new file (never through a link: O_EXCL); appendToFile
            // needs an existing regular file, wherever a link inside leads to.
            file = append
              ? await withHeld(ctx.who, target, { follow: true }, async (held) => {
                  if (!(await held.stat()).isFile()) throw new XenonError('InvalidPathException', FILE, `${target}: not a regular file`);
                  return open(held.at, constants.O_WRONLY | constants.O_APPEND);
                })
              : await withName(ctx.who, target, (name) => open(name.at, 'wx', 0o644));
          }
          const handle = file;
          if (request.buffer.byteLength > 0) await onDisk(path, () => handle.write(request.buffer).then(() => undefined));
        });
        if (!file && !remoteFile) throw new XenonError('InvalidPathException', FILE, `${append ? 'appendToFile' : 'writeToFile'}: the first request names the file system and the path`, { code: Status.INVALID_ARGUMENT });
        return {};
      } finally {
        await (file as { close(): Promise<void> } | undefined)?.close().catch(() => undefined);
        const r = remoteFile as { files: SftpFiles; handle: Buffer } | undefined;
        if (r) await r.files.closeFile(r.handle);
      }
    });

  /** Lists the held folder `dir`, shown as `path` (and below, when recursive) without following links. */
  const listInto = async (call: ServerWritableStream<ListRequest, PathAttributes>, ctx: CallContext, dir: Held, path: string, recursive: boolean): Promise<void> => {
    const entries = await onDisk(path, () => opendir(dir.at));
    for await (const entry of entries) {
      if (ctx.signal.aborted) return;
      const child = posix.join(path, entry.name);
      const held = await dir.entry(entry.name).catch(() => undefined);
      if (!held) continue; // removed meanwhile
      try {
        const st = await held.stat();
        await writeAll(call, ctx, await pathAttributes(child, st, held.at));
        if (recursive && st.isDirectory()) await listInto(call, ctx, held, child, true);
      } finally {
        await held.close();
      }
    }
  };

  /** Lists the remote folder `path` (and below, when recursive) without following links. */
  const listRemote = async (call: ServerWritableStream<ListRequest, PathAttributes>, ctx: CallContext, files: SftpFiles, path: string, recursive: boolean): Promise<void> => {
    for (const entry of await files.readdir(path)) {
      if (ctx.signal.aborted) return;
      if (entry.filename === '.' || entry.filename === '..') continue;
      const child = posix.join(path, entry.filename);
      await writeAll(call, ctx, sftpAttributes(child, entry.attrs));
      if (recursive && isDirectory(entry.attrs)) await listRemote(call, ctx, files, child, true);
    }
  };

  const f = FILE;
  const implementation: UntypedServiceImplementation = {
    getAdaptorDescriptions: rpc.unary<Empty, unknown>(f, async () => ({ descriptions: offered().map(descriptionOf) })),
    getAdaptorNames: rpc.unary<Empty, unknown>(f, async () => ({ name: offered() })),
    getAdaptorDescription: rpc.unary<{ name: string }, FileSystemAdaptorDescription>(f, async (request) => {
      checkAdaptor(request.name);
      return descriptionOf(request.name);
    }),
    create: rpc.unary<CreateRequest, Handle>(f, async (request, { who }) => create(who, request)),
    localFileSystems: rpc.unary<Empty, unknown>(f, async (_request, { who }) => ({ filesystems: [openHandle(who.user, '/', space.home(who))] })),
    listFileSystems: rpc.unary<Empty, unknown>(f, async (_request, { who }) => ({ filesystems: handles.list(who.user).map((h) => ({ id: h.id })) })),
    close: rpc.unary<Handle, Empty>(f, async (request, { who }) => {
      forget(fileSystem(who, request));
      return {};
    }),
    isOpen: rpc.unary<Handle, unknown>(f, async (request, { who }) => {
      fileSystem(who, request);
      return { value: true };
    }),
    getAdaptorName: rpc.unary<Handle, unknown>(f, async (request, { who }) => ({ name: fileSystem(who, request).adaptor })),
    getLocation: rpc.unary<Handle, unknown>(f, async (request, { who }) => ({ location: fileSystem(who, request).location })),
    getCredential: rpc.unary<Handle, unknown>(f, async (request, { who }) => {
      const fs = fileSystem(who, request);
      // An sftp handle's credential as given, its secret (password, passphrase) left out.
      return fs.credential ?? { default_credential: { username: who.user } };
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
      if (fs.sftp) {
        const p = remotePath(fs, request.path);
        await fs.sftp.directory(p);
        fs.cwd = p;
        return {};
      }
      const p = pathOf(who, fs, request.path);
      await withDirectory(who, p, async () => undefined);
      fs.cwd = p;
      return {};
    }),
    exists: rpc.unary<PathRequest, unknown>(f, async (request, { who }) => {
      const fs = fileSystem(who, request.filesystem);
      if (fs.sftp) return { value: await fs.sftp.exists(remotePath(fs, request.path)) };
      const p = pathOf(who, fs, request.path);
      try {
        await withHeld(who, p, { follow: true }, async () => undefined);
        return { value: true };
      } catch (err) {
        if (err instanceof XenonError && err.kind === 'NoSuchPathException') return { value: false };
        const code = ((err as { cause?: NodeJS.ErrnoException }).cause as NodeJS.ErrnoException | undefined)?.code;
        if (code === 'ENOTDIR') return { value: false };
        throw err;
      }
    }),
    createDirectory: rpc.unary<PathRequest, Empty>(f, async (request, { who }) => {
      const fs = fileSystem(who, request.filesystem);
      if (fs.sftp) {
        await fs.sftp.mkdir(remotePath(fs, request.path));
        return {};
      }
      const p = pathOf(who, fs, request.path);
      await withName(who, p, (name) => mkdir(name.at));
      return {};
    }),
    createDirectories: rpc.unary<PathRequest, Empty>(f, async (request, { who }) => {
      const fs = fileSystem(who, request.filesystem);
      if (fs.sftp) {
        await fs.sftp.mkdirs(remotePath(fs, request.path));
        return {};
      }
      const p = pathOf(who, fs, request.path);
      const root = space.root(who);
      const exists = await withName(who, p, (name) => lstat(name.at).then(() => true)).catch((err: unknown) => {
        if (err instanceof XenonError && err.kind === 'NoSuchPathException') return false;
        throw err;
      });
      if (exists) throw new XenonError('PathAlreadyExistsException', FILE, `${p}: path already exists`);
      // Folder by folder from the root, each held and checked before the next is made in it.
      await withHeld(who, root, { follow: true }, async (top) => {
        let dir = top;
        let shown = root;
        try {
          for (const part of posix.relative(root, p).split('/')) {
            shown = posix.join(shown, part);
            await mkdir(dir.child(part)).catch((err: unknown) => {
              if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw fromFsError(err, shown);
            });
            const next = await space.holdIn(who, dir, part, shown).catch((err: unknown) => {
              throw err instanceof XenonError ? err : fromFsError(err, shown);
            });
            if (dir !== top) await dir.close();
            dir = next;
            if (!(await dir.stat()).isDirectory()) throw new XenonError('InvalidPathException', FILE, `${shown}: not a directory`);
          }
        } finally {
          if (dir !== top) await dir.close();
        }
      });
      return {};
    }),
    createFile: rpc.unary<PathRequest, Empty>(f, async (request, { who }) => {
      const fs = fileSystem(who, request.filesystem);
      if (fs.sftp) {
        await fs.sftp.createFile(remotePath(fs, request.path));
        return {};
      }
      const p = pathOf(who, fs, request.path);
      await withName(who, p, async (name) => (await open(name.at, 'wx', 0o644)).close());
      return {};
    }),
    createSymbolicLink: rpc.unary<CreateSymbolicLinkRequest, Empty>(f, async (request, { who }) => {
      const fs = fileSystem(who, request.filesystem);
      const target = pathText(request.target);
      if (target === '') throw new XenonError('InvalidPathException', fs.adaptor, 'createSymbolicLink: the target is empty');
      if (fs.sftp) {
        await fs.sftp.symlink(remotePath(fs, request.link), target);
        return {};
      }
      const link = pathOf(who, fs, request.link);
      // A link may point anywhere: whatever follows it is checked where it leads.
      await withName(who, link, (name) => symlink(target, name.at));
      return {};
    }),
    readSymbolicLink: rpc.unary<PathRequest, XenonPath>(f, async (request, { who }) => {
      const fs = fileSystem(who, request.filesystem);
      const p = fs.sftp ? remotePath(fs, request.path) : pathOf(who, fs, request.path);
      const target = fs.sftp ? await fs.sftp.readlink(p) : await withName(who, p, (name) => readlink(name.at));
      // As Xenon does: a relative target is given relative to the folder holding the link.
      return { path: target.startsWith('/') ? target : posix.join(posix.dirname(p), target), separator: '/' };
    }),
    rename: rpc.unary<RenameRequest, Empty>(f, async (request, { who }) => {
      const fs = fileSystem(who, request.filesystem);
      if (fs.sftp) {
        await fs.sftp.rename(remotePath(fs, request.source), remotePath(fs, request.target));
        return {};
      }
      const source = pathOf(who, fs, request.source);
      const target = pathOf(who, fs, request.target);
      notRoot(who, source, 'renamed');
      await withName(who, source, async (from) => {
        await lstat(from.at);
        if (source === target) return;
        await withName(who, target, async (to) => {
          if (await lstat(to.at).then(() => true, () => false)) throw new XenonError('PathAlreadyExistsException', FILE, `${target}: path already exists`);
          await onDisk(target, () => rename(from.at, to.at));
        });
      });
      return {};
    }),
    delete: rpc.unary<DeleteRequest, Empty>(f, async (request, { who }) => {
      const fs = fileSystem(who, request.filesystem);
      if (fs.sftp) {
        const p = remotePath(fs, request.path);
        if (p === '/') throw new XenonError('InvalidPathException', SFTP, '/: the root cannot be deleted');
        await fs.sftp.delete(p, request.recursive);
        return {};
      }
      const p = pathOf(who, fs, request.path);
      notRoot(who, p, 'deleted');
      await withName(who, p, async (name) => {
        const st = await lstat(name.at);
        if (!st.isDirectory()) await unlink(name.at);
        else if (request.recursive) await removeEntry(name.dir, name.name);
        else await rmdir(name.at);
      });
      return {};
    }),
    getAttributes: rpc.unary<PathRequest, PathAttributes>(f, async (request, { who }) => {
      const fs = fileSystem(who, request.filesystem);
      if (fs.sftp) {
        const p = remotePath(fs, request.path);
        return sftpAttributes(p, await fs.sftp.lstat(p));
      }
      const p = pathOf(who, fs, request.path);
      return withHeld(who, p, { follow: false }, async (held) => pathAttributes(p, await held.stat(), held.at));
    }),
    setPosixFilePermissions: rpc.unary<SetPosixFilePermissionsRequest, Empty>(f, async (request, { who }) => {
      const fs = fileSystem(who, request.filesystem);
      if (fs.sftp) {
        await fs.sftp.chmod(remotePath(fs, request.path), modeOf(request.permissions));
        return {};
      }
      const p = pathOf(who, fs, request.path);
      await withHeld(who, p, { follow: true }, (held) => chmod(held.at, modeOf(request.permissions)));
      return {};
    }),
    list: rpc.serverStream<ListRequest, PathAttributes>(f, async (call, ctx) => {
      const request = call.request;
      const fs = fileSystem(ctx.who, request.filesystem);
      if (fs.sftp) {
        const dir = remotePath(fs, request.dir);
        await fs.sftp.directory(dir);
        await listRemote(call, ctx, fs.sftp, dir, request.recursive);
        return;
      }
      const dir = pathOf(ctx.who, fs, request.dir);
      await withDirectory(ctx.who, dir, (held) => listInto(call, ctx, held, dir, request.recursive));
    }),
    readFromFile: rpc.serverStream<PathRequest, ReadFromFileResponse>(f, async (call, ctx) => {
      const request = call.request;
      const fs = fileSystem(ctx.who, request.filesystem);
      if (fs.sftp) {
        const files = fs.sftp;
        const p = remotePath(fs, request.path);
        await files.regularFile(p);
        const handle = await files.open(p, 'r');
        try {
          for (let at = 0; ; ) {
            if (ctx.signal.aborted) return;
            const data = await files.read(p, handle, at, READ_CHUNK);
            if (data.length === 0) return;
            at += data.length;
            await writeAll(call, ctx, { buffer: data });
          }
        } finally {
          await files.closeFile(handle);
        }
      }
      const p = pathOf(ctx.who, fs, request.path);
      const file = await withHeld(ctx.who, p, { follow: true }, async (held) => {
        if (!(await held.stat()).isFile()) throw new XenonError('InvalidPathException', FILE, `${p}: not a regular file`);
        return open(held.at, 'r');
      });
      try {
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
      if (fs.sftp || destinationFs.sftp) {
        if (fs.sftp === undefined || destinationFs.sftp === undefined || fs.sftp.connection !== destinationFs.sftp.connection) {
          throw new XenonError('UnsupportedOperationException', SFTP, 'copy works within one sftp file system (or two handles on the same connection); copy between hosts or adaptors by reading from one and writing to the other');
        }
        const files = fs.sftp;
        const source = remotePath(fs, request.source);
        const destination = remotePath(destinationFs, request.destination);
        const op = copies.startWith({ owner: who.user, fileSystemId: fs.id, source, destination }, async (op) => {
          op.state = 'RUNNING';
          try {
            await files.copy(source, destination, request.mode, request.recursive, op, op.abort.signal);
            op.state = 'DONE';
          } catch (err) {
            op.state = 'FAILED';
            if (op.abort.signal.aborted) {
              op.error = { type: 'CANCELLED', message: 'sftp adaptor: copy cancelled' };
              return;
            }
            const xe = err instanceof XenonError ? err : new XenonError('XenonException', SFTP, String(err));
            const type = xe.kind === 'NoSuchPathException' ? 'NOT_FOUND' : xe.kind === 'PathAlreadyExistsException' ? 'ALREADY_EXISTS' : xe.kind === 'NotConnectedException' ? 'NOT_CONNECTED' : 'XENON';
            op.error = { type, message: `${xe.kind}: sftp adaptor: ${xe.message}` };
          }
        });
        return { id: op.id };
      }
      const source = pathOf(who, fs, request.source);
      const destination = pathOf(who, destinationFs, request.destination);
      notRoot(who, destination, 'replaced');
      // Both ends are held now, checked, and handed to the copy, which closes them when it ends.
      const from = await onDisk(source, () => space.hold(who, source, { follow: true })).catch(async (err: unknown) => {
        // A missing source is the copy's NOT_FOUND, reported by its status (as Xenon does).
        if (err instanceof XenonError && err.kind === 'NoSuchPathException') return undefined;
        throw err;
      });
      let to: HeldName;
      try {
        to = await onDisk(destination, () => space.holdName(who, destination));
      } catch (err) {
        await from?.close();
        throw err;
      }
      const op = copies.start({ owner: who.user, fileSystemId: fs.id, source, destination, from, to, mode: request.mode, recursive: request.recursive });
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
    open: (who) => openHandle(who.user, '/', space.home(who)),
    openSftp: (who, request) => createSftp(who, request),
    keyFile: keyFileOf,
    openRemote: async (who, executor, location) => {
      const host = sftpHosts().find((h) => h.executor === executor);
      if (host === undefined) throw new XenonError('XenonException', SFTP, `the executor "${executor}" has no ssh host`);
      return openSftp(who.user, location, sharedFiles(host.target), undefined, { default_credential: { username: host.target.user } });
    },
    close: (owner, id) => {
      const fs = handles.find(owner, id);
      if (fs) forget(fs);
    },
    shutdown: async () => {
      await copies.cancelAll();
      for (const fs of handles.all()) if (fs.sftp) forget(fs);
      for (const files of shared.values()) files.end();
      shared.clear();
    },
  };
}
