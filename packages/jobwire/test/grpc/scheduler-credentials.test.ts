/**
 * Xenon ssh schedulers created with the caller's own credential (a password; a key file in the
 * caller's file space), against a real sshd through the gRPC service of a real server whose ssh
 * executor `box` is that sshd: jobs run logged in with that credential, on a connection of that
 * credential's own; what cannot be used is refused before anything starts; a wrong password fails
 * the job naming the refused authentication; a restarted server follows a certificate
 * scheduler's job again by reading its key file again.
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client } from '@jobwire/client';
import { startServer, type ServerHandle, type ServerOptions } from '../../src/server/index.js';
import { addUser } from '../helpers.js';
import { startSshd, type TestSshd } from '../executors/sshd.js';
import { XenonClient, clientForUser, grpc, rejectsWith } from './xenon-client.js';

const S = grpc.status;
const TIMEOUT = { timeout: 120_000 };

let sshd: TestSshd;
let home: string;
let server: ServerHandle;
let x: XenonClient;

/** A server whose executor `box` is the test sshd (logged in as this account, by key). */
const boxServer = (more: ServerOptions = {}): Promise<ServerHandle> =>
  startServer({ home, port: 0, logLevel: 'silent', graceSeconds: 1, executors: [`box=${sshd.url}`], ssh: { identityFiles: [sshd.identity], knownHostsFile: sshd.knownHosts, agent: false }, grpcPort: 0, ...more });

