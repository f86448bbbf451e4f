/**
 * The networks in the dashboard, in real Chromium against a real server running a real network:
 * the list reached from the header, a network's graph (jobs coloured by status, pipes labelled
 * with rate and queue depth) following the network live without a reload, and a click on a job
 * opening its page with its output. Also the two API routes the page reads.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { sleepUntil, withServer } from '../helpers.js';
import { launchChromium, screenshot, waitForTerminal, withPage } from './browser.js';

describe('the network page in Chromium', () => {
  let browser: Browser;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'jobwire-network-page-'));
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists the networks, draws the graph live with rates and queue depths, and opens a job from it', async () => {
    const gate = join(dir, 'gate');
    const out = join(dir, 'squares.csv');
    // numbers counts until the gate file appears, so the test decides when its status changes.
    const spec = {
      name: 'dashnet',
      jobs: {
        numbers: { command: ['sh', '-c', 'i=0; while [ ! -e "$1" ]; do i=$((i+1)); echo $i; sleep 0.05; done', 'sh', gate], outputs: ['n'] },
        square: { command: ['awk', '{ print $1 * $1; fflush() }'], inputs: ['n'], outputs: ['sq'] },
        sink: { builtin: 'csv-sink' as const, path: out, inputs: ['sq'] },
        // A second reader of n, whose output nobody reads: a fan-out and a loose end.
        copy: { builtin: 'forward' as const, inputs: ['n'], outputs: ['spare'] },
      },
      pipes: {
        n: { framing: 'lines' as const, queue: { max: 16 } },
        sq: { framing: 'lines' as const, queue: { max: 8 } },
        spare: { framing: 'lines' as const, queue: { max: 16, overflow: 'drop-oldest' as const } },
      },
    };
    await withServer(async (s) => {
      const started = await s.client.runNetwork(spec, { baseDir: dir });
      const ids = new Map(started.jobs.map((j) => [j.name, j.id]));

      // What the page reads: the list, and the graph's shape.
      assert.deepEqual(
        (await s.client.networks()).map((n) => [n.name, n.run, n.state]),
        [['dashnet', started.run, 'running']],
      );
      const graph = await s.client.networkGraph('dashnet');
      assert.equal(graph.run, started.run);
      assert.deepEqual(
        graph.jobs.map((j) => [j.name, j.kind, j.inputs, j.outputs]),
        [
          ['numbers', 'executable', [], ['n']],
          ['square', 'executable', ['n'], ['sq']],
          ['sink', 'builtin', ['sq'], []],
          ['copy', 'builtin', ['n'], ['spare']],
        ],
      );
      assert.deepEqual(
        graph.pipes.map((p) => [p.name, p.producer, p.consumers, p.queue.max]),
        [
          ['n', 'numbers', ['square', 'copy'], 16],
          ['sq', 'square', ['sink'], 8],
          ['spare', 'copy', [], 16],
        ],
      );
      await assert.rejects(s.client.networkGraph('ghost'), (e: Error & { code?: string }) => e.code === 'not_found');

      await withPage(browser, s, async (page) => {
        // From the header to the list, from the list to the network.
        await page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: 'Networks' }).click();
        const row = page.locator('tr[data-network="dashnet"]');
        await row.waitFor();
        assert.match(await row.innerText(), /dashnet\s+Running\s+4 \(\d running\)\s+3/);
        await row.getByRole('link', { name: 'dashnet' }).click();
        await page.waitForURL(`${s.url}/networks/dashnet`);

        // The graph: four jobs, sources left of sinks, one edge per pipe and reader, a loose end for the pipe nobody reads.
        const node = (job: string) => page.locator(`.net-node[data-job="${job}"]`);
        await node('numbers').and(page.locator('[data-status="Running"]')).waitFor();
        assert.equal(await page.locator('.net-node').count(), 4);
        assert.deepEqual(
          await page.evaluate(`[...document.querySelectorAll('.net-edge')].map((e) => e.dataset.pipe + '→' + e.dataset.to)`),
          ['n→square', 'n→copy', 'sq→sink', 'spare→'],
        );
        const left = async (job: string): Promise<number> => (await node(job).boundingBox())!.x;
        assert.ok((await left('numbers')) < (await left('square')) && (await left('square')) < (await left('sink')), 'laid out left to right along the pipes');
        assert.equal(await left('copy'), await left('square'), 'the two readers of n share a column');
        assert.equal(await page.locator('.net-end').count(), 1);

        // Pipes labelled with a live rate and the queue depth against its bound.
        const label = page.locator('.net-label[data-pipe="n"][data-to="square"] .net-label-text');
        const rate = await sleepUntil(
          async () => {
            const m = /^n · ([\d.]+)\/s · queue (\d+)\/16$/.exec(await label.textContent() ?? '');
            return m !== null && Number(m[1]) > 0 ? Number(m[1]) : undefined;
          },
          15_000,
          'a rate above 0 on pipe n',
        );
        assert.ok(rate > 0 && rate < 1000, `a plausible rate: ${rate}/s`);
        assert.match((await page.locator('.net-label[data-pipe="sq"] .net-label-text').textContent()) ?? '', /^sq · [\d.]+\/s · queue \d+\/8$/);
        await page.mouse.move(0, 0);
        await screenshot(page, 'network.png');

        // Live, without a reload: the gate ends numbers; its colour and status change in place.
        await page.evaluate('window.__sameDocument = true');
        const fill = (job: string) => page.evaluate(`getComputedStyle(document.querySelector('.net-node[data-job="${job}"] rect')).fill`);
        const runningFill = await fill('numbers');
        writeFileSync(gate, '');
        await node('numbers').and(page.locator('[data-status="Success"]')).waitFor({ timeout: 15_000 });
        assert.notEqual(await fill('numbers'), runningFill, 'the colour changed with the status');
        await page.locator('.net-title .net-state[data-state="done"]').waitFor({ timeout: 30_000 });
        for (const job of ['square', 'sink', 'copy']) await node(job).and(page.locator('[data-status="Success"]')).waitFor();
        assert.equal(await page.evaluate('window.__sameDocument'), true, 'no reload');
        const status = await s.client.networkStatus('dashnet');
        const frames = status.pipes.find((p) => p.name === 'sq')!.frames;
        assert.match(await page.locator('.net-label[data-pipe="sq"] .net-label-text').textContent() ?? '', new RegExp(`^sq · ${frames} frames · queue 0/8$`));
        assert.equal(readFileSync(out, 'utf8').trimEnd().split('\n').length, frames);

        // A click on a job opens its page, with its output in the terminal.
        await node('square').click();
        await page.waitForURL(`${s.url}/jobs/${ids.get('square')}`);
        await page.locator('.job-page h1', { hasText: 'square' }).waitFor();
        // The terminal follows the end of its output: the last square, then the exit.
        await waitForTerminal(page, new RegExp(`\\b${frames ** 2}\\s+\\[Success, exit code 0\\]`));

        // Back to the graph; a job's box is a link for the keyboard too.
        await page.goBack();
        await page.waitForURL(`${s.url}/networks/dashnet`);
        await node('sink').focus();
        await page.keyboard.press('Enter');
        await page.waitForURL(`${s.url}/jobs/${ids.get('sink')}`);
        await page.locator('.job-page h1', { hasText: 'sink' }).waitFor();

        // The page's address is a real one (a reload or a bookmark opens it); a network the
        // server does not know says so.
        await page.goto(`${s.url}/networks/dashnet`);
        await page.locator('.net-title .net-state[data-state="done"]').waitFor();
        await page.goto(`${s.url}/networks/ghost`);
        await page.getByRole('alert').filter({ hasText: 'no network "ghost"' }).waitFor();
      });
    });
  });
});
