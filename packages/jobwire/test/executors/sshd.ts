/**
 * A real OpenSSH server for tests: Debian's `/usr/sbin/sshd` on a free 127.0.0.1 port, with a
 * throwaway host key, user key, authorized_keys and known_hosts in a temporary folder. Login by
 * key only (root too, as the tests run as root in CI).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../redis-env.js';

export { freePort };

/** A running test sshd. */
export interface TestSshd {
  port: number;
  /** `ssh://user@127.0.0.1:port` */
  url: string;
  user: string;
  /** The user's private key. */
  identity: string;
  /** known_hosts holding the server's host key. */
  knownHosts: string;
  /** A known_hosts file with another key for the same host. */
  wrongKnownHosts: string;
  /** A private key the server does not accept. */
  strangerIdentity: string;
  /** The temporary folder (removed by stop). */
  dir: string;
  /** With `passwordUser`: a throwaway account that logs in by password (removed by stop). */
  passwordUser?: { name: string; password: string; home: string };
  /** Kills the sshd processes serving connections (not the listener): every connection drops. */
  cutConnections(): number;
  /** Options for plain `ssh` to reach this server (for baselines). */
  sshArgs: string[];
  stop(): Promise<void>;
}

/** The pids whose parent is `ppid`. */
export function childrenOf(ppid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === ppid) found.push(Number(entry));
    } catch {
      // gone
    }
  }
  return found;
}

/** Options of {@link startSshd}. */
export interface SshdOptions {
  /** Variables sshd sets in every session (its `SetEnv`), e.g. `SLURM_CONF` for a login node of the test cluster. */
  env?: Record<string, string>;
  /** Make a throwaway OS account (needs root) and let it log in by password. @defaultValue false */
  passwordUser?: boolean;
}

/** Starts an sshd; resolves once it accepts connections. */
export async function startSshd(options: SshdOptions = {}): Promise<TestSshd> {
  const dir = mkdtempSync(join(tmpdir(), 'jobwire-sshd-'));
  const keygen = (file: string): void => {
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'jobwire-test', '-f', file]);
  };
  keygen(join(dir, 'host_key'));
  keygen(join(dir, 'other_host_key'));
  keygen(join(dir, 'user_key'));
  keygen(join(dir, 'stranger_key'));
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'user_key.pub')));
  const port = await freePort();
  const user = userInfo().username;
  let passwordUser: TestSshd['passwordUser'];
  if (options.passwordUser === true) {
    const name = `jwpw${randomBytes(4).toString('hex')}`;
    const home = join(dir, name);
    execFileSync('useradd', ['-M', '-d', home, '-s', '/bin/sh', '-U', name]);
    chmodSync(dir, 0o711);
    execFileSync('mkdir', ['-p', home]);
    execFileSync('chown', [`${name}:${name}`, home]);
    const password = randomBytes(12).toString('hex');
    execFileSync('chpasswd', [], { input: `${name}:${password}\n` });
    passwordUser = { name, password, home };
  }
  const removeUser = (): void => {
    if (passwordUser !== undefined) execFileSync('userdel', ['-f', passwordUser.name], { stdio: 'ignore' });
  };
  const hostLine = (pub: string): string => `[127.0.0.1]:${port} ${readFileSync(pub, 'utf8').trim().split(' ').slice(0, 2).join(' ')}\n`;
  writeFileSync(join(dir, 'known_hosts'), hostLine(join(dir, 'host_key.pub')));
  writeFileSync(join(dir, 'wrong_known_hosts'), hostLine(join(dir, 'other_host_key.pub')));
  writeFileSync(
    join(dir, 'sshd_config'),
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(dir, 'host_key')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'PermitRootLogin prohibit-password',
      `PasswordAuthentication ${passwordUser !== undefined ? 'yes' : 'no'}`,
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'MaxSessions 100',
      'MaxStartups 100:30:200',
      'LogLevel ERROR',
      'Subsystem sftp internal-sftp',
      // Bash sources ~/.bashrc for commands run by sshd unless SHLVL says it is nested; this
      // machine's root .bashrc runs `pyenv init`, a second per session. Not what is tested here.
      `SetEnv SHLVL=1${Object.entries(options.env ?? {}).map(([name, value]) => ` ${name}=${value}`).join('')}`,
      '',
    ].join('\n'),
  );
  // sshd wants its privilege-separation folder.
  execFileSync('mkdir', ['-p', '/run/sshd']);
  const child: ChildProcess = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (d: Buffer) => {
    log += d.toString();
  });
  const deadline = Date.now() + 10_000;
  const knownHosts = join(dir, 'known_hosts');
  const sshArgs = ['-p', String(port), '-i', join(dir, 'user_key'), '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', `${user}@127.0.0.1`];
  for (;;) {
    try {
      execFileSync('ssh', [...sshArgs, 'true'], { stdio: 'ignore', timeout: 5000 });
      break;
    } catch (err) {
      if (child.exitCode !== null || Date.now() > deadline) {
        child.kill('SIGKILL');
        removeUser();
        rmSync(dir, { recursive: true, force: true });
        throw new Error(`sshd did not start: ${log}`, { cause: err });
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  const cutConnections = (): number => {
    const pids = childrenOf(child.pid!);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    return pids.length;
  };
  return {
    port,
    url: `ssh://${user}@127.0.0.1:${port}`,
    user,
    identity: join(dir, 'user_key'),
    knownHosts,
    wrongKnownHosts: join(dir, 'wrong_known_hosts'),
    strangerIdentity: join(dir, 'stranger_key'),
    dir,
    ...(passwordUser !== undefined ? { passwordUser } : {}),
    sshArgs,
    cutConnections,
    async stop() {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      // The connections first: sshd leaves them running when the listener stops.
      cutConnections();
      child.kill('SIGTERM');
      if (child.exitCode === null) await exited;
      removeUser();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
