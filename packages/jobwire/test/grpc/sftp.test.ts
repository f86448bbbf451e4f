/**
 * The Xenon `sftp` file adaptor against a real sshd, through the gRPC service of a real server
 * with an ssh executor: the file calls, getFileSystem of an ssh scheduler, and the credentials a
 * caller may bring (a password; a key file they may read) — plus the server's own
 * `--ssh-password-file`, with a throwaway account that logs in by password.
 */
import assert from 'node:assert/strict';
import { copyFileSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client } from '@jobwire/client';
import { startServer, type ServerHandle, type ServerOptions } from '../../src/server/index.js';
import { addUser } from '../helpers.js';
import { freePort, startSshd, type TestSshd } from '../executors/sshd.js';
import { XenonClient, clientForUser, grpc, rejectsWith } from './xenon-client.js';

const S = grpc.status;
const TIMEOUT = { timeout: 90_000 };

let sshd: TestSshd;
let home: string;
let server: ServerHandle;
let x: XenonClient;
/** A folder on the "remote" host for each test. */
let area: string;

/** A server whose executor `box` is the test sshd (logged in as this account, by key). */
const boxServer = (more: ServerOptions = {}): Promise<ServerHandle> =>
  startServer({ home, port: 0, logLevel: 'silent', graceSeconds: 1, executors: [`box=${sshd.url}`], ssh: { identityFiles: [sshd.identity], knownHostsFile: sshd.knownHosts, agent: false }, grpcPort: 0, ...more });

const location = (): string => `127.0.0.1:${sshd.port}`;
const p = (path: string): { path: string } => ({ path });
const read = async (c: XenonClient, fs: object, path: string): Promise<string> =>
  Buffer.concat((await c.stream('files', 'readFromFile', { filesystem: fs, path: p(path) })).map((m) => m.buffer as Buffer)).toString();

before(async () => {
  sshd = await startSshd({ passwordUser: true });
  home = mkdtempSync(join(tmpdir(), 'jobwire-sftp-'));
  server = await boxServer();
  x = new XenonClient(`127.0.0.1:${server.grpcPort}`, { token: server.token });
});
after(async () => {
  x?.close();
  await server?.close();
  await sshd?.stop();
  for (const dir of [home, `${home}-work`]) rmSync(dir, { recursive: true, force: true });
});

