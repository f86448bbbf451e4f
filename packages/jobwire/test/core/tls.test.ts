import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Client, ConnectionError, type JobEvent } from '@jobwire/client';
import { CLI, collect, concat, makeCertificates, makeSelfSigned, runCli, sleepUntil, startServerProcess, removeHome, tempHome, withServer } from '../helpers.js';

/** A folder for certificates, removed after `fn`. */
async function withCertDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = tempHome('jobwire-tls-');
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** GET over HTTPS trusting `ca`, with node:https (no SDK involved). */
function httpsGet(url: string, ca: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** `jobwire server ARGS` expected to fail at start: its exit code and stderr. */
function serverFails(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CLI, 'server', '--port', '0', '--log-level', 'warn', ...args], { timeout: 20_000 }, (err, _stdout, stderr) => {
      if (!err) return reject(new Error('the server started'));
      const code = (err as { code?: unknown }).code;
      resolve({ code: typeof code === 'number' ? code : null, stderr });
    });
  });
}

describe('REST and WebSocket API over TLS', () => {
  it('over HTTPS with a self-signed certificate, the SDK with `ca` submits a job, attaches over wss and reads its output and exit code', async () => {
    await withCertDir(async (dir) => {
      const { cert, key } = makeSelfSigned(dir);
      await withServer(
        async (s) => {
          assert.match(s.url, /^https:\/\/127\.0\.0\.1:\d+$/);
          // The CA as a Buffer, as read from a file.
          const client = new Client({ url: s.url, token: s.token, ca: readFileSync(cert) });
          const job = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'echo over tls; echo to stderr >&2; exit 3'] });
          const att = await client.attach(job.id);
          const chunks = await collect(att.output);
          const exit = await att.exit;
          assert.equal(exit.exitCode, 3);
          assert.equal(exit.status, 'Failed');
          assert.equal(concat(chunks.filter((c) => c.channel === 'stdout').map((c) => c.data)).toString(), 'over tls\n');
          assert.equal(concat(chunks.filter((c) => c.channel === 'stderr').map((c) => c.data)).toString(), 'to stderr\n');
          const stored = await client.readOutput(job.id, 'stdout');
          assert.equal(Buffer.from(stored.data).toString(), 'over tls\n');
        },
        { tls: { cert, key } },
      );
    });
  });

  it('the events WebSocket works over TLS: snapshot, ready, then live events', async () => {
    await withCertDir(async (dir) => {
      const { cert, key } = makeSelfSigned(dir);
      await withServer(
        async (s) => {
          assert.match(s.url, /^https:/);
          const stream = s.client.events('tls');
          const seen: JobEvent[] = [];
          const reader = (async () => {
            for await (const ev of stream) {
              seen.push(ev);
              if (ev.info.type === 'job' && ev.info.status === 'Success') break;
            }
          })();
          await stream.ready;
          const job = await s.client.submitBatchJob({ executable: 'true', group: 'tls:a' });
          await reader;
          stream.close();
          assert.deepEqual(seen.filter((e) => e.info.id === job.id).map((e) => e.verb), ['add', 'update', 'update']);
        },
        { tls: { cert, key } },
      );
    });
  });

  it('a client without the CA is refused at once with a certificate error (REST, attach and events), not a hang', async () => {
    await withCertDir(async (dir) => {
      const { cert, key } = makeSelfSigned(dir);
      await withServer(
        async (s) => {
          const job = await s.client.submitBatchJob({ executable: 'true' });
          const stranger = new Client({ url: s.url, token: s.token, home: dir });
          const certificateError = (err: unknown): boolean => {
            assert.ok(err instanceof ConnectionError, String(err));
            assert.match(err.message, /TLS certificate this client does not trust \(DEPTH_ZERO_SELF_SIGNED_CERT: self[- ]signed certificate\)/);
            assert.match(err.message, /`ca` option/);
            return true;
          };
          await assert.rejects(stranger.whoami(), certificateError);
          await assert.rejects(stranger.attach(job.id), certificateError);
          await assert.rejects(stranger.events('').ready, certificateError);
          // A different CA is no better than none.
          const other = makeSelfSigned(dir, 'other');
          await assert.rejects(new Client({ url: s.url, token: s.token, ca: readFileSync(other.cert, 'utf8') }).whoami(), certificateError);
        },
        { tls: { cert, key } },
      );
    });
  });

  it('a plain-HTTP request to the TLS port is dropped and the server keeps serving', async () => {
    await withCertDir(async (dir) => {
      const { cert, key } = makeSelfSigned(dir);
      await withServer(
        async (s) => {
          const port = Number(new URL(s.url).port);
          const answer = await new Promise<string>((resolve, reject) => {
            const socket = netConnect({ host: '127.0.0.1', port }, () => socket.write(`GET /v1/whoami HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${s.token}\r\n\r\n`));
            let got = '';
            socket.on('data', (d: Buffer) => (got += d.toString('latin1')));
            socket.on('close', () => resolve(got));
            socket.on('error', reject);
          });
          assert.doesNotMatch(answer, /"user"/, 'no API answer over plain HTTP');
          // The SDK over http:// fails with an error rather than hanging.
          await assert.rejects(new Client({ url: s.url.replace('https:', 'http:'), token: s.token, home: dir }).whoami(), ConnectionError);
          assert.equal((await s.client.whoami()).user, 'admin');
        },
        { tls: { cert, key } },
      );
    });
  });

  it('serves the dashboard page over HTTPS', async () => {
    await withCertDir(async (dir) => {
      const { cert, key } = makeSelfSigned(dir);
      await withServer(
        async (s) => {
          const page = await httpsGet(`${s.url}/`, readFileSync(cert, 'utf8'));
          assert.equal(page.status, 200);
          assert.match(page.type, /^text\/html/);
          assert.match(page.body, /<script[^>]+src="\/assets\/index-[^"]+\.js"/);
        },
        { tls: { cert, key } },
      );
    });
  });

  it('server.json records the https URL and the self-signed certificate as the CA to trust; a CA-signed chain without its root records none', async () => {
    await withCertDir(async (dir) => {
      const self = makeSelfSigned(dir);
      await withServer(
        async (s) => {
          const record = JSON.parse(readFileSync(join(s.home, 'server.json'), 'utf8')) as { url: string; ca?: string };
          assert.equal(record.url, s.url);
          assert.equal(record.ca, self.cert);
          // Given the home and the URL recorded there (as the CLI passes it), the SDK finds the CA itself.
          const local = new Client({ home: s.home, url: record.url, token: s.token });
          assert.equal((await local.whoami()).user, 'admin');
        },
        { tls: self },
      );
      const signed = makeCertificates(dir);
      await withServer(
        async (s) => {
          const record = JSON.parse(readFileSync(join(s.home, 'server.json'), 'utf8')) as { url: string; ca?: string };
          assert.match(record.url, /^https:/);
          assert.equal(record.ca, undefined);
          assert.equal((await new Client({ url: s.url, token: s.token, ca: readFileSync(signed.ca, 'utf8') }).whoami()).user, 'admin');
        },
        { tls: { cert: signed.cert, key: signed.key } },
      );
    });
  });

  it('a certificate made for "localhost" only is recorded as https://localhost:PORT, which it names', async () => {
    await withCertDir(async (dir) => {
      const named = makeSelfSigned(dir, 'named', '/CN=localhost', 'DNS:localhost');
      await withServer(
        async (s) => {
          assert.match(s.url, /^https:\/\/localhost:\d+$/);
          assert.equal((await s.client.whoami()).user, 'admin');
        },
        { tls: named },
      );
    });
  });

  it('jobs of a TLS server get JOBWIRE_CA, so `jobwire progress` works inside them', async () => {
    await withCertDir(async (dir) => {
      const { cert, key } = makeSelfSigned(dir);
      await withServer(
        async (s) => {
          assert.match(s.url, /^https:/);
          // An empty home for the job's CLI: it must get everything from the job's environment.
          const job = await s.client.submitBatchJob({
            executable: process.execPath,
            arguments: [CLI, 'progress', 'half', 'way'],
            environment: { JOBWIRE_HOME: join(dir, 'empty-home') },
          });
          const done = await s.client.waitUntilDone(job.id, 30_000);
          const stderr = Buffer.from((await s.client.readOutput(job.id, 'stderr')).data).toString();
          assert.equal(done.exitCode, 0, stderr);
          assert.equal(done.progress, 'half way');
        },
        { tls: { cert, key } },
      );
    });
  });
});

