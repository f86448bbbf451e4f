import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { addUser, withServer, type TestServer } from '../helpers.js';
import { XenonClient, clientForUser, grpc, rejectsWith, type RpcError } from './xenon-client.js';

const S = grpc.status;

interface Ctx {
  s: TestServer;
  x: XenonClient;
  fs: { id: string };
  /** The file space of the test's user (carol, not the admin: the admin's file system is the whole machine's). */
  root: string;
  /** A path message. */
  p(path: string): { path: string };
  req(path: string): { filesystem: { id: string }; path: { path: string } };
}

async function withFiles(fn: (c: Ctx) => Promise<void>): Promise<void> {
  await withServer(
    async (s) => {
      const x = await clientForUser(`127.0.0.1:${s.server.grpcPort}`, addUser(s.home, 'carol'));
      try {
        const fs = await x.fs('create', { adaptor: 'file', location: '' });
        const root = (await x.fs('getWorkingDirectory', fs)).path as string;
        await fn({ s, x, fs, root, p: (path) => ({ path }), req: (path) => ({ filesystem: fs, path: { path } }) });
      } finally {
        x.close();
      }
    },
    { grpcPort: 0 },
  );
}

const read = async (c: Ctx, path: string): Promise<Buffer> => Buffer.concat((await c.x.stream('files', 'readFromFile', c.req(path))).map((m) => m.buffer));