const location = (): string => `127.0.0.1:${sshd.port}`;
/** Resolves once the job's first output line is stored (it is followed, its state on the host recorded). */
async function firstLine(token: string, id: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!Buffer.from((await new Client({ url: server.url, token }).readOutput(id)).data).toString().includes('one\n')) {
    assert.ok(Date.now() < deadline, 'the job wrote its first line');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** carol's file space on the server. */
const carolSpace = (): string => join(`${home}-work`, 'carol');

before(async () => {
  sshd = await startSshd({ passwordUser: true });
  home = mkdtempSync(join(tmpdir(), 'jobwire-sched-cred-'));
  server = await boxServer();
  x = new XenonClient(`127.0.0.1:${server.grpcPort}`, { token: server.token });
  mkdirSync(carolSpace(), { recursive: true });
});
after(async () => {
  x?.close();
  await server?.close();
  await sshd?.stop();
  for (const dir of [home, `${home}-work`]) rmSync(dir, { recursive: true, force: true });
});

describe('Xenon gRPC: ssh schedulers with the caller\'s own credential', () => {
  test('the ssh adaptor lists the password and certificate credentials', TIMEOUT, async () => {
    const d = await x.sched('getAdaptorDescription', { name: 'ssh' });
    assert.deepEqual(d.supported_credentials, ['DefaultCredential', 'PasswordCredential', 'CertificateCredential']);
    const all = (await x.sched('getAdaptorDescriptions')).descriptions as { name: string; supported_credentials: string[] }[];
    assert.deepEqual(all.find((e) => e.name === 'ssh')?.supported_credentials, ['DefaultCredential', 'PasswordCredential', 'CertificateCredential']);
    await rejectsWith(x.sched('create', { adaptor: 'ssh', location: location(), keytab_credential: { username: 'u', keytabfile: '/k' } }), S.FAILED_PRECONDITION, 'InvalidCredentialException');
    await rejectsWith(x.sched('create', { adaptor: 'local', location: '', password_credential: { username: 'u', password: 'p' } }), S.FAILED_PRECONDITION, 'InvalidCredentialException');
  });

  test('a password credential: the job runs as its user (output, exit code); the password is never sent back', TIMEOUT, async () => {
    const pw = sshd.passwordUser!;
    const carol = await clientForUser(`127.0.0.1:${server.grpcPort}`, addUser(home, 'carol'));
    try {
      const sched = await carol.sched('create', { adaptor: 'ssh', location: location(), password_credential: { username: pw.name, password: pw.password } });
      const cred = await carol.sched('getCredential', sched);
      assert.equal(cred.password_credential.username, pw.name);
      assert.equal(cred.password_credential.password, '', 'the password is never sent back');
      const job = await carol.sched('submitBatchJob', { scheduler: sched, description: { executable: 'sh', arguments: ['-c', 'id -un; exit 3'], working_directory: pw.home, stdout: 'who.txt' } });
      const status = await carol.sched('waitUntilDone', { scheduler: sched, job, timeout: 60_000 });
      assert.equal(status.exit_code, 3, status.error_message);
      assert.equal(readFileSync(join(pw.home, 'who.txt'), 'utf8'), `${pw.name}\n`, 'the job ran as the password user');
      // A second scheduler with the same credential shares the executor (one connection per credential).
      const again = await carol.sched('create', { adaptor: 'ssh', location: location(), password_credential: { username: pw.name, password: pw.password } });
      // The user may be named in the location instead (another account than the executor's: same host only).
      const byLocation = await carol.sched('create', { adaptor: 'ssh', location: `${pw.name}@${location()}`, password_credential: { username: '', password: pw.password } });
      assert.equal((await carol.sched('getCredential', byLocation)).password_credential.username, pw.name);
      await carol.sched('close', byLocation);
      const job2 = await carol.sched('submitBatchJob', { scheduler: again, description: { executable: 'true' } });
      assert.equal((await carol.sched('waitUntilDone', { scheduler: again, job: job2, timeout: 60_000 })).exit_code, 0);
      const names = (await new Client({ url: server.url, token: server.token }).getExecutors()).map((e) => e.name).filter((n) => n.startsWith('xenon.'));
      assert.equal(names.length, 1, `one executor for one credential: ${names.join(', ')}`);
      // The password is not kept on disk.
      for (const file of readdirSync(home).filter((f) => f.startsWith('xenon-'))) assert.ok(!readFileSync(join(home, file)).includes(pw.password), `${file} holds no password`);
      await carol.sched('close', sched);
      await carol.sched('close', again);
    } finally {
      carol.close();
    }
  });

  test('another jobwire user cannot run jobs on a credential executor by naming it', TIMEOUT, async () => {
    const names = (await new Client({ url: server.url, token: server.token }).getExecutors()).map((e) => e.name).filter((n) => n.startsWith('xenon.'));
    assert.ok(names.length > 0);
    const daveToken = addUser(home, 'dave');
    (await clientForUser(`127.0.0.1:${server.grpcPort}`, daveToken)).close(); // the server has read the new token
    const dave = new Client({ url: server.url, token: daveToken });
    await assert.rejects(dave.submitBatchJob({ executable: 'true', executor: names[0]! }), /no executor named .* for you/);
  });

  test('a wrong password: the job fails naming the refused authentication', TIMEOUT, async () => {
    const pw = sshd.passwordUser!;
    const carol = await clientForUser(`127.0.0.1:${server.grpcPort}`, addUser(home, 'carol'));
    try {
      const sched = await carol.sched('create', { adaptor: 'ssh', location: location(), password_credential: { username: pw.name, password: 'wrong' } });
      const job = await carol.sched('submitBatchJob', { scheduler: sched, description: { executable: 'true' } });
      const status = await carol.sched('waitUntilDone', { scheduler: sched, job, timeout: 60_000 });
      assert.equal(status.done, true);
      assert.match(status.error_message, /authentication to .* refused/);
      await rejectsWith(carol.sched('create', { adaptor: 'ssh', location: location(), password_credential: { username: pw.name, password: '' } }), S.FAILED_PRECONDITION, 'InvalidCredentialException');
      // Only hosts the server was told of.
      await rejectsWith(carol.sched('create', { adaptor: 'ssh', location: '127.0.0.1:1', password_credential: { username: pw.name, password: pw.password } }), S.FAILED_PRECONDITION, 'InvalidLocationException');
    } finally {
      carol.close();
    }
  });

  test('a certificate credential: a key file in the caller\'s file space; one outside it is refused and nothing starts', TIMEOUT, async () => {
    const carol = await clientForUser(`127.0.0.1:${server.grpcPort}`, addUser(home, 'carol'));
    try {
      const before = (await new Client({ url: server.url, token: server.token }).getExecutors()).length;
      // The server's own key file is outside carol's file space: refused, no executor made.
      await rejectsWith(carol.sched('create', { adaptor: 'ssh', location: location(), certificate_credential: { username: sshd.user, certfile: sshd.identity } }), S.FAILED_PRECONDITION, 'InvalidCredentialException');
      await rejectsWith(carol.sched('create', { adaptor: 'ssh', location: location(), certificate_credential: { username: sshd.user, certfile: 'no_such_key' } }), S.FAILED_PRECONDITION, 'InvalidCredentialException');
      await rejectsWith(carol.sched('create', { adaptor: 'ssh', location: location(), certificate_credential: { username: sshd.user, certfile: '.' } }), S.FAILED_PRECONDITION, 'InvalidCredentialException');
      assert.equal((await new Client({ url: server.url, token: server.token }).getExecutors()).length, before, 'nothing was made');

      copyFileSync(sshd.identity, join(carolSpace(), 'my_key'));
      const sched = await carol.sched('create', { adaptor: 'ssh', location: location(), certificate_credential: { username: sshd.user, certfile: 'my_key' } });
      const cred = await carol.sched('getCredential', sched);
      assert.equal(cred.certificate_credential.username, sshd.user);
      assert.equal(cred.certificate_credential.certfile, 'my_key');
      const dir = mkdtempSync(join(sshd.dir, 'cert-job-'));
      const job = await carol.sched('submitBatchJob', { scheduler: sched, description: { executable: 'sh', arguments: ['-c', 'echo by key; exit 5'], working_directory: dir, stdout: 'out.txt' } });
      const status = await carol.sched('waitUntilDone', { scheduler: sched, job, timeout: 60_000 });
      assert.equal(status.exit_code, 5, status.error_message);
      assert.equal(readFileSync(join(dir, 'out.txt'), 'utf8'), 'by key\n');
      // getFileSystem: the host's files over sftp, with the same credential.
      const fs = await carol.sched('getFileSystem', sched);
      assert.equal((await carol.fs('getAdaptorName', fs)).name, 'sftp');
      assert.equal((await carol.fs('getCredential', fs)).certificate_credential.certfile, 'my_key');
      assert.equal((await carol.fs('exists', { filesystem: fs, path: { path: join(dir, 'out.txt') } })).value, true);
      await carol.sched('close', sched);
    } finally {
      carol.close();
    }
  });

  test('a restarted server reads the key file again and follows a certificate scheduler\'s job to its end; with the key file gone, the job ends Lost naming it', TIMEOUT, async () => {
    copyFileSync(sshd.identity, join(carolSpace(), 'restart_key'));
    const token = addUser(home, 'carol');
    const dir = mkdtempSync(join(sshd.dir, 'restart-job-'));
    let id: string;
    let carol = await clientForUser(`127.0.0.1:${server.grpcPort}`, token);
    try {
      const sched = await carol.sched('create', { adaptor: 'ssh', location: location(), certificate_credential: { username: sshd.user, certfile: 'restart_key' } });
      const job = await carol.sched('submitBatchJob', { scheduler: sched, description: { executable: 'sh', arguments: ['-c', 'echo one; sleep 4; echo two; exit 7'], working_directory: dir } });
      id = job.id;
      assert.equal((await carol.sched('waitUntilRunning', { scheduler: sched, job, timeout: 60_000 })).running, true);
      await firstLine(token, id);
    } finally {
      carol.close();
    }
    x.close();
    await server.close();
    server = await boxServer();
    x = new XenonClient(`127.0.0.1:${server.grpcPort}`, { token: server.token });
    const rest = new Client({ url: server.url, token });
    const done = await rest.waitUntilDone(id!, 60_000);
    assert.equal(done.exitCode, 7, JSON.stringify(done));
    assert.equal(Buffer.from((await rest.readOutput(id!)).data).toString(), 'one\ntwo\n');
    assert.ok(statSync(join(home, 'xenon-executors.json')).mode % 0o1000 === 0o600);

    // The key file gone by the next restart: the job cannot be followed and ends Lost past the bound, naming the key file.
    carol = await clientForUser(`127.0.0.1:${server.grpcPort}`, token);
    let second: string;
    try {
      const sched = await carol.sched('create', { adaptor: 'ssh', location: location(), certificate_credential: { username: sshd.user, certfile: 'restart_key' } });
      const job = await carol.sched('submitBatchJob', { scheduler: sched, description: { executable: 'sh', arguments: ['-c', 'echo one; sleep 4'], working_directory: dir } });
      second = job.id;
      await firstLine(token, second);
    } finally {
      carol.close();
    }
    x.close();
    await server.close();
    rmSync(join(carolSpace(), 'restart_key'));
    server = await boxServer({ remoteLostAfterMs: 2000 });
    x = new XenonClient(`127.0.0.1:${server.grpcPort}`, { token: server.token });
    const lost = await new Client({ url: server.url, token }).waitUntilDone(second!, 60_000);
    assert.equal(lost.status, 'Lost', JSON.stringify(lost));
    assert.match(lost.error ?? '', /the key file .*restart_key cannot be used/);
  });
  test('a restarted server follows a password scheduler\'s job once the same credential is given again; never given, it ends Lost saying why', TIMEOUT, async () => {
    const pw = sshd.passwordUser!;
    const token = addUser(home, 'carol');
    const credential = { username: pw.name, password: pw.password };
    /** Submits a job that writes `file` in the password user's home at its end; resolves once its first line is out. */
    const startJob = async (file: string): Promise<string> => {
      const carol = await clientForUser(`127.0.0.1:${server.grpcPort}`, token);
      try {
        const sched = await carol.sched('create', { adaptor: 'ssh', location: location(), password_credential: credential });
        const job = await carol.sched('submitBatchJob', { scheduler: sched, description: { executable: 'sh', arguments: ['-c', `echo one; sleep 4; echo two > ${file}; exit 4`], working_directory: pw.home } });
        await firstLine(token, job.id);
        return job.id as string;
      } finally {
        carol.close();
      }
    };
    const restart = async (more: ServerOptions): Promise<Client> => {
      x.close();
      await server.close();
      server = await boxServer(more);
      x = new XenonClient(`127.0.0.1:${server.grpcPort}`, { token: server.token });
      return new Client({ url: server.url, token: server.token });
    };

    const first = await startJob('pw-restart-1.txt');
    let admin = await restart({ remoteLostAfterMs: 90_000 });
    // No password since the restart: the job waits, its executor says why.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const own = (await admin.getExecutors()).filter((e) => e.name.startsWith('xenon.ssh.') && e.url.includes(`${pw.name}@`));
      if (own.some((e) => /has not been given again/.test(e.reason ?? ''))) break;
      assert.ok(Date.now() < deadline, `the executor says why it cannot connect: ${JSON.stringify(own)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const mine = (): Client => new Client({ url: server.url, token });
    assert.equal((await mine().getJobStatus(first)).status, 'Running');
    // The same credential again: the job is followed to its end.
    const carol = await clientForUser(`127.0.0.1:${server.grpcPort}`, token);
    await carol.sched('create', { adaptor: 'ssh', location: location(), password_credential: credential });
    carol.close();
    const done = await mine().waitUntilDone(first, 60_000);
    assert.equal(done.exitCode, 4, JSON.stringify(done));
    assert.equal(Buffer.from((await mine().readOutput(first)).data).toString(), 'one\n');
    assert.equal(readFileSync(join(pw.home, 'pw-restart-1.txt'), 'utf8'), 'two\n', 'the job ran to its end as the password user');

    // Never given again: Lost past the bound, with the reason.
    const second = await startJob('pw-restart-2.txt');
    admin = await restart({ remoteLostAfterMs: 2000 });
    const lost = await mine().waitUntilDone(second, 60_000);
    assert.equal(lost.status, 'Lost', JSON.stringify(lost));
    assert.match(lost.error ?? '', /has not been given again since the jobwire server restarted/);
  });
});