describe('CLI over TLS', () => {
  it('`jobwire run --ca FILE -- echo hi` works against a TLS server process, and with no flags at all through server.json on the same home', async () => {
    await withCertDir(async (dir) => {
      const { cert, key } = makeSelfSigned(dir);
      const home = tempHome();
      const sp = await startServerProcess(home, ['--tls-cert', cert, '--tls-key', key]);
      try {
        assert.match(sp.url, /^https:/);
        const clear = { JOBWIRE_URL: '', JOBWIRE_TOKEN: '', JOBWIRE_CA: '', JOBWIRE_HOME: '' };
        const withCa = await runCli(['run', '--url', sp.url, '--token', sp.token, '--home', join(dir, 'other-home'), '--ca', cert, '--', 'echo', 'hi'], { env: clear });
        assert.equal(withCa.code, 0, withCa.stderr);
        assert.equal(withCa.stdout, 'hi\n');
        const byEnv = await runCli(['run', '--url', sp.url, '--token', sp.token, '--home', join(dir, 'other-home'), '--', 'echo', 'env'], { env: { ...clear, JOBWIRE_CA: cert } });
        assert.equal(byEnv.code, 0, byEnv.stderr);
        assert.equal(byEnv.stdout, 'env\n');
        const noFlags = await runCli(['run', '--', 'echo', 'hi'], { env: { ...clear, JOBWIRE_HOME: home } });
        assert.equal(noFlags.code, 0, noFlags.stderr);
        assert.equal(noFlags.stdout, 'hi\n');
      } finally {
        sp.proc.kill('SIGTERM');
        await sp.exited;
        removeHome(home);
      }
    });
  });

  it('without the CA the CLI fails with exit code 3 and a certificate error on stderr; a --ca that is no certificate is a usage error', async () => {
    await withCertDir(async (dir) => {
      const { cert, key } = makeSelfSigned(dir);
      const home = tempHome();
      const sp = await startServerProcess(home, ['--tls-cert', cert, '--tls-key', key]);
      try {
        const clear = { JOBWIRE_URL: '', JOBWIRE_TOKEN: '', JOBWIRE_CA: '', JOBWIRE_HOME: '' };
        const base = ['--url', sp.url, '--token', sp.token, '--home', join(dir, 'other-home')];
        const untrusted = await runCli(['jobs', ...base], { env: clear });
        assert.equal(untrusted.code, 3);
        assert.match(untrusted.stderr, /TLS certificate this client does not trust \(DEPTH_ZERO_SELF_SIGNED_CERT/);
        assert.match(untrusted.stderr, /--ca FILE/);
        const notPem = await runCli(['jobs', ...base, '--ca', key], { env: clear });
        assert.equal(notPem.code, 2);
        assert.match(notPem.stderr, new RegExp(`the CA file ${key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} .* holds no PEM certificate`));
        const missing = await runCli(['jobs', ...base, '--ca', join(dir, 'nope.crt')], { env: clear });
        assert.equal(missing.code, 2);
        assert.match(missing.stderr, /cannot read the CA file .*nope\.crt .*ENOENT/);
      } finally {
        sp.proc.kill('SIGTERM');
        await sp.exited;
        removeHome(home);
      }
    });
  });

  it('bad certificate or key files stop `jobwire server` at start with exit code 2 and a message naming the file, and leave no server.json', async () => {
    await withCertDir(async (dir) => {
      const { cert, key } = makeSelfSigned(dir);
      const other = makeSelfSigned(dir, 'other');
      writeFileSync(join(dir, 'junk.txt'), 'not a certificate\n');
      const cases: { args: string[]; message: RegExp }[] = [
        { args: ['--tls-cert', join(dir, 'missing.crt'), '--tls-key', key], message: /TLS certificate .*missing\.crt: cannot read it \(ENOENT\)/ },
        { args: ['--tls-cert', cert, '--tls-key', join(dir, 'missing.key')], message: /TLS key .*missing\.key: cannot read it \(ENOENT\)/ },
        { args: ['--tls-cert', join(dir, 'junk.txt'), '--tls-key', key], message: /TLS certificate .*junk\.txt: not a PEM certificate/ },
        { args: ['--tls-cert', key, '--tls-key', key], message: /TLS certificate .*self\.key: not a PEM certificate/ },
        { args: ['--tls-cert', cert, '--tls-key', join(dir, 'junk.txt')], message: /TLS key .*junk\.txt: not a PEM private key/ },
        { args: ['--tls-cert', cert, '--tls-key', other.key], message: /TLS key .*other\.key does not match the certificate .*self\.crt/ },
        { args: ['--tls-cert', cert], message: /--tls-cert and --tls-key go together/ },
      ];
      for (const c of cases) {
        const home = join(dir, 'home');
        const r = await serverFails([...c.args, '--home', home]);
        assert.equal(r.code, 2, `${c.args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, c.message);
        assert.equal(existsSync(join(home, 'server.json')), false, 'no server.json');
      }
    });
  });

  it('SIGHUP makes `jobwire server` serve a renewed certificate; a bad one is refused on stderr and the one in use stays', async () => {
    await withCertDir(async (dir) => {
      const first = makeSelfSigned(dir, 'first');
      const cert = join(dir, 'server.crt');
      const key = join(dir, 'server.key');
      copyFileSync(first.cert, cert);
      copyFileSync(first.key, key);
      const home = tempHome();
      const sp = await startServerProcess(home, ['--tls-cert', cert, '--tls-key', key]);
      try {
        const renewed = makeSelfSigned(dir, 'renewed');
        const trusting = new Client({ url: sp.url, token: sp.token, ca: readFileSync(renewed.cert, 'utf8'), home: dir });
        await assert.rejects(trusting.whoami(), ConnectionError);
        copyFileSync(renewed.cert, cert);
        copyFileSync(renewed.key, key);
        sp.proc.kill('SIGHUP');
        await sleepUntil(() => trusting.whoami().then(() => true, () => false), 15_000, 'the renewed certificate');

        writeFileSync(key, 'garbage\n');
        sp.proc.kill('SIGHUP');
        await sleepUntil(() => /TLS reload failed, the certificate in use stays: TLS key .*server\.key: not a PEM private key/.test(sp.stderr()), 15_000, 'the reload error');
        assert.equal((await trusting.whoami()).user, 'admin');
        assert.equal(sp.proc.exitCode, null, 'still running');
      } finally {
        sp.proc.kill('SIGTERM');
        await sp.exited;
        removeHome(home);
      }
    });
  });
});