describe('Xenon gRPC: FileSystemService (file adaptor)', () => {
  it('opens file systems on the caller\'s file space: adaptor, location, working directory, separator, handles', async () => {
    await withFiles(async (c) => {
      const { x, fs, s } = c;
      assert.equal(c.root, join(`${s.home}-work`, 'carol'));
      assert.deepEqual((await x.fs('getAdaptorNames')).name, ['file']);
      assert.equal((await x.fs('getAdaptorDescriptions')).descriptions[0].can_append, true);
      assert.equal((await x.fs('getAdaptorDescription', { name: 'file' })).supports_rename, true);
      await rejectsWith(x.fs('getAdaptorDescription', { name: 'sftp' }), S.NOT_FOUND, 'UnknownAdaptorException');
      await rejectsWith(x.fs('create', { adaptor: 'sftp', location: 'far:22' }), S.NOT_FOUND, 'UnknownAdaptorException');
      await rejectsWith(x.fs('create', { adaptor: 'file', location: 'relative/dir' }), S.FAILED_PRECONDITION, 'InvalidLocationException');
      await rejectsWith(x.fs('create', { adaptor: 'file', location: '/etc' }), S.PERMISSION_DENIED);
      assert.equal((await x.fs('getPathSeparator', fs)).separator, '/');
      assert.equal((await x.fs('getAdaptorName', fs)).name, 'file');
      assert.equal((await x.fs('getLocation', fs)).location, '');
      assert.equal((await x.fs('isOpen', fs)).value, true);
      assert.equal((await x.fs('getCredential', fs)).default_credential.username, 'carol');
      assert.deepEqual((await x.fs('getProperties', fs)).properties, {});

      await x.fs('createDirectory', c.req('sub'));
      await x.fs('setWorkingDirectory', c.req('sub'));
      assert.equal((await x.fs('getWorkingDirectory', fs)).path, join(c.root, 'sub'));
      await x.fs('createFile', c.req('relative.txt'));
      assert.ok(statSync(join(c.root, 'sub', 'relative.txt')).isFile(), 'relative paths resolve against the working directory');
      await rejectsWith(x.fs('setWorkingDirectory', c.req('relative.txt')), S.FAILED_PRECONDITION, 'InvalidPathException');
      await rejectsWith(x.fs('setWorkingDirectory', c.req('missing')), S.NOT_FOUND, 'NoSuchPathException');

      const located = await x.fs('create', { adaptor: 'file', location: join(c.root, 'sub') });
      assert.equal((await x.fs('getWorkingDirectory', located)).path, join(c.root, 'sub'));
      const local = (await x.fs('localFileSystems')).filesystems;
      assert.equal(local.length, 1);
      const listed = (await x.fs('listFileSystems')).filesystems.map((f: { id: string }) => f.id);
      for (const h of [fs, located, local[0]]) assert.ok(listed.includes(h.id));
      await x.fs('close', located);
      await rejectsWith(x.fs('getWorkingDirectory', located), S.NOT_FOUND, 'FileSystemClosedException');
      const bob = await clientForUser(`127.0.0.1:${s.server.grpcPort}`, addUser(s.home, 'bob'));
      try {
        await rejectsWith(bob.fs('exists', c.req('sub')), S.NOT_FOUND, 'FileSystemClosedException');
      } finally {
        bob.close();
      }
    });
  });

  it('creates, tests, renames and deletes paths, with Xenon\'s error kinds', async () => {
    await withFiles(async (c) => {
      const { x } = c;
      await x.fs('createDirectory', c.req('a'));
      await rejectsWith(x.fs('createDirectory', c.req('a')), S.ALREADY_EXISTS, 'PathAlreadyExistsException');
      await rejectsWith(x.fs('createDirectory', c.req('no/such/parent')), S.NOT_FOUND, 'NoSuchPathException');
      await x.fs('createDirectories', c.req('b/c/d'));
      await rejectsWith(x.fs('createDirectories', c.req('b/c/d')), S.ALREADY_EXISTS, 'PathAlreadyExistsException');
      await x.fs('createFile', c.req('b/c/d/file.txt'));
      await rejectsWith(x.fs('createFile', c.req('b/c/d/file.txt')), S.ALREADY_EXISTS, 'PathAlreadyExistsException');
      await rejectsWith(x.fs('createFile', c.req('missing/file.txt')), S.NOT_FOUND, 'NoSuchPathException');
      assert.equal((await x.fs('exists', c.req('b/c/d/file.txt'))).value, true);
      assert.equal((await x.fs('exists', c.req(join(c.root, 'b', 'c')))).value, true);
      assert.equal((await x.fs('exists', c.req('nothing'))).value, false);

      await x.fs('rename', { filesystem: c.fs, source: c.p('b/c/d/file.txt'), target: c.p('a/moved.txt') });
      assert.equal((await x.fs('exists', c.req('a/moved.txt'))).value, true);
      assert.equal((await x.fs('exists', c.req('b/c/d/file.txt'))).value, false);
      await rejectsWith(x.fs('rename', { filesystem: c.fs, source: c.p('nothing'), target: c.p('x') }), S.NOT_FOUND, 'NoSuchPathException');
      await x.fs('createFile', c.req('taken'));
      await rejectsWith(x.fs('rename', { filesystem: c.fs, source: c.p('a/moved.txt'), target: c.p('taken') }), S.ALREADY_EXISTS, 'PathAlreadyExistsException');
      await rejectsWith(x.fs('rename', { filesystem: c.fs, source: c.p('taken'), target: c.p('no/dir/x') }), S.NOT_FOUND, 'NoSuchPathException');

      await rejectsWith(x.fs('delete', { ...c.req('b'), recursive: false }), S.FAILED_PRECONDITION, 'DirectoryNotEmptyException');
      await x.fs('delete', { ...c.req('b'), recursive: true });
      assert.equal((await x.fs('exists', c.req('b'))).value, false);
      await x.fs('delete', { ...c.req('taken'), recursive: false });
      await rejectsWith(x.fs('delete', { ...c.req('taken'), recursive: false }), S.NOT_FOUND, 'NoSuchPathException');
      await rejectsWith(x.fs('delete', { ...c.req(c.root), recursive: true }), S.FAILED_PRECONDITION, 'InvalidPathException');
    });
  });

  it('writes (client-streamed), appends and reads (streamed) files byte for byte', async () => {
    await withFiles(async (c) => {
      const { x } = c;
      const data = randomBytes(3 * 1024 * 1024 + 17);
      const pieces = [];
      for (let i = 0; i < data.length; i += 256 * 1024) pieces.push({ buffer: data.subarray(i, i + 256 * 1024) });
      await x.upload('writeToFile', [{ ...c.req('data.bin'), buffer: pieces[0]!.buffer, size: data.length }, ...pieces.slice(1)]);
      assert.ok((await read(c, 'data.bin')).equals(data));
      await rejectsWith(x.upload('writeToFile', [{ ...c.req('data.bin'), buffer: Buffer.from('x') }]), S.ALREADY_EXISTS, 'PathAlreadyExistsException');
      await rejectsWith(x.upload('writeToFile', [{ ...c.req('nodir/data.bin'), buffer: Buffer.from('x') }]), S.NOT_FOUND, 'NoSuchPathException');

      await x.upload('writeToFile', [{ ...c.req('log.txt'), buffer: Buffer.from('one\n') }]);
      await x.upload('appendToFile', [{ ...c.req('log.txt'), buffer: Buffer.from('two\n') }, { buffer: Buffer.from('three\n') }]);
      assert.equal((await read(c, 'log.txt')).toString(), 'one\ntwo\nthree\n');
      await rejectsWith(x.upload('appendToFile', [{ ...c.req('absent.txt'), buffer: Buffer.from('x') }]), S.NOT_FOUND, 'NoSuchPathException');

      await x.upload('writeToFile', [{ ...c.req('empty.txt'), buffer: Buffer.alloc(0) }]);
      assert.equal((await read(c, 'empty.txt')).length, 0);
      await rejectsWith(c.x.stream('files', 'readFromFile', c.req('absent.txt')), S.NOT_FOUND, 'NoSuchPathException');
      await x.fs('createDirectory', c.req('dir'));
      await rejectsWith(c.x.stream('files', 'readFromFile', c.req('dir')), S.FAILED_PRECONDITION, 'InvalidPathException');
    });
  });

  it('lists directories (streamed, optionally recursive) with attributes, and sets POSIX permissions', async () => {
    await withFiles(async (c) => {
      const { x } = c;
      await x.fs('createDirectories', c.req('tree/inner'));
      await x.upload('writeToFile', [{ ...c.req('tree/top.txt'), buffer: Buffer.from('12345') }]);
      await x.upload('writeToFile', [{ ...c.req('tree/inner/.hidden'), buffer: Buffer.from('x') }]);
      const flat = await x.stream('files', 'list', { filesystem: c.fs, dir: c.p('tree'), recursive: false });
      assert.deepEqual(flat.map((a) => a.path.path).sort(), [join(c.root, 'tree/inner'), join(c.root, 'tree/top.txt')]);
      const deep = await x.stream('files', 'list', { filesystem: c.fs, dir: c.p('tree'), recursive: true });
      assert.deepEqual(deep.map((a) => a.path.path).sort(), [join(c.root, 'tree/inner'), join(c.root, 'tree/inner/.hidden'), join(c.root, 'tree/top.txt')]);
      const top = deep.find((a) => a.path.path.endsWith('top.txt'))!;
      assert.deepEqual([top.is_regular, top.is_directory, top.size, top.is_readable, top.is_hidden], [true, false, 5, true, false]);
      assert.ok(top.last_modified_time > Date.now() - 60_000);
      assert.ok(deep.find((a) => a.path.path.endsWith('.hidden'))!.is_hidden);
      await rejectsWith(x.stream('files', 'list', { filesystem: c.fs, dir: c.p('tree/top.txt'), recursive: false }), S.FAILED_PRECONDITION, 'InvalidPathException');
      await rejectsWith(x.stream('files', 'list', { filesystem: c.fs, dir: c.p('nope'), recursive: false }), S.NOT_FOUND, 'NoSuchPathException');

      await x.fs('setPosixFilePermissions', { ...c.req('tree/top.txt'), permissions: ['OWNER_READ', 'OWNER_WRITE', 'OWNER_EXECUTE', 'GROUP_READ'] });
      assert.equal(statSync(join(c.root, 'tree/top.txt')).mode & 0o777, 0o740);
      const attrs = await x.fs('getAttributes', c.req('tree/top.txt'));
      assert.deepEqual(attrs.permissions, ['OWNER_READ', 'OWNER_WRITE', 'OWNER_EXECUTE', 'GROUP_READ']);
      assert.equal(attrs.is_executable, true);
      assert.equal(typeof attrs.owner, 'string');
      await rejectsWith(x.fs('getAttributes', c.req('nope')), S.NOT_FOUND, 'NoSuchPathException');
      await rejectsWith(x.fs('setPosixFilePermissions', { ...c.req('nope'), permissions: ['OWNER_READ'] }), S.NOT_FOUND, 'NoSuchPathException');
    });
  });

  it('creates and reads symbolic links', async () => {
    await withFiles(async (c) => {
      const { x } = c;
      await x.upload('writeToFile', [{ ...c.req('target.txt'), buffer: Buffer.from('via link') }]);
      await x.fs('createSymbolicLink', { filesystem: c.fs, link: c.p('link.txt'), target: c.p('target.txt') });
      assert.equal((await x.fs('readSymbolicLink', c.req('link.txt'))).path, join(c.root, 'target.txt'));
      assert.equal((await read(c, 'link.txt')).toString(), 'via link');
      assert.equal((await x.fs('getAttributes', c.req('link.txt'))).is_symbolic_link, true);
      await rejectsWith(x.fs('createSymbolicLink', { filesystem: c.fs, link: c.p('link.txt'), target: c.p('target.txt') }), S.ALREADY_EXISTS, 'PathAlreadyExistsException');
      await rejectsWith(x.fs('readSymbolicLink', c.req('target.txt')), S.FAILED_PRECONDITION, 'InvalidPathException');
      await rejectsWith(x.fs('readSymbolicLink', c.req('none')), S.NOT_FOUND, 'NoSuchPathException');
    });
  });

  it('copies files and trees in the background: getStatus, waitUntilDone, modes, cancel', async () => {
    await withFiles(async (c) => {
      const { x } = c;
      const data = randomBytes(1024 * 1024);
      await x.fs('createDirectories', c.req('src/deep'));
      await x.upload('writeToFile', [{ ...c.req('src/a.bin'), buffer: data }]);
      await x.upload('writeToFile', [{ ...c.req('src/deep/b.txt'), buffer: Buffer.from('bee') }]);
      await x.fs('createSymbolicLink', { filesystem: c.fs, link: c.p('src/deep/ln'), target: c.p('b.txt') });

      const one = await x.fs('copy', { filesystem: c.fs, source: c.p('src/a.bin'), destination_filesystem: c.fs, destination: c.p('copy.bin'), mode: 'CREATE', recursive: false });
      const status = await x.fs('waitUntilDone', { filesystem: c.fs, copy_operation: one, timeout: 0 });
      assert.deepEqual([status.state, status.done, status.error_type, status.bytes_copied, status.bytes_to_copy], ['DONE', true, 'NONE', data.length, data.length]);
      assert.ok((await read(c, 'copy.bin')).equals(data));
      assert.equal((await x.fs('getStatus', { filesystem: c.fs, copy_operation: one })).state, 'DONE', 'still queryable');

      const again = await x.fs('copy', { filesystem: c.fs, source: c.p('src/a.bin'), destination_filesystem: c.fs, destination: c.p('copy.bin'), mode: 'CREATE' });
      const exists = await x.fs('waitUntilDone', { filesystem: c.fs, copy_operation: again, timeout: 0 });
      assert.deepEqual([exists.state, exists.error_type], ['FAILED', 'ALREADY_EXISTS']);
      const missing = await x.fs('copy', { filesystem: c.fs, source: c.p('src/none'), destination: c.p('x') });
      assert.equal((await x.fs('waitUntilDone', { filesystem: c.fs, copy_operation: missing, timeout: 0 })).error_type, 'NOT_FOUND');
      const dirNoRecursion = await x.fs('copy', { filesystem: c.fs, source: c.p('src'), destination: c.p('flat'), recursive: false });
      assert.equal((await x.fs('waitUntilDone', { filesystem: c.fs, copy_operation: dirNoRecursion, timeout: 0 })).error_type, 'XENON');

      const tree = await x.fs('copy', { filesystem: c.fs, source: c.p('src'), destination_filesystem: c.fs, destination: c.p('dst'), mode: 'CREATE', recursive: true });
      assert.equal((await x.fs('waitUntilDone', { filesystem: c.fs, copy_operation: tree, timeout: 0 })).state, 'DONE');
      assert.equal((await read(c, 'dst/deep/b.txt')).toString(), 'bee');
      assert.equal((await x.fs('readSymbolicLink', c.req('dst/deep/ln'))).path, join(c.root, 'dst/deep/b.txt'));

      writeFileSync(join(c.root, 'dst/deep/b.txt'), 'changed');
      const ignore = await x.fs('copy', { filesystem: c.fs, source: c.p('src'), destination: c.p('dst'), mode: 'IGNORE', recursive: true });
      assert.equal((await x.fs('waitUntilDone', { filesystem: c.fs, copy_operation: ignore, timeout: 0 })).state, 'DONE');
      assert.equal(readFileSync(join(c.root, 'dst/deep/b.txt'), 'utf8'), 'changed');
      const replace = await x.fs('copy', { filesystem: c.fs, source: c.p('src'), destination: c.p('dst'), mode: 'REPLACE', recursive: true });
      assert.equal((await x.fs('waitUntilDone', { filesystem: c.fs, copy_operation: replace, timeout: 0 })).state, 'DONE');
      assert.equal(readFileSync(join(c.root, 'dst/deep/b.txt'), 'utf8'), 'bee');

      // A big sparse file: cancelled long before it is copied.
      writeFileSync(join(c.root, 'big'), '');
      truncateSync(join(c.root, 'big'), 4 * 1024 * 1024 * 1024);
      const big = await x.fs('copy', { filesystem: c.fs, source: c.p('big'), destination: c.p('big.copy') });
      const early = await x.fs('waitUntilDone', { filesystem: c.fs, copy_operation: big, timeout: 50 });
      assert.equal(early.done, false);
      const cancelled = await x.fs('cancel', { filesystem: c.fs, copy_operation: big });
      assert.deepEqual([cancelled.state, cancelled.done, cancelled.error_type], ['FAILED', true, 'CANCELLED']);
      assert.ok(cancelled.bytes_copied < cancelled.bytes_to_copy);
      await x.fs('delete', { ...c.req('big.copy'), recursive: false });
      await rejectsWith(x.fs('getStatus', { filesystem: c.fs, copy_operation: { id: 'COPY-none' } }), S.NOT_FOUND, 'NoSuchCopyException');
    });
  });

  it('confines every path to the caller\'s file space: outside, "..", and links out are PERMISSION_DENIED, never touched', async (t) => {
    await withFiles(async (c) => {
      const { x, s } = c;
      const outside = join(tmpdir(), `jobwire-outside-${process.pid}-${Date.now()}`);
      mkdirSync(outside);
      t.after(() => rmSync(outside, { recursive: true, force: true }));
      writeFileSync(join(outside, 'secret'), 'secret');
      symlinkSync(outside, join(c.root, 'escape'));
      symlinkSync(join(outside, 'secret'), join(c.root, 'secret-link'));
      const denied = (p: Promise<unknown>): Promise<unknown> => rejectsWith(p, S.PERMISSION_DENIED);
      await denied(x.fs('exists', c.req('/etc/passwd')));
      await denied(x.stream('files', 'readFromFile', c.req('/etc/passwd')));
      await denied(x.stream('files', 'readFromFile', c.req('../../../../etc/passwd')));
      await denied(x.stream('files', 'list', { filesystem: c.fs, dir: c.p('/'), recursive: false }));
      await denied(x.fs('createDirectory', c.req(join(outside, 'made'))));
      await denied(x.upload('writeToFile', [{ ...c.req('escape/new.txt'), buffer: Buffer.from('x') }]));
      await denied(x.stream('files', 'readFromFile', c.req('escape/secret')));
      await denied(x.stream('files', 'readFromFile', c.req('secret-link')));
      await denied(x.upload('appendToFile', [{ ...c.req('secret-link'), buffer: Buffer.from('x') }]));
      await denied(x.fs('setPosixFilePermissions', { ...c.req('secret-link'), permissions: ['OWNER_READ'] }));
      await denied(x.fs('delete', { ...c.req(join(outside, 'secret')), recursive: false }));
      await denied(x.fs('rename', { filesystem: c.fs, source: c.p('escape/secret'), target: c.p('mine') }));
      await denied(x.fs('setWorkingDirectory', c.req('escape')));
      await denied(x.fs('copy', { filesystem: c.fs, source: c.p('secret-link'), destination: c.p('stolen') }));
      await denied(x.fs('copy', { filesystem: c.fs, source: c.p('escape'), destination: c.p('stolen'), recursive: true }));
      // The link itself lives inside: it may be inspected and removed.
      assert.equal((await x.fs('getAttributes', c.req('secret-link'))).is_symbolic_link, true);
      await x.fs('delete', { ...c.req('secret-link'), recursive: false });
      assert.equal(readFileSync(join(outside, 'secret'), 'utf8'), 'secret');
      assert.deepEqual(statSync(outside).isDirectory(), true);
      assert.equal(existsSync(join(outside, 'made')), false);
      assert.equal(existsSync(join(outside, 'new.txt')), false);
      // Another user's file space is outside too.
      const bob = await clientForUser(`127.0.0.1:${s.server.grpcPort}`, addUser(s.home, 'bob'));
      try {
        const bobFs = await bob.fs('create', { adaptor: 'file' });
        await rejectsWith(bob.fs('exists', { filesystem: bobFs, path: { path: join(c.root, 'escape') } }), S.PERMISSION_DENIED);
      } finally {
        bob.close();
      }
    });
  });
});