describe('Xenon gRPC: the sftp adaptor', () => {
  test('is offered and described with the hosts of the ssh executors', TIMEOUT, async () => {
    assert.deepEqual((await x.fs('getAdaptorNames')).name, ['file', 'sftp']);
    const d = await x.fs('getAdaptorDescription', { name: 'sftp' });
    assert.match(d.description, new RegExp(`${sshd.user}@127\\.0\\.0\\.1:${sshd.port}`));
    assert.deepEqual(d.supported_credentials, ['DefaultCredential', 'PasswordCredential', 'CertificateCredential']);
    assert.equal(d.can_append, true);
    assert.equal(d.is_connectionless, false);
    assert.deepEqual((await x.fs('getAdaptorDescriptions')).descriptions.map((e: { name: string }) => e.name), ['file', 'sftp']);
    await rejectsWith(x.fs('create', { adaptor: 'sftp', location: 'elsewhere:22' }), S.FAILED_PRECONDITION, 'InvalidLocationException');
    await rejectsWith(x.fs('create', { adaptor: 'sftp', location: location(), properties: { 'xenon.adaptors.filesystems.sftp.strictHostKeyChecking': 'false' } }), S.NOT_FOUND, 'UnknownPropertyException');
    await rejectsWith(x.fs('create', { adaptor: 'sftp', location: location(), keytab_credential: { username: 'u', keytabfile: '/k' } }), S.FAILED_PRECONDITION, 'InvalidCredentialException');
  });

  test('with the default credential: the file calls on the host, over the executor\'s connection', TIMEOUT, async () => {
    area = mkdtempSync(join(sshd.dir, 'area-'));
    const fs = await x.fs('create', { adaptor: 'sftp', location: `${location()}${area}`, default_credential: {} });
    assert.equal((await x.fs('getAdaptorName', fs)).name, 'sftp');
    assert.equal((await x.fs('getWorkingDirectory', fs)).path, area);
    assert.equal((await x.fs('getCredential', fs)).default_credential.username, sshd.user);
    const req = (path: string) => ({ filesystem: fs, path: p(path) });

    await x.fs('createDirectories', req('a/b/c'));
    assert.ok(statSync(join(area, 'a/b/c')).isDirectory());
    await rejectsWith(x.fs('createDirectories', req('a/b')), S.ALREADY_EXISTS, 'PathAlreadyExistsException');
    await x.fs('createDirectory', req('d'));
    await rejectsWith(x.fs('createDirectory', req('d')), S.ALREADY_EXISTS, 'PathAlreadyExistsException');
    await rejectsWith(x.fs('createDirectory', req('missing/d')), S.NOT_FOUND, 'NoSuchPathException');
    await x.fs('createFile', req('d/empty'));
    await rejectsWith(x.fs('createFile', req('d/empty')), S.ALREADY_EXISTS, 'PathAlreadyExistsException');

    // Write, append, read (bigger than one read request).
    const big = 'x'.repeat(100_000);
    await x.upload('writeToFile', [{ filesystem: fs, path: p('f.txt'), buffer: Buffer.from('hello ') }, { buffer: Buffer.from(big) }]);
    await x.upload('appendToFile', [{ filesystem: fs, path: p('f.txt'), buffer: Buffer.from(' end') }]);
    assert.equal(readFileSync(join(area, 'f.txt'), 'utf8'), `hello ${big} end`);
    assert.equal(await read(x, fs, 'f.txt'), `hello ${big} end`);
    await rejectsWith(x.upload('writeToFile', [{ filesystem: fs, path: p('f.txt'), buffer: Buffer.from('again') }]), S.ALREADY_EXISTS, 'PathAlreadyExistsException');
    await rejectsWith(x.upload('appendToFile', [{ filesystem: fs, path: p('nothing.txt'), buffer: Buffer.from('x') }]), S.NOT_FOUND, 'NoSuchPathException');
    await rejectsWith(read(x, fs, 'nothing.txt'), S.NOT_FOUND, 'NoSuchPathException');
    await rejectsWith(read(x, fs, 'a'), S.FAILED_PRECONDITION, 'InvalidPathException');

    // Attributes, permissions, exists.
    const attrs = await x.fs('getAttributes', req('f.txt'));
    assert.equal(attrs.is_regular, true);
    assert.equal(attrs.size, big.length + 10);
    assert.equal(attrs.path.path, join(area, 'f.txt'));
    await x.fs('setPosixFilePermissions', { filesystem: fs, path: p('f.txt'), permissions: ['OWNER_READ', 'OWNER_WRITE', 'GROUP_READ'] });
    assert.equal(statSync(join(area, 'f.txt')).mode & 0o777, 0o640);
    assert.deepEqual((await x.fs('getAttributes', req('f.txt'))).permissions, ['OWNER_READ', 'OWNER_WRITE', 'GROUP_READ']);
    assert.equal((await x.fs('exists', req('f.txt'))).value, true);
    assert.equal((await x.fs('exists', req('nothing'))).value, false);

    // Links.
    await x.fs('createSymbolicLink', { filesystem: fs, link: p('link'), target: p('f.txt') });
    assert.equal(readlinkSync(join(area, 'link')), 'f.txt');
    assert.equal((await x.fs('readSymbolicLink', req('link'))).path, join(area, 'f.txt'));
    assert.equal((await x.fs('getAttributes', req('link'))).is_symbolic_link, true);
    await rejectsWith(x.fs('readSymbolicLink', req('f.txt')), S.FAILED_PRECONDITION, 'InvalidPathException');

    // List, recursive or not, links not followed.
    const names = async (recursive: boolean): Promise<string[]> =>
      (await x.stream('files', 'list', { filesystem: fs, dir: p(area), recursive })).map((a) => a.path.path.slice(area.length + 1)).sort();
    assert.deepEqual(await names(false), ['a', 'd', 'f.txt', 'link']);
    assert.deepEqual(await names(true), ['a', 'a/b', 'a/b/c', 'd', 'd/empty', 'f.txt', 'link']);
    await rejectsWith(x.stream('files', 'list', { filesystem: fs, dir: p('f.txt'), recursive: false }), S.FAILED_PRECONDITION, 'InvalidPathException');

    // Rename, working directory.
    await x.fs('rename', { filesystem: fs, source: p('d'), target: p('e') });
    assert.ok(statSync(join(area, 'e/empty')).isFile());
    await rejectsWith(x.fs('rename', { filesystem: fs, source: p('e'), target: p('a') }), S.ALREADY_EXISTS, 'PathAlreadyExistsException');
    await rejectsWith(x.fs('rename', { filesystem: fs, source: p('none'), target: p('z') }), S.NOT_FOUND, 'NoSuchPathException');
    await x.fs('setWorkingDirectory', req('a'));
    assert.equal((await x.fs('getWorkingDirectory', fs)).path, join(area, 'a'));
    await rejectsWith(x.fs('setWorkingDirectory', req('../f.txt')), S.FAILED_PRECONDITION, 'InvalidPathException');
    await x.fs('setWorkingDirectory', req(area));

    // Copy: a tree, then CREATE onto it fails, REPLACE works.
    writeFileSync(join(area, 'a/b/c/in.txt'), 'inside');
    const copy = await x.fs('copy', { filesystem: fs, source: p('a'), destination: p('a2'), mode: 'CREATE', recursive: true });
    const done = await x.fs('waitUntilDone', { filesystem: fs, copy_operation: copy, timeout: 30_000 });
    assert.equal(done.state, 'DONE', done.error_message);
    assert.equal(done.bytes_copied, 6);
    assert.equal(readFileSync(join(area, 'a2/b/c/in.txt'), 'utf8'), 'inside');
    const again = await x.fs('copy', { filesystem: fs, source: p('f.txt'), destination: p('e/empty'), mode: 'CREATE', recursive: false });
    const refused = await x.fs('waitUntilDone', { filesystem: fs, copy_operation: again, timeout: 30_000 });
    assert.equal(refused.error_type, 'ALREADY_EXISTS');
    const replace = await x.fs('copy', { filesystem: fs, source: p('f.txt'), destination: p('e/empty'), mode: 'REPLACE', recursive: false });
    assert.equal((await x.fs('waitUntilDone', { filesystem: fs, copy_operation: replace, timeout: 30_000 })).state, 'DONE');
    assert.equal(readFileSync(join(area, 'e/empty'), 'utf8'), `hello ${big} end`);
    const local = await x.fs('create', { adaptor: 'file', location: '' });
    await rejectsWith(x.fs('copy', { filesystem: fs, source: p('f.txt'), destination_filesystem: local, destination: p('/tmp/x'), mode: 'CREATE' }), S.UNIMPLEMENTED, 'UnsupportedOperationException');

    // Delete: a full folder only when recursive; links themselves.
    await rejectsWith(x.fs('delete', { filesystem: fs, path: p('a'), recursive: false }), S.FAILED_PRECONDITION, 'DirectoryNotEmptyException');
    await x.fs('delete', { filesystem: fs, path: p('link'), recursive: false });
    assert.ok(statSync(join(area, 'f.txt')).isFile());
    await x.fs('delete', { filesystem: fs, path: p('a'), recursive: true });
    assert.throws(() => lstatSync(join(area, 'a')), /ENOENT/);
    await rejectsWith(x.fs('delete', { filesystem: fs, path: p('a'), recursive: true }), S.NOT_FOUND, 'NoSuchPathException');

    await x.fs('close', fs);
    await rejectsWith(x.fs('exists', req('f.txt')), S.NOT_FOUND, 'FileSystemClosedException');
  });

  test('getFileSystem of an ssh scheduler is the host\'s files over sftp: a job\'s output file is there', TIMEOUT, async () => {
    const sched = await x.sched('create', { adaptor: 'ssh', location: location(), default_credential: {} });
    assert.equal((await x.sched('getAdaptorDescription', { name: 'ssh' })).uses_file_system, true);
    const fs = await x.sched('getFileSystem', sched);
    assert.equal((await x.fs('getAdaptorName', fs)).name, 'sftp');
    assert.deepEqual(await x.sched('getFileSystem', sched), fs, 'the same handle each time');
    const dir = mkdtempSync(join(sshd.dir, 'job-'));
    const job = await x.sched('submitBatchJob', { scheduler: sched, description: { executable: 'sh', arguments: ['-c', 'echo from the job'], working_directory: dir, stdout: 'out.txt' } });
    const status = await x.sched('waitUntilDone', { scheduler: sched, job, timeout: 60_000 });
    assert.equal(status.exit_code, 0, status.error_message);
    assert.equal(await read(x, fs, join(dir, 'out.txt')), 'from the job\n');
    await x.sched('close', sched);
    await rejectsWith(x.fs('isOpen', fs), S.NOT_FOUND, 'FileSystemClosedException');
  });

  test('a password credential logs in as its user, to an executor\'s host only; a wrong one is InvalidCredentialException', TIMEOUT, async () => {
    const pw = sshd.passwordUser!;
    const carol = await clientForUser(`127.0.0.1:${server.grpcPort}`, addUser(home, 'carol'));
    try {
      const fs = await carol.fs('create', { adaptor: 'sftp', location: location(), password_credential: { username: pw.name, password: pw.password } });
      assert.equal((await carol.fs('getWorkingDirectory', fs)).path, pw.home);
      const cred = await carol.fs('getCredential', fs);
      assert.equal(cred.password_credential.username, pw.name);
      assert.equal(cred.password_credential.password, '', 'the password is never sent back');
      await carol.upload('writeToFile', [{ filesystem: fs, path: p('mine.txt'), buffer: Buffer.from('by password') }]);
      const made = statSync(join(pw.home, 'mine.txt'));
      assert.equal(made.uid, statSync(pw.home).uid, 'the file belongs to the password user');
      assert.notEqual(made.uid, 0);
      // The account's rights apply: root's files are not its own.
      await rejectsWith(carol.upload('writeToFile', [{ filesystem: fs, path: p(join(sshd.dir, 'not-yours.txt')), buffer: Buffer.from('x') }]), S.PERMISSION_DENIED);
      await carol.fs('close', fs);

      await rejectsWith(carol.fs('create', { adaptor: 'sftp', location: location(), password_credential: { username: pw.name, password: 'wrong' } }), S.FAILED_PRECONDITION, 'InvalidCredentialException');
      await rejectsWith(carol.fs('create', { adaptor: 'sftp', location: location(), password_credential: { username: pw.name, password: '' } }), S.FAILED_PRECONDITION, 'InvalidCredentialException');
      // Only hosts the server was told of: no connection is made elsewhere.
      await rejectsWith(carol.fs('create', { adaptor: 'sftp', location: '127.0.0.1:1', password_credential: { username: pw.name, password: pw.password } }), S.FAILED_PRECONDITION, 'InvalidLocationException');
    } finally {
      carol.close();
    }
  });

  test('a certificate credential must name a key file the caller may read through the file adaptor', TIMEOUT, async () => {
    const carol = await clientForUser(`127.0.0.1:${server.grpcPort}`, addUser(home, 'carol'));
    try {
      // The server's own key file is outside carol's file space: refused, nothing connects.
      await rejectsWith(carol.fs('create', { adaptor: 'sftp', location: location(), certificate_credential: { username: sshd.user, certfile: sshd.identity } }), S.PERMISSION_DENIED);
      // A key she put in her file space is hers to use.
      const space = join(`${home}-work`, 'carol');
      mkdirSync(space, { recursive: true });
      copyFileSync(sshd.identity, join(space, 'my_key'));
      const fs = await carol.fs('create', { adaptor: 'sftp', location: location(), certificate_credential: { username: sshd.user, certfile: 'my_key' } });
      assert.equal((await carol.fs('getCredential', fs)).certificate_credential.certfile, 'my_key');
      assert.equal((await carol.fs('exists', { filesystem: fs, path: p(sshd.dir) })).value, true);
      await carol.fs('close', fs);
      // A key the host does not accept.
      copyFileSync(sshd.strangerIdentity, join(space, 'stranger_key'));
      await rejectsWith(carol.fs('create', { adaptor: 'sftp', location: location(), certificate_credential: { username: sshd.user, certfile: 'stranger_key' } }), S.FAILED_PRECONDITION, 'InvalidCredentialException');
      await rejectsWith(carol.fs('create', { adaptor: 'sftp', location: location(), certificate_credential: { username: sshd.user, certfile: 'no_such_key' } }), S.NOT_FOUND, 'NoSuchPathException');
      // Not a key: a folder, or a file far too big to be one (never read into memory).
      await rejectsWith(carol.fs('create', { adaptor: 'sftp', location: location(), certificate_credential: { username: sshd.user, certfile: '.' } }), S.FAILED_PRECONDITION, 'InvalidCredentialException');
      writeFileSync(join(space, 'huge'), Buffer.alloc(1024 * 1024));
      await rejectsWith(carol.fs('create', { adaptor: 'sftp', location: location(), certificate_credential: { username: sshd.user, certfile: 'huge' } }), S.FAILED_PRECONDITION, 'InvalidCredentialException');
    } finally {
      carol.close();
    }
    // The admin may name any file the server's account reads.
    const fs = await x.fs('create', { adaptor: 'sftp', location: location(), certificate_credential: { username: sshd.user, certfile: sshd.identity } });
    await x.fs('close', fs);
  });
});

