import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { Client } from '@jobwire/client';
import { startServer, type ServerHandle } from '../../src/server/index.js';
import { addUser, removeHome, tempHome, withServer } from '../helpers.js';
import { jobRow, launchChromium, waitForTerminal, withPage } from './browser.js';

describe('dashboard in Chromium: scale, restarts, flow control, widget', () => {
  let browser: Browser;
  before(async () => {
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
  });

  it('shows 10,000 jobs in a windowed list that scrolls smoothly and still updates live', async () => {
    await withServer(async (s) => {
      // Straight into the store: 10,000 finished jobs without running 10,000 processes.
      const base = Date.now() - 3_600_000;
      for (let i = 0; i < 10_000; i++) {
        const id = randomUUID();
        await s.server.store.createJob({
          id,
          owner: 'admin',
          name: `job-${i}`,
          group: `bulk:batch-${i % 10}`,
          queue: 'bulk',
          description: { executable: 'true' },
          interactive: false,
          tty: false,
          url: null,
          jobToken: randomUUID(),
          createdAt: new Date(base + i * 100).toISOString(),
        });
        await s.server.store.finishJob(id, { status: i % 97 === 0 ? 'Failed' : 'Success', exitCode: i % 97 === 0 ? 1 : 0, endedAt: new Date(base + i * 100 + 50).toISOString() });
      }
      await withPage(
        browser,
        s,
        async (page) => {
          const started = Date.now();
          await page.goto(`${s.url}/?token=${encodeURIComponent(s.token)}`);
          await page.locator('.tree[data-jobs="10000"]').waitFor({ timeout: 20_000 });
          const loadMs = Date.now() - started;
          const inDom = await page.locator('.row').count();
          assert.ok(inDom < 100, `only the rows in view are in the DOM (${inDom})`);

          // Scroll through the whole list; every step must render promptly.
          const worstFrame = (await page.evaluate(`(async () => {
            const list = document.querySelector('.tree');
            let worst = 0;
            for (let i = 0; i < 40; i++) {
              const t = performance.now();
              list.scrollTop += list.scrollHeight / 40;
              await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
              worst = Math.max(worst, performance.now() - t);
            }
            return worst;
          })()`)) as number;
          console.log(`# 10,000 jobs: page live and rendered in ${loadMs} ms; worst scroll step ${worstFrame.toFixed(0)} ms; ${inDom} rows in the DOM`);
          // A generous bound: the suite runs files in parallel on small machines. Without
          // windowing a step would lay out 10,000 rows; here it lays out the ~30 in view.
          assert.ok(worstFrame < 1000, `scrolling stays smooth (worst step ${worstFrame} ms)`);
          // At the bottom: the oldest job of the last group.
          await page.locator('a.name', { hasText: /^job-9$/ }).waitFor();

          // Keyboard: Home is the first row; End the last (the oldest job of the last group).
          await page.getByRole('tree').focus();
          await page.keyboard.press('Home');
          await page.locator('.row-group.active[data-group="bulk"]').waitFor();
          await page.keyboard.press('End');
          await page.locator('.row-job.active', { hasText: 'job-9' }).waitFor();

          // Live events still land at once, and the filter finds one job among 10,000.
          const fresh = await s.client.submitBatchJob({ executable: 'true', name: 'fresh', group: 'bulk:batch-0' });
          await page.keyboard.press('Home');
          await jobRow(page, fresh.id, 'Success').waitFor();
          await page.getByRole('searchbox', { name: 'Filter jobs by text' }).fill('job-9876');
          await page.locator('.tree[data-jobs="1"]').waitFor();
          await page.locator('a.name', { hasText: /^job-9876$/ }).waitFor();
        },
        { signIn: false },
      );
    });
  });

  it('reconnects after the server restarts and resumes from the last event id', async () => {
    const home = tempHome();
    let server: ServerHandle = await startServer({ port: 0, home, logLevel: 'warn', graceSeconds: 1 });
    const port = Number(new URL(server.url).port);
    try {
      const s = { url: server.url, token: server.token };
      const client = new Client(s);
      const before = await client.submitBatchJob({ executable: 'sleep', arguments: ['30'], name: 'before-restart' });
      await client.waitUntilRunning(before.id, 10_000);
      await withPage(browser, s, async (page) => {
        const sockets: string[] = [];
        page.on('websocket', (ws) => {
          if (ws.url().includes('/v1/events')) sockets.push(ws.url());
        });
        await jobRow(page, before.id, 'Running').waitFor();
        // Stopped with its jobs (`jobwire server stop --jobs`), so that the next server has news for the page.
        await server.close({ stopJobs: true });
        await page.locator('.live-reconnecting').waitFor();
        server = await startServer({ port, home, logLevel: 'warn', graceSeconds: 1 });
        await page.locator('.live-live').waitFor({ timeout: 15_000 });
        // The restart marked the stopped job Lost; the page got that from the event log, not a reload.
        await jobRow(page, before.id, 'Lost').waitFor();
        const resumed = sockets.map((u) => new URL(u).searchParams.get('since')).filter((v) => v !== null);
        assert.ok(resumed.length > 0 && resumed.every((v) => Number(v) > 0), `reconnected with since=lastEventId: ${resumed.join(', ')}`);
        const later = await new Client(s).submitBatchJob({ executable: 'true', name: 'after-restart' });
        await jobRow(page, later.id, 'Success').waitFor();
        assert.equal(await page.locator(`[data-job-id="${before.id}"]`).count(), 1, 'nothing doubled');
      });
    } finally {
      await server.close();
      removeHome(home);
    }
  });

  it('tells a server that is down from a refused token: reconnecting while it is away, signed out when it comes back refusing the token', async () => {
    const home = tempHome();
    let server: ServerHandle = await startServer({ port: 0, home, logLevel: 'warn', graceSeconds: 1 });
    const port = Number(new URL(server.url).port);
    try {
      const dave = addUser(home, 'dave');
      await withPage(browser, { url: server.url, token: dave }, async (page) => {
        await server.close();
        await page.locator('.live-reconnecting').waitFor();
        // While the server is down the page keeps its token and keeps trying.
        assert.equal(await page.getByRole('heading', { name: 'Sign in to jobwire' }).count(), 0);
        // dave's token is revoked while the server is down (the token file, as `jobwire token revoke` leaves it).
        const path = join(home, 'tokens.json');
        const file = JSON.parse(readFileSync(path, 'utf8')) as { tokens: { user: string }[] };
        writeFileSync(path, JSON.stringify({ ...file, tokens: file.tokens.filter((t) => t.user !== 'dave') }, null, 2), { mode: 0o600 });
        server = await startServer({ port, home, logLevel: 'warn', graceSeconds: 1 });
        await page.getByRole('heading', { name: 'Sign in to jobwire' }).waitFor({ timeout: 15_000 });
        await page.getByRole('alert').filter({ hasText: 'The server refused the token' }).waitFor();
      });
    } finally {
      await server.close();
      removeHome(home);
    }
  });

  it('keeps the page responsive while a job floods the terminal (xterm.js watermarks pause the attachment)', async () => {
    await withServer(async (s) => {
      // ~2 MB stored before the page attaches: the replay comes as fast as the server can send.
      const job = await s.client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'seq 1 300000; echo done-flooding'], name: 'flood' });
      await s.client.waitUntilDone(job.id, 20_000);
      await withPage(browser, s, async (page) => {
        await page.evaluate(`(() => {
          window.__worstGap = 0;
          let last = performance.now();
          setInterval(() => {
            const now = performance.now();
            window.__worstGap = Math.max(window.__worstGap, now - last);
            last = now;
          }, 20);
        })()`);
        await page.locator('.row-job', { hasText: 'flood' }).click();
        const text = await waitForTerminal(page, /\[Success, exit code 0\]/, 30_000);
        assert.match(text, /^299999 *\n300000 *\ndone-flooding *\n\[Success, exit code 0\]/m, 'everything arrived, in order');
        const pauses = Number(await page.locator('.terminal-host').getAttribute('data-pauses'));
        const worstGap = (await page.evaluate('window.__worstGap')) as number;
        console.log(`# flood: ${pauses} pause(s); longest the page was busy: ${worstGap.toFixed(0)} ms`);
        assert.ok(pauses >= 1, 'the attachment was paused while xterm caught up');
        assert.ok(worstGap < 2000, `the page stayed responsive (busy at most ${worstGap} ms at a time)`);
      });
    });
  });

  it("the widget shows one group's jobs, live, on another site's page", async () => {
    await withServer(async (s) => {
      const inGroup = await s.client.submitBatchJob({ executable: 'true', name: 'in-group', group: 'site:reports' });
      const outside = await s.client.submitBatchJob({ executable: 'true', name: 'outside', group: 'other' });
      await s.client.waitUntilDone(inGroup.id, 10_000);
      // The embedding site: another origin (its own port), with only the documented snippet.
      const site = createServer((_req, res) => {
        res.setHeader('content-type', 'text/html; charset=utf-8');
        res.end(`<!doctype html><title>My app</title><h1>My app</h1><div id="jobs"></div>
<script src="${s.url}/widget.js"></script>
<script>jobwire.list(document.getElementById('jobs'), { url: ${JSON.stringify(s.url)}, token: ${JSON.stringify(s.token)}, group: 'site' });</script>`);
      });
      await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
      const siteUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}/`;
      try {
        const context = await browser.newContext();
        try {
          const page = await context.newPage();
          const errors: string[] = [];
          page.on('pageerror', (err) => errors.push(String(err)));
          await page.goto(siteUrl);
          await page.locator(`#jobs tr[data-job-id="${inGroup.id}"][data-status="Success"]`).waitFor();
          assert.equal(await page.locator(`#jobs tr[data-job-id="${outside.id}"]`).count(), 0, 'only the group subtree');
          const live = await s.client.submitBatchJob({ executable: 'sleep', arguments: ['0.3'], name: 'live-one', group: 'site:reports:daily' });
          await page.locator(`#jobs tr[data-job-id="${live.id}"][data-status="Running"]`).waitFor();
          await page.locator(`#jobs tr[data-job-id="${live.id}"][data-status="Success"]`).waitFor();
          assert.equal(await page.locator('h1').innerText(), 'My app', "the host page's own content is untouched");
          assert.deepEqual(errors, []);
        } finally {
          await context.close();
        }
      } finally {
        site.close();
      }
    });
  });
});
