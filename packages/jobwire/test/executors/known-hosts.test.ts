/**
 * Host keys checked as OpenSSH checks them: plain, `[host]:port`, hashed and wildcard entries,
 * revoked keys, and refusals that carry the key's fingerprint (as `ssh-keygen -l` prints it).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { checkHostKey, fingerprint } from '../../src/executors/ssh/known-hosts.js';

let dir: string;
/** Two ed25519 public keys: [type, base64, blob]. */
let keys: { type: string; base64: string; blob: Buffer; sshKeygenPrint: string }[];

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'jobwire-known-hosts-'));
  keys = ['a', 'b'].map((name) => {
    const file = join(dir, name);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', file]);
    const [type, base64] = readFileSync(`${file}.pub`, 'utf8').trim().split(' ') as [string, string];
    const sshKeygenPrint = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${file}.pub`], { encoding: 'utf8' }).split(' ')[1]!;
    return { type, base64, blob: Buffer.from(base64, 'base64'), sshKeygenPrint };
  });
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** A known_hosts file with `lines`. */
function knownHosts(...lines: string[]): string {
  const file = join(dir, `kh-${randomBytes(4).toString('hex')}`);
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

describe('known_hosts', () => {
  test('the fingerprint is the one ssh-keygen prints', () => {
    assert.equal(fingerprint(keys[0]!.blob), keys[0]!.sshKeygenPrint);
  });

  test('accepts plain, [host]:port, listed and wildcard entries', () => {
    const [a] = keys;
    assert.equal(checkHostKey(knownHosts(`lab ${a!.type} ${a!.base64}`), 'lab', 22, a!.blob), undefined);
    assert.equal(checkHostKey(knownHosts(`[lab]:2222 ${a!.type} ${a!.base64}`), 'lab', 2222, a!.blob), undefined);
    assert.equal(checkHostKey(knownHosts(`# comment`, `other,lab,10.0.0.1 ${a!.type} ${a!.base64}`), '10.0.0.1', 22, a!.blob), undefined);
    assert.equal(checkHostKey(knownHosts(`*.example.org ${a!.type} ${a!.base64}`), 'node7.example.org', 22, a!.blob), undefined);
    assert.ok(checkHostKey(knownHosts(`*.example.org,!bad.example.org ${a!.type} ${a!.base64}`), 'bad.example.org', 22, a!.blob));
    assert.ok(checkHostKey(knownHosts(`lab ${a!.type} ${a!.base64}`), 'lab', 2222, a!.blob), 'port 2222 needs a [lab]:2222 entry');
  });

  test('accepts hashed entries (HashKnownHosts)', () => {
    const [a] = keys;
    const salt = randomBytes(20);
    const hash = createHmac('sha1', salt).update('[lab]:2222').digest('base64');
    assert.equal(checkHostKey(knownHosts(`|1|${salt.toString('base64')}|${hash} ${a!.type} ${a!.base64}`), 'lab', 2222, a!.blob), undefined);
    assert.ok(checkHostKey(knownHosts(`|1|${salt.toString('base64')}|${hash} ${a!.type} ${a!.base64}`), 'lab', 22, a!.blob));
  });

  test('refuses an unknown host, a changed key and a revoked key, with the fingerprint', () => {
    const [a, b] = keys;
    const unknown = checkHostKey(knownHosts(`other ${a!.type} ${a!.base64}`), 'lab', 22, a!.blob);
    assert.match(unknown?.message ?? '', new RegExp(`^host key of lab \\(ssh-ed25519 ${escape(a!.sshKeygenPrint)}\\) is not in .*: refused`));
    const changed = checkHostKey(knownHosts(`lab ${b!.type} ${b!.base64}`), 'lab', 22, a!.blob);
    assert.match(changed?.message ?? '', new RegExp(`^host key of lab has CHANGED \\(ssh-ed25519 ${escape(a!.sshKeygenPrint)} is not the key`));
    const revoked = checkHostKey(knownHosts(`@revoked lab ${a!.type} ${a!.base64}`, `lab ${a!.type} ${a!.base64}`), 'lab', 22, a!.blob);
    assert.match(revoked?.message ?? '', /is marked revoked/);
    const missing = checkHostKey(join(dir, 'none'), 'lab', 22, a!.blob);
    assert.match(missing?.message ?? '', /known_hosts file .*none is unreadable \(ENOENT\)/);
  });
});

/** `text` as a literal in a RegExp. */
function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