/**
 * Starts a process that swaps `path` between a regular file and a symbolic link to `outsideFile`
 * as fast as it can (each swap one atomic rename), until killed. Both states last about as long:
 * each is kept while the other is being prepared.
 */
function startFlipping(path: string, outsideFile: string): ChildProcess {
  const script = `
    const fs = require('node:fs');
    const [path, outside] = process.argv.slice(1);
    for (;;) {
      fs.writeFileSync(path + '.file', 'public');
      fs.renameSync(path + '.file', path);
      fs.writeFileSync(path + '.spare', '');
      fs.symlinkSync(outside, path + '.link');
      fs.renameSync(path + '.link', path);
    }`;
  return spawn(process.execPath, ['-e', script, path, outsideFile], { stdio: 'ignore' });
}

/**
 * Starts a process that swaps `path` between a folder (kept aside while away) and a symbolic
 * link to `outsideDir`, as fast as it can, until killed.
 */
function startFlippingFolder(path: string, outsideDir: string): ChildProcess {
  const script = `
    const fs = require('node:fs');
    const [path, outside] = process.argv.slice(1);
    fs.symlinkSync(outside, path + '.link');
    for (;;) {
      fs.renameSync(path, path + '.dir');
      fs.renameSync(path + '.link', path);
      fs.renameSync(path, path + '.link');
      fs.renameSync(path + '.dir', path);
    }`;
  return spawn(process.execPath, ['-e', script, path, outsideDir], { stdio: 'ignore' });
}

