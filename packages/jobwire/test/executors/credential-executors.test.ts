/**
 * The executors of Xenon schedulers with a caller's own credential (credential-executors.ts),
 * without a host: one name per credential and never another's, what is remembered in the home
 * (never a password), made again by a new server on the same home, usable only by the users who
 * gave the credential — and a key file read again only when its path still leads to it.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { CredentialExecutors, MAX_KEY_BYTES, readKeyFile } from '../../src/executors/credential-executors.js';
import { LocalExecutor } from '../../src/executors/local/index.js';
import { NamedExecutors, type ExecutorFactoryContext } from '../../src/executors/registry.js';
import { SshConnection } from '../../src/executors/ssh/connection.js';

const dir = mkdtempSync(join(tmpdir(), 'jobwire-cred-exec-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const context: ExecutorFactoryContext = { ssh: { agent: false }, sshConnection: (target) => new SshConnection(target) };
const target = { user: 'someone', host: '127.0.0.1', port: 2222 };

describe('credential executors', () => {
  test('one name per credential; the same credential finds it again; nothing secret on disk', () => {
    const home = mkdtempSync(join(dir, 'home-'));
    const named = new NamedExecutors(new LocalExecutor());
    const executors = new CredentialExecutors(home, named, context);
    try {
      const a = executors.executorFor({ user: 'carol', adaptor: 'ssh', target, password: 'secret-one' });
      assert.match(a, /^xenon\.ssh\.[0-9a-f]{24}$/);
      assert.equal(executors.executorFor({ user: 'carol', adaptor: 'ssh', target, password: 'secret-one' }), a);
      assert.notEqual(executors.executorFor({ user: 'carol', adaptor: 'ssh', target, password: 'secret-two' }), a, 'another password, another executor');
      assert.notEqual(executors.executorFor({ user: 'carol', adaptor: 'ssh', target: { ...target, user: 'other' }, password: 'secret-one' }), a, 'another user, another executor');
      for (const file of readdirSync(home)) {
        const text = readFileSync(join(home, file));
        assert.ok(!text.includes('secret-one') && !text.includes('secret-two'), `${file} holds no password`);
        assert.equal(statSync(join(home, file)).mode & 0o777, 0o600, `${file} is private`);
      }
      // Only the users who gave the credential may run jobs on it.
      named.check({ executable: 'true', executor: a }, 'carol');
      assert.throws(() => named.check({ executable: 'true', executor: a }, 'dave'), /for you/);
    } finally {
      executors.close();
      named.close();
    }
  });

  test('a new server on the same home makes them again, with their users; a password one says it waits for the password', async () => {
    const home = mkdtempSync(join(dir, 'home-'));
    const key = join(dir, 'some_key');
    writeFileSync(key, 'not really a key');
    const first = new NamedExecutors(new LocalExecutor());
    const made = new CredentialExecutors(home, first, context);
    const pw = made.executorFor({ user: 'carol', adaptor: 'ssh', target, password: 'pw' });
    const cert = made.executorFor({ user: 'erin', adaptor: 'slurm', target, keyFile: { path: key } });
    made.close();
    first.close();
    const remembered = JSON.parse(readFileSync(join(home, 'xenon-executors.json'), 'utf8')) as Record<string, { kind: string; keyPath?: string; users: string[] }>;
    assert.deepEqual(remembered[pw], { url: `ssh://someone@127.0.0.1:2222`, kind: 'password', users: ['carol'] });
    assert.equal(remembered[cert]?.keyPath, key);

    const again = new NamedExecutors(new LocalExecutor());
    const restarted = new CredentialExecutors(home, again, context);
    try {
      assert.ok(again.get(pw) !== undefined && again.get(cert) !== undefined);
      again.pick({ executable: 'true', executor: pw }, 'carol');
      assert.throws(() => again.pick({ executable: 'true', executor: pw }, 'erin'), /for you/);
      const connection = (again.get(pw) as unknown as { connection: SshConnection }).connection;
      await assert.rejects(connection.connect(), /has not been given again since the jobwire server restarted/);
      // The same credential again names the same executor.
      assert.equal(restarted.executorFor({ user: 'carol', adaptor: 'ssh', target, password: 'pw' }), pw);
    } finally {
      restarted.close();
      again.close();
    }
  });
});

describe('readKeyFile', () => {
  test('reads the file at its path; refuses a link in its place or above it, a folder, a file too big', () => {
    const keys = mkdtempSync(join(dir, 'keys-'));
    mkdirSync(join(keys, 'mine'));
    const path = join(keys, 'mine', 'id');
    writeFileSync(path, 'KEY');
    assert.equal(readKeyFile(path).toString(), 'KEY');

    // Someone else's key behind a link put in its place.
    mkdirSync(join(keys, 'theirs'));
    writeFileSync(join(keys, 'theirs', 'id'), 'THEIR KEY');
    rmSync(path);
    symlinkSync(join(keys, 'theirs', 'id'), path);
    assert.throws(() => readKeyFile(path), /ELOOP|symbolic link/);

    // The folder above it replaced by a link.
    renameSync(join(keys, 'mine'), join(keys, 'old'));
    symlinkSync(join(keys, 'theirs'), join(keys, 'mine'));
    assert.throws(() => readKeyFile(path), /now leads to/);

    assert.throws(() => readKeyFile(join(keys, 'theirs')), /not a regular file/);
    writeFileSync(join(keys, 'huge'), Buffer.alloc(MAX_KEY_BYTES + 1));
    assert.throws(() => readKeyFile(join(keys, 'huge')), /too big/);
  });
});