describe('Xenon gRPC: sftp faults', () => {
  test('a changed host key is refused naming it; an unreachable host is NotConnectedException; the server goes on', TIMEOUT, async () => {
    const otherHome = mkdtempSync(join(tmpdir(), 'jobwire-sftp-faults-'));
    const closedPort = await freePort();
    const other = await startServer({
      home: otherHome,
      port: 0,
      logLevel: 'silent',
      graceSeconds: 1,
      executors: [`box=${sshd.url}`, `gone=ssh://${sshd.user}@127.0.0.1:${closedPort}`],
      ssh: { identityFiles: [sshd.identity], knownHostsFile: sshd.wrongKnownHosts, agent: false },
      grpcPort: 0,
    });
    const c = new XenonClient(`127.0.0.1:${other.grpcPort}`, { token: other.token });
    try {
      const changed = await rejectsWith(c.fs('create', { adaptor: 'sftp', location: location() }), S.FAILED_PRECONDITION, 'XenonException');
      assert.match(changed.details, /host key of .* has CHANGED \(ssh-ed25519 SHA256:/);
      const gone = await rejectsWith(c.fs('create', { adaptor: 'sftp', location: `127.0.0.1:${closedPort}` }), S.UNAVAILABLE, 'NotConnectedException');
      assert.match(gone.details, /ECONNREFUSED/);
      assert.deepEqual((await c.fs('listFileSystems')).filesystems, [], 'no handle was left behind');
      const local = await c.fs('create', { adaptor: 'file', location: '' });
      assert.equal((await c.fs('exists', { filesystem: local, path: p(otherHome) })).value, true);
    } finally {
      c.close();
      await other.close();
      for (const dir of [otherHome, `${otherHome}-work`]) rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('--ssh-password-file', () => {
  test('an ssh executor logs in with the password of the file, and its jobs run as that account', TIMEOUT, async () => {
    const pw = sshd.passwordUser!;
    const pwHome = mkdtempSync(join(tmpdir(), 'jobwire-sshpw-'));
    const passwordFile = join(pwHome, 'password');
    writeFileSync(passwordFile, `${pw.password}\n`, { mode: 0o600 });
    const other = await startServer({
      home: pwHome,
      port: 0,
      logLevel: 'silent',
      graceSeconds: 1,
      executors: [`pw=ssh://${pw.name}@127.0.0.1:${sshd.port}`],
      ssh: { identityFiles: [], passwordFile, knownHostsFile: sshd.knownHosts, agent: false },
    });
    try {
      const client = new Client({ url: other.url, token: other.token });
      const job = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'id -un; pwd'], executor: 'pw', workingDirectory: pw.home });
      const done = await client.waitUntilDone(job.id, 60_000);
      assert.equal(done.status, 'Success', done.error ?? '');
      assert.equal(Buffer.from((await client.readOutput(job.id)).data).toString(), `${pw.name}\n${pw.home}\n`);
      // A wrong password fails the job with the reason, naming the file.
      writeFileSync(passwordFile, 'wrong\n');
      await other.close();
      const again = await startServer({ home: pwHome, port: 0, logLevel: 'silent', graceSeconds: 1, executors: [`pw=ssh://${pw.name}@127.0.0.1:${sshd.port}`], ssh: { identityFiles: [], passwordFile, knownHostsFile: sshd.knownHosts, agent: false } });
      try {
        const c2 = new Client({ url: again.url, token: again.token });
        const refused = await c2.waitUntilDone((await c2.submitBatchJob({ executable: 'true', executor: 'pw' })).id, 60_000);
        assert.equal(refused.status, 'Failed');
        assert.match(refused.error ?? '', new RegExp(`authentication to ${pw.name}@127\\.0\\.0\\.1:${sshd.port} refused \\(tried: password from ${passwordFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\)`));
      } finally {
        await again.close();
      }
    } finally {
      await other.close().catch(() => undefined);
      for (const dir of [pwHome, `${pwHome}-work`]) rmSync(dir, { recursive: true, force: true });
    }
  });
});
