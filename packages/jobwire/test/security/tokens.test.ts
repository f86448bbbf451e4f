/**
 * Tokens are stored as digests only (tokens.json, and the shared token book in Redis), shown
 * once at creation, listed by fingerprint, revocable; and jobs start in a work folder beside
 * the jobwire home, never in it (docs/security.md).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Client } from '@jobwire/client';
import { Redis } from 'ioredis';
import { startServer } from '../../src/server/index.js';
import { REDIS_URL, dropPrefix, freshPrefix } from '../redis-env.js';
import { CLI, cliEnv, removeHome, runCli, sleepUntil, tempHome } from '../helpers.js';

const digest = (token: string): string => createHash('sha256').update(token).digest('base64url');
const tokensFile = (home: string): string => readFileSync(join(home, 'tokens.json'), 'utf8');
const mode = (path: string): number => statSync(path).mode & 0o777;

/** True once `token` is accepted by the server at `url`; false once it is refused. */
async function accepted(url: string, token: string): Promise<boolean> {
  return new Client({ url, token }).whoami().then(
    () => true,
    (err: { code?: string }) => {
      if (err.code === 'unauthorized') return false;
      throw err;
    },
  );
}

/** Runs `fn` with an embedded server in a fresh home (its work folder removed afterwards). */
async function withHome<T>(fn: (s: { home: string; url: string; token: string; env: Record<string, string> }) => Promise<T>, prepare?: (home: string) => void): Promise<T> {
  const home = tempHome();
  prepare?.(home);
  const server = await startServer({ home, port: 0, logLevel: 'warn' });
  try {
    return await fn({ home, url: server.url, token: server.token, env: cliEnv({ url: server.url, token: server.token, home }) });
  } finally {
    await server.close();
    removeHome(home);
  }
}