describe('Xenon gRPC: FileSystemService against symbolic-link races', () => {
  it('never reads a file outside the file space while a path flips between a file inside and a link out', async (t) => {
    await withFiles(async (c) => {
      const outside = mkdtempSync(join(tmpdir(), 'jobwire-secret-'));
      t.after(() => rmSync(outside, { recursive: true, force: true }));
      writeFileSync(join(outside, 'secret'), 'secret');
      writeFileSync(join(c.root, 'flip'), 'public');
      const flipper = startFlipping(join(c.root, 'flip'), join(outside, 'secret'));
      const seen = new Map<string, number>();
      try {
        for (let i = 0; i < 1500; i++) {
          let outcome: string;
          try {
            outcome = (await read(c, 'flip')).toString();
          } catch (err) {
            outcome = `error ${grpc.status[(err as RpcError).code]}`;
          }
          seen.set(outcome, (seen.get(outcome) ?? 0) + 1);
        }
      } finally {
        flipper.kill('SIGKILL');
      }
      const summary = JSON.stringify([...seen]);
      t.diagnostic(summary);
      assert.equal(seen.get('secret'), undefined, `a read escaped the file space: ${summary}`);
      assert.ok((seen.get('public') ?? 0) > 0, `reads of the file inside succeed: ${summary}`);
      assert.ok((seen.get('error PERMISSION_DENIED') ?? 0) > 0, `the link out was there during the reads: ${summary}`);
    });
  });

  it('never appends to, changes the permissions of or copies a file outside the file space while a path flips between a file inside and a link out', async (t) => {
    await withFiles(async (c) => {
      const { x } = c;
      const outside = mkdtempSync(join(tmpdir(), 'jobwire-secret-'));
      t.after(() => rmSync(outside, { recursive: true, force: true }));
      const secret = join(outside, 'secret');
      writeFileSync(secret, 'secret', { mode: 0o640 });
      writeFileSync(join(c.root, 'flip'), 'public');
      const flipper = startFlipping(join(c.root, 'flip'), secret);
      const seen = new Map<string, number>();
      const attempt = async (what: string, call: () => Promise<unknown>): Promise<unknown> => {
        let outcome = `${what} ok`;
        try {
          return await call();
        } catch (err) {
          outcome = `${what} ${grpc.status[(err as RpcError).code]}`;
          return undefined;
        } finally {
          seen.set(outcome, (seen.get(outcome) ?? 0) + 1);
        }
      };
      try {
        for (let i = 0; i < 300; i++) {
          await attempt('append', () => x.upload('appendToFile', [{ ...c.req('flip'), buffer: Buffer.from('!') }]));
          await attempt('chmod', () => x.fs('setPosixFilePermissions', { ...c.req('flip'), permissions: ['OWNER_READ', 'OWNER_WRITE'] }));
          const copy = await attempt('copy', () => x.fs('copy', { filesystem: c.fs, source: c.p('flip'), destination: c.p('copied'), mode: 'REPLACE' }));
          if (copy) await x.fs('waitUntilDone', { filesystem: c.fs, copy_operation: copy, timeout: 0 });
          if (existsSync(join(c.root, 'copied')) && readFileSync(join(c.root, 'copied'), 'utf8').startsWith('secret')) seen.set('copied the secret', 1);
        }
      } finally {
        flipper.kill('SIGKILL');
      }
      const summary = JSON.stringify([...seen]);
      t.diagnostic(summary);
      assert.deepEqual(
        { content: readFileSync(secret, 'utf8'), mode: statSync(secret).mode & 0o777, copied: seen.has('copied the secret') },
        { content: 'secret', mode: 0o640, copied: false },
        `the file outside is untouched and never copied: ${summary}`,
      );
      assert.ok((seen.get('append ok') ?? 0) > 0 && (seen.get('copy ok') ?? 0) > 0, `calls on the file inside succeed: ${summary}`);
      assert.ok((seen.get('chmod PERMISSION_DENIED') ?? 0) > 0, `the link out was there during the calls: ${summary}`);
    });
  });

  it('never writes, creates, lists or deletes in a folder outside the file space while a folder flips between inside and a link out', async (t) => {
    await withFiles(async (c) => {
      const { x } = c;
      const outside = mkdtempSync(join(tmpdir(), 'jobwire-secret-'));
      t.after(() => rmSync(outside, { recursive: true, force: true }));
      writeFileSync(join(outside, 'secret'), 'secret');
      mkdirSync(join(c.root, 'flip'));
      writeFileSync(join(c.root, 'flip', 'mine'), 'mine');
      const flipper = startFlippingFolder(join(c.root, 'flip'), outside);
      const seen = new Map<string, number>();
      const count = (outcome: string): void => void seen.set(outcome, (seen.get(outcome) ?? 0) + 1);
      const attempt = async (what: string, call: () => Promise<unknown>): Promise<unknown> => {
        try {
          const value = await call();
          count(`${what} ok`);
          return value;
        } catch (err) {
          count(`${what} ${grpc.status[(err as RpcError).code]}`);
          return undefined;
        }
      };
      try {
        for (let i = 0; i < 150; i++) {
          await attempt('write', () => x.upload('writeToFile', [{ ...c.req('flip/w'), buffer: Buffer.from('w') }]));
          await attempt('create', () => x.fs('createFile', c.req('flip/c')));
          await attempt('mkdir', () => x.fs('createDirectory', c.req('flip/d')));
          const listed = (await attempt('list', () => x.stream('files', 'list', { filesystem: c.fs, dir: c.p('flip'), recursive: false }))) as Array<{ path: { path: string } }> | undefined;
          if (listed?.some((entry) => entry.path.path.endsWith('/secret'))) count('listed the outside folder');
          // Only the folder outside has a "secret"; inside, these deletes find nothing or what was just made.
          await attempt('delete', () => x.fs('delete', { ...c.req('flip/secret'), recursive: false }));
          for (const made of ['w', 'c', 'd']) await attempt('cleanup', () => x.fs('delete', { ...c.req(`flip/${made}`), recursive: true }));
        }
      } finally {
        flipper.kill('SIGKILL');
      }
      const summary = JSON.stringify([...seen]);
      t.diagnostic(summary);
      assert.deepEqual(readdirSync(outside), ['secret'], `nothing was made or deleted outside: ${summary}`);
      assert.equal(seen.get('listed the outside folder'), undefined, summary);
      assert.ok((seen.get('write ok') ?? 0) > 0 && (seen.get('list ok') ?? 0) > 0, `calls on the folder inside succeed: ${summary}`);
      assert.ok((seen.get('write PERMISSION_DENIED') ?? 0) > 0, `the link out was there during the calls: ${summary}`);
    });
  });
});
