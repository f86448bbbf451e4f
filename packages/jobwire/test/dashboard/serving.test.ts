import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DASHBOARD_DIR } from '../../src/server/dashboard.js';
import { CLI, sleepUntil, removeHome, tempHome, withServer } from '../helpers.js';

async function get(url: string, init?: RequestInit): Promise<{ status: number; type: string | null; headers: Headers; text: string }> {
  const res = await fetch(url, init);
  return { status: res.status, type: res.headers.get('content-type'), headers: res.headers, text: await res.text() };
}

/** The sign-in line a server whose stdout is not a terminal writes to stderr. */
const SIGN_IN = /^jobwire: sign in \(token, keep private\): (http:\/\/\S+)$/m;

describe('dashboard: serving', () => {
  it('is built by `npm run build` into the package', () => {
    assert.ok(existsSync(join(DASHBOARD_DIR, 'index.html')), `${DASHBOARD_DIR}index.html is missing: npm run build builds the dashboard`);
    assert.ok(existsSync(join(DASHBOARD_DIR, 'widget.js')), 'widget.js is missing');
  });

  it('serves the page at / and at every job, group and network address, without a token', async () => {
    await withServer(async ({ url }) => {
      for (const path of ['/', '/jobs/0c1ce595-4f6d-4fcb-b872-90118f6b1cd9', '/groups/lab', '/groups/lab:run-1', '/groups/a%20b:c', '/networks', '/networks/squares', '/?token=abc']) {
        const res = await get(url + path);
        assert.equal(res.status, 200, path);
        assert.equal(res.type, 'text/html; charset=utf-8', path);
        assert.match(res.text, /<div id="app">/, path);
        assert.equal(res.headers.get('referrer-policy'), 'no-referrer', `${path}: a sign-in token in the address must not leak through Referer`);
        const csp = res.headers.get('content-security-policy') ?? '';
        assert.match(csp, /frame-ancestors 'none'/, path);
        assert.match(csp, new RegExp(`connect-src 'self' ws://${new URL(url).host} wss://`), path);
        assert.equal(res.headers.get('cache-control'), 'no-cache', path);
      }
    });
  });

  it('serves assets with their content types and long caching, and the widget script', async () => {
    await withServer(async ({ url }) => {
      const page = (await get(url + '/')).text;
      const assets = [...page.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]!);
      assert.ok(assets.some((a) => a.endsWith('.js')) && assets.some((a) => a.endsWith('.css')), `index.html links its script and styles: ${assets.join(', ')}`);
      for (const asset of assets) {
        const res = await get(url + asset);
        assert.equal(res.status, 200, asset);
        assert.equal(res.type, asset.endsWith('.js') ? 'text/javascript; charset=utf-8' : 'text/css; charset=utf-8', asset);
        assert.match(res.headers.get('cache-control') ?? '', /immutable/, asset);
      }
      const widget = await get(url + '/widget.js');
      assert.equal(widget.status, 200);
      assert.equal(widget.type, 'text/javascript; charset=utf-8');
      assert.match(widget.text, /^var jobwire=/, 'a classic script that defines the global `jobwire`');
      assert.equal((await get(url + '/favicon.svg')).type, 'image/svg+xml');
      const head = await fetch(url + assets[0]!, { method: 'HEAD' });
      assert.equal(head.status, 200);
    });
  });

  it('serves nothing outside the built folder', async () => {
    await withServer(async ({ url }) => {
      const sources = readdirSync(join(DASHBOARD_DIR, 'assets'));
      assert.ok(sources.length > 0);
      for (const path of [
        '/assets/..%2f..%2fpackage.json',
        '/assets/%2e%2e/%2e%2e/package.json',
        '/assets/%2e%2e%2findex.html',
        '/assets/.hidden',
        '/assets/',
        '/assets/nope.js',
        '/assets/x.exe',
        '/assets/..%5c..%5cpackage.json',
        '/package.json',
        '/src/main.tsx',
      ]) {
        const res = await get(url + path);
        assert.notEqual(res.status, 200, `${path} must not be served`);
        assert.doesNotMatch(res.text, /"name": "jobwire"/, path);
      }
    });
  });

  it('keeps every /v1 route behind the token', async () => {
    await withServer(async ({ url, token, client }) => {
      await client.submitBatchJob({ executable: 'true', name: 'secret-job' });
      for (const path of ['/v1/jobs', '/v1/groups', '/v1/whoami', '/v1/queues']) {
        const res = await get(url + path);
        assert.equal(res.status, 401, path);
        assert.doesNotMatch(res.text, /secret-job/);
      }
      // `?token=` (the sign-in link's form) is for the page to take, not an API credential.
      assert.equal((await get(`${url}/v1/jobs?token=${encodeURIComponent(token)}`)).status, 401);
    });
  });

  it('prints a sign-in link at start and never writes the token to its log, whatever address carries it', async () => {
    const home = tempHome();
    const proc = spawn(process.execPath, [CLI, 'server', '--port', '0', '--home', home, '--log-level', 'trace'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise((resolve) => proc.on('exit', resolve));
    try {
      // stdout is a pipe here, so the link comes once on stderr, marked (test/cli/sign-in-link.test.ts).
      const link = await sleepUntil(() => SIGN_IN.exec(out)?.[1], 15_000, 'the sign-in link');
      const signIn = new URL(link);
      const token = signIn.searchParams.get('token')!;
      assert.equal(signIn.pathname, '/');
      assert.equal(token, readFileSync(join(home, 'token'), 'utf8').trim(), 'the link carries the admin token');
      const url = signIn.origin;
      const t = encodeURIComponent(token);
      assert.equal((await get(link)).status, 200);
      await get(`${url}/jobs/x?token=${t}`);
      await get(`${url}/v1/whoami?access_token=${t}`);
      await get(`${url}/v1/jobs`, { headers: { authorization: `Bearer ${token}` } });
      await get(`${url}/v1/jobs?limit=oops`, { headers: { authorization: `Bearer ${token}` } });
      await get(`${url}/v1/nothing?access_token=${t}&token=${t}`);
      await get(`${url}/assets/nothing.js?token=${t}`);
    } finally {
      proc.kill('SIGTERM');
      await exited;
      removeHome(home);
    }
    const token = new URL(SIGN_IN.exec(out)![1]!).searchParams.get('token')!;
    const leaks = out.split('\n').filter((line) => line.includes(token) && !line.startsWith('jobwire: sign in (token, keep private): '));
    assert.deepEqual(leaks, [], 'only the sign-in line shows the token');
  });
});