describe('tokens are stored as digests', () => {
  it('keeps only SHA-256 digests in tokens.json: no token, the admin\'s included, is in the file', async () => {
    await withHome(async ({ home, url, token, env }) => {
      const created = await runCli(['token', 'create', 'alice', '--json'], { env });
      assert.equal(created.code, 0, created.stderr);
      const alice = (JSON.parse(created.stdout) as { token: string }).token;
      await sleepUntil(() => accepted(url, alice), 5000, "alice's token to be accepted");
      const text = tokensFile(home);
      assert.ok(!text.includes(alice), 'tokens.json holds no user token');
      assert.ok(!text.includes(token), 'tokens.json holds no admin token');
      const entries = (JSON.parse(text) as { tokens: { sha256: string; user: string; admin: boolean }[] }).tokens;
      assert.deepEqual(
        entries.map((e) => [e.user, e.admin, e.sha256]),
        [
          ['admin', true, digest(token)],
          ['alice', false, digest(alice)],
        ],
      );
      assert.equal(mode(join(home, 'tokens.json')), 0o600);
      // The one secret on disk: the admin token for this machine's CLI and SDK.
      assert.equal(readFileSync(join(home, 'token'), 'utf8').trim(), token);
      assert.equal(mode(join(home, 'token')), 0o600);
    });
  });

  it('migrates a plain-text tokens.json on first load, atomically: rewritten with digests, the same tokens still accepted', async () => {
    const admin = 'A'.repeat(43);
    const bob = 'B'.repeat(43);
    await withHome(
      async ({ home, url, token }) => {
        assert.equal(token, admin, 'the admin token is kept');
        assert.equal(await accepted(url, bob), true);
        const text = tokensFile(home);
        assert.ok(!text.includes(admin) && !text.includes(bob), 'no plain-text token left');
        assert.deepEqual(
          (JSON.parse(text) as { tokens: { sha256: string; user: string }[] }).tokens.map((e) => [e.user, e.sha256]),
          [
            ['admin', digest(admin)],
            ['bob', digest(bob)],
          ],
        );
        assert.equal(mode(join(home, 'tokens.json')), 0o600);
        assert.deepEqual(readdirSync(home).filter((f) => f.includes('.tmp')), [], 'no temporary file left');
        // Even with the home's token file gone, the migrated admin token is the one written back.
        assert.equal(readFileSync(join(home, 'token'), 'utf8').trim(), admin);
      },
      (home) => {
        writeFileSync(
          join(home, 'tokens.json'),
          JSON.stringify({
            tokens: [
              { token: admin, user: 'admin', admin: true },
              { token: bob, user: 'bob', admin: false },
            ],
          }),
          { mode: 0o600 },
        );
      },
    );
  });

  it('lets `jobwire token list` migrate a plain-text file too, and list users, OS accounts and fingerprints but never tokens', async () => {
    const home = tempHome();
    try {
      const plain = 'C'.repeat(43);
      writeFileSync(join(home, 'tokens.json'), JSON.stringify({ tokens: [{ token: plain, user: 'carol', admin: false }] }), { mode: 0o600 });
      const created = await runCli(['token', 'create', 'dave', '--home', home]);
      assert.equal(created.code, 0, created.stderr);
      const dave = created.stdout.trim();
      const listed = await runCli(['token', 'list', '--home', home]);
      assert.equal(listed.code, 0, listed.stderr);
      assert.ok(!listed.stdout.includes(plain) && !listed.stdout.includes(dave), 'no token in the listing');
      assert.match(listed.stdout, /^USER\s+ADMIN\s+OS USER\s+FINGERPRINT\s+CREATED/);
      assert.ok(listed.stdout.includes(digest(dave).slice(0, 10)));
      const json = await runCli(['token', 'list', '--json', '--home', home]);
      assert.deepEqual(
        (JSON.parse(json.stdout) as { user: string; fingerprint: string }[]).map((e) => [e.user, e.fingerprint]),
        [
          ['carol', digest(plain).slice(0, 10)],
          ['dave', digest(dave).slice(0, 10)],
        ],
      );
      assert.ok(!tokensFile(home).includes(plain), 'the CLI rewrote the file with digests');
      const reveal = await runCli(['token', 'list', '--reveal', '--home', home]);
      assert.equal(reveal.code, 2);
      assert.match(reveal.stderr, /cannot be shown again/);
    } finally {
      removeHome(home);
    }
  });

  it('revokes one token by fingerprint, or all of a user\'s by name: the server stops accepting them', async () => {
    await withHome(async ({ home, url, env }) => {
      const make = async (user: string): Promise<string> => (await runCli(['token', 'create', user], { env })).stdout.trim();
      const first = await make('alice');
      const second = await make('alice');
      const bob = await make('bob');
      await sleepUntil(() => accepted(url, bob), 5000, 'the new tokens');
      const before = tokensFile(home);
      const unknown = await runCli(['token', 'revoke', 'nobody'], { env });
      assert.equal(unknown.code, 1);
      assert.match(unknown.stderr, /no user and no token fingerprint "nobody"/);
      assert.equal(tokensFile(home), before, 'a failed revoke changes nothing');

      const one = await runCli(['token', 'revoke', digest(first).slice(0, 10)], { env });
      assert.equal(one.code, 0, one.stderr);
      await sleepUntil(async () => !(await accepted(url, first)), 5000, 'the revoked token to be refused');
      assert.equal(await accepted(url, second), true);
      const all = await runCli(['token', 'revoke', 'alice'], { env });
      assert.equal(all.code, 0, all.stderr);
      await sleepUntil(async () => !(await accepted(url, second)), 5000, "alice's last token to be refused");
      assert.equal(await accepted(url, bob), true);
    });
  });

  it("removes the home's admin token file when that token is revoked; the next start creates a new admin token", async () => {
    const home = tempHome();
    try {
      const first = await startServer({ home, port: 0, logLevel: 'warn' });
      const old = first.token;
      await first.close();
      const revoked = await runCli(['token', 'revoke', 'admin', '--home', home]);
      assert.equal(revoked.code, 0, revoked.stderr);
      assert.match(revoked.stderr, /next server start creates a new one/);
      assert.equal(existsSync(join(home, 'token')), false);
      const second = await startServer({ home, port: 0, logLevel: 'warn' });
      try {
        assert.notEqual(second.token, old);
        assert.equal(readFileSync(join(home, 'token'), 'utf8').trim(), second.token);
        assert.equal(await accepted(second.url, old), false);
        assert.equal(await accepted(second.url, second.token), true);
      } finally {
        await second.close();
      }
    } finally {
      removeHome(home);
    }
  });

  it('shares only digests through Redis, and a revoke reaches every server (with --redis at once, else through the home\'s server)', async () => {
    const prefix = freshPrefix();
    const homes = [tempHome(), tempHome()];
    const [a, b] = await Promise.all(homes.map((home) => startServer({ home, port: 0, logLevel: 'warn', redis: REDIS_URL, redisPrefix: prefix })));
    const redis = new Redis(REDIS_URL);
    try {
      const redisArgs = ['--redis', REDIS_URL, '--redis-prefix', prefix, '--home', homes[0]!];
      const dave = (await runCli(['token', 'create', 'dave', ...redisArgs])).stdout.trim();
      const erin = (await runCli(['token', 'create', 'erin', '--home', homes[0]!])).stdout.trim();
      await sleepUntil(async () => (await accepted(b!.url, dave)) && (await accepted(b!.url, erin)), 10_000, 'server B to accept tokens made on A');
      const book = await redis.hgetall(`${prefix}tokens`);
      const everything = JSON.stringify(book);
      for (const secret of [dave, erin, a!.token, b!.token]) assert.ok(!everything.includes(secret), 'no token in the shared book');
      for (const secret of [dave, erin, a!.token, b!.token]) assert.ok(digest(secret) in book, 'every token by its digest');

      assert.equal((await runCli(['token', 'revoke', 'dave', ...redisArgs])).code, 0);
      await sleepUntil(async () => !(await accepted(b!.url, dave)), 10_000, 'server B to refuse a token revoked with --redis');
      assert.equal((await runCli(['token', 'revoke', 'erin', '--home', homes[0]!])).code, 0);
      await sleepUntil(async () => !(await accepted(b!.url, erin)), 15_000, "server B to refuse a token revoked in A's home");
      const after = await redis.hgetall(`${prefix}tokens`);
      assert.ok(!(digest(dave) in after) && !(digest(erin) in after));
    } finally {
      redis.disconnect();
      await Promise.all([a!.close(), b!.close()]);
      await dropPrefix(prefix);
      homes.forEach(removeHome);
    }
  });
});

describe('the work folder lies beside the home, never in it', () => {
  it('starts jobs that name no working directory in <home>-work, outside the home', async () => {
    await withHome(async ({ home, url, token }) => {
      const client = new Client({ url, token });
      const job = await client.submitBatchJob({ executable: 'pwd' });
      assert.equal((await client.waitUntilDone(job.id, 10_000)).status, 'Success');
      const cwd = Buffer.from((await client.readOutput(job.id)).data).toString().trim();
      assert.equal(cwd, `${home}-work`);
      assert.ok(!cwd.startsWith(`${home}/`));
    });
  });

  it('refuses a server work folder inside the home, creating nothing', async () => {
    const home = join(tempHome(), 'home');
    try {
      const r = await runCli(['server', '--port', '0', '--home', home, '--work-dir', join(home, 'work')]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /lies inside the jobwire home/);
      assert.equal(existsSync(home), false);
      await assert.rejects(startServer({ home, port: 0, workDir: home }), RangeError);
    } finally {
      removeHome(join(home, '..'));
    }
  });

  it("starts a worker's jobs in <home>-work by default, and refuses a --work-dir inside its home", async () => {
    const prefix = freshPrefix();
    const serverHome = tempHome();
    const workerHome = tempHome('jobwire-worker-');
    const server = await startServer({ home: serverHome, port: 0, logLevel: 'warn', redis: REDIS_URL, redisPrefix: prefix });
    const args = [CLI, 'worker', '--redis', REDIS_URL, '--redis-prefix', prefix, '--name', 'wd-test', '--home', workerHome, '--log-level', 'warn'];
    const refused = await runCli([...args.slice(1), '--work-dir', join(workerHome, 'jobs')]);
    const worker = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      assert.equal(refused.code, 2, refused.stderr);
      assert.match(refused.stderr, /lies inside the jobwire home/);
      let stdout = '';
      worker.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      await sleepUntil(() => stdout.includes('ready'), 20_000, 'the worker');
      const client = new Client({ url: server.url, token: server.token });
      const job = await client.submitBatchJob({ executable: 'pwd' });
      assert.equal((await client.waitUntilDone(job.id, 20_000)).status, 'Success');
      assert.equal(Buffer.from((await client.readOutput(job.id)).data).toString().trim(), `${workerHome}-work`);
    } finally {
      if (worker.exitCode === null && worker.signalCode === null) {
        const exited = new Promise((resolve) => worker.once('exit', resolve));
        worker.kill('SIGTERM');
        await exited;
      }
      await server.close();
      await dropPrefix(prefix);
      removeHome(serverHome);
      removeHome(workerHome);
    }
  });
});
