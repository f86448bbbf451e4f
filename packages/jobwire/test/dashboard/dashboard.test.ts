import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { cliEnv, runCli, sleepUntil, withServer } from '../helpers.js';
import { jobRow, launchChromium, recordStatuses, screenshot, seenStatuses, waitForTerminal, withPage } from './browser.js';

describe('dashboard in Chromium', () => {
  let browser: Browser;
  before(async () => {
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
  });

  it('a page without the token cannot read anything', async () => {
    await withServer(async (s) => {
      const job = await s.client.submitBatchJob({ executable: 'true', name: 'private-job' });
      await withPage(
        browser,
        s,
        async (page) => {
          await page.getByRole('heading', { name: 'Sign in to jobwire' }).waitFor();
          // Neither the page nor any script on it gets data without the token.
          const probe = await page.evaluate(`(async () => {
            const jobs = (await fetch('/v1/jobs')).status;
            const job = (await fetch('/v1/jobs/${job.id}')).status;
            const events = await new Promise((resolve) => {
              const ws = new WebSocket(location.origin.replace(/^http/, 'ws') + '/v1/events');
              ws.onopen = () => resolve('open');
              ws.onclose = () => resolve('refused');
            });
            return { jobs, job, events };
          })()`);
          assert.deepEqual(probe, { jobs: 401, job: 401, events: 'refused' });
          assert.doesNotMatch(await page.content(), /private-job/);

          // A job's address shows the sign-in form too.
          await page.goto(`${s.url}/jobs/${job.id}`);
          await page.getByRole('heading', { name: 'Sign in to jobwire' }).waitFor();
          assert.doesNotMatch(await page.content(), /private-job/);

          // A wrong token is refused, in the form and in a sign-in link.
          await page.getByLabel('Access token').fill('not-a-token');
          await page.getByRole('button', { name: 'Sign in' }).click();
          await page.getByRole('alert').filter({ hasText: 'refused' }).waitFor();
          await page.goto(`${s.url}/?token=not-a-token`);
          await page.getByRole('alert').filter({ hasText: 'refused' }).waitFor();
          assert.doesNotMatch(page.url(), /token/);
          assert.doesNotMatch(await page.content(), /private-job/);

          // The right one opens the dashboard.
          await page.getByLabel('Access token').fill(s.token);
          await page.getByRole('button', { name: 'Sign in' }).click();
          await jobRow(page, job.id).waitFor();
        },
        { signIn: false },
      );
    });
  });

  it('the sign-in link signs the tab in and drops the token from the address bar', async () => {
    await withServer(async (s) => {
      const job = await s.client.submitBatchJob({ executable: 'echo', arguments: ['hi'], name: 'linked' });
      await withPage(
        browser,
        s,
        async (page) => {
          await page.locator('.job-page h1', { hasText: 'linked' }).waitFor();
          assert.equal(page.url(), `${s.url}/jobs/${job.id}`, 'the token left the address bar');
          assert.equal(await page.evaluate(`sessionStorage.getItem('jobwire.token')`), s.token);
          assert.equal(await page.evaluate(`localStorage.getItem('jobwire.token')`), null, 'not remembered unless asked');
          await page.reload();
          await page.locator('.live-live').waitFor();

          // Session storage belongs to the tab: a new tab asks; "remember" signs in every tab.
          const second = await page.context().newPage();
          await second.goto(s.url + '/');
          await second.getByLabel('Access token').fill(s.token);
          await second.getByLabel(/Remember on this browser/).check();
          await second.getByRole('button', { name: 'Sign in' }).click();
          await second.locator('.live-live').waitFor();
          const third = await page.context().newPage();
          await third.goto(s.url + '/');
          await third.locator('.live-live').waitFor();
          await third.getByRole('button', { name: 'Sign out' }).click();
          await third.getByRole('heading', { name: 'Sign in to jobwire' }).waitFor();
          assert.equal(await third.evaluate(`localStorage.getItem('jobwire.token')`), null, 'signing out forgets the token');
        },
        { path: `/jobs/${job.id}` },
      );
    });
  });

  it("submits a command from the form: its row goes Queued → Running → Success without a reload, and its page shows the output", async () => {
    await withServer(async (s) => {
      // Holds the `single` queue, so the new job is visibly Queued until this one is cancelled.
      const blocker = await s.client.submitBatchJob({ executable: 'sleep', arguments: ['30'], queueName: 'single', name: 'blocker' });
      await s.client.waitUntilRunning(blocker.id, 10_000);
      await withPage(browser, s, async (page) => {
        await recordStatuses(page);
        await page.getByRole('button', { name: 'New job' }).click();
        const form = page.getByRole('dialog', { name: 'New job' });
        await form.getByLabel('Command').fill(`sh -c 'for i in 1 2 3; do echo $i; sleep 0.2; done'`);
        await form.getByLabel('Name').fill('count');
        await form.getByLabel('Queue').selectOption('single');
        await form.getByRole('button', { name: 'Submit' }).click();
        await form.waitFor({ state: 'hidden' });

        const row = page.locator('.row-job', { has: page.locator('a.name', { hasText: /^count$/ }) });
        await row.and(page.locator('[data-status="Queued"]')).waitFor();
        const id = (await row.getAttribute('data-job-id'))!;
        const submitted = await s.client.getJobStatus(id);
        assert.deepEqual(submitted.description?.arguments, ['-c', 'for i in 1 2 3; do echo $i; sleep 0.2; done'], 'the form split the command like a shell');
        await s.client.cancelJob(blocker.id);
        await jobRow(page, id, 'Success').waitFor({ timeout: 10_000 });
        assert.deepEqual(await seenStatuses(page, id), ['Queued', 'Running', 'Success']);

        await row.click();
        await page.waitForURL(`${s.url}/jobs/${id}`);
        const text = await waitForTerminal(page, /\[Success, exit code 0\]/);
        assert.match(text, /^1 *\n2 *\n3 *\n\[Success, exit code 0\]/m);
        await page.locator('.exit[data-exit-code="0"]').waitFor();

        // Download: the output route needs the token, so the page fetches it and saves a blob.
        const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download stdout' }).click()]);
        assert.equal(readFileSync((await download.path())!, 'utf8'), '1\n2\n3\n');
        assert.match(download.suggestedFilename(), /^count-.*\.stdout\.txt$/);

        // The CLI command it offers reattaches (the token comes from the environment, never the page).
        const cli = await page.getByLabel('Reattach from a terminal').inputValue();
        assert.equal(cli, `jobwire attach --url ${s.url} ${id}`);
        const attached = await runCli(cli.split(' ').slice(1), { env: { JOBWIRE_TOKEN: s.token, JOBWIRE_HOME: s.home } });
        assert.equal(attached.stdout, '1\n2\n3\n');
        assert.equal(attached.code, 0, attached.stderr);

        // Delete: back to the tree, the row gone.
        await page.getByRole('button', { name: 'Delete' }).click();
        await page.waitForURL(`${s.url}/`);
        await jobRow(page, blocker.id).waitFor();
        assert.equal(await jobRow(page, id).count(), 0);
      });
    });
  });

  it('an interactive cat job: typing in the page terminal reaches the job and its echo comes back; End input ends it with exit code 0', async () => {
    await withServer(async (s) => {
      await withPage(browser, s, async (page) => {
        await page.getByRole('button', { name: 'New job' }).click();
        const form = page.getByRole('dialog', { name: 'New job' });
        await form.getByLabel('Command').fill('cat');
        await form.getByLabel(/^Interactive/).check();
        await form.getByRole('button', { name: 'Submit' }).click();
        // An interactive job opens its page at once.
        await page.waitForURL(/\/jobs\/[^/]+$/);
        const id = decodeURIComponent(new URL(page.url()).pathname.split('/').pop()!);
        await page.locator('.terminal-host[data-state="attached"]').waitFor();
        await s.client.waitUntilRunning(id, 10_000);

        await page.locator('.terminal-host').click();
        await page.keyboard.type('hello');
        await page.keyboard.press('Enter');
        // The job got the line (and only it), and wrote it back: typed line, then cat's echo.
        await sleepUntil(async () => Buffer.from((await s.client.readOutput(id)).data).toString() === 'hello\n', 10_000, 'cat to echo hello');
        await waitForTerminal(page, /^hello *\nhello *$/m);

        await page.getByRole('button', { name: 'End input' }).click();
        const done = await s.client.waitUntilDone(id, 10_000);
        assert.equal(done.status, 'Success');
        assert.equal(done.exitCode, 0);
        await page.locator('.job-page[data-status="Success"] .exit[data-exit-code="0"]').waitFor();
        await page.getByRole('button', { name: 'Input ended' }).waitFor();
      });
    });
  });

  it('a tty bash job: the prompt shows, stty size reports the terminal, resizes follow the window, closing the tab detaches', async () => {
    await withServer(async (s) => {
      const job = await s.client.submitBatchJob({ executable: 'bash', arguments: ['--norc', '--noprofile', '-i'], tty: true, environment: { PS1: 'jw$ ' }, name: 'shell' });
      const size = async (page: import('playwright-core').Page): Promise<{ cols: number; rows: number }> => {
        const el = page.locator('.term-size');
        return { cols: Number(await el.getAttribute('data-cols')), rows: Number(await el.getAttribute('data-rows')) };
      };
      await withPage(
        browser,
        s,
        async (page) => {
          await waitForTerminal(page, /jw\$ *$/m);
          const first = await size(page);
          assert.ok(first.cols > 80 && first.rows > 10, `the terminal fills its box: ${JSON.stringify(first)}`);
          await page.locator('.terminal-host').click();
          await page.keyboard.type('stty size');
          await page.keyboard.press('Enter');
          await waitForTerminal(page, new RegExp(`^${first.rows} ${first.cols} *$`, 'm'));

          await page.setViewportSize({ width: 900, height: 620 });
          const second = await sleepUntil(async () => {
            const now = await size(page);
            return now.cols < first.cols && now.rows < first.rows ? now : undefined;
          }, 5000, 'the terminal to shrink with the window');
          await page.keyboard.type('clear; stty size');
          await page.keyboard.press('Enter');
          await waitForTerminal(page, new RegExp(`^${second.rows} ${second.cols} *$`, 'm'));
        },
        { path: `/jobs/${job.id}` },
      );
      // The tab is closed: the job runs on.
      await new Promise((r) => setTimeout(r, 300));
      assert.equal((await s.client.getJobStatus(job.id)).status, 'Running', 'closing the tab detached without killing the job');

      // Back on its page the screen is replayed; Cancel ends it.
      await withPage(
        browser,
        s,
        async (page) => {
          // The screen as the job left it: the output of the last `stty size`, then the prompt.
          await waitForTerminal(page, /^\d+ \d+ *\njw\$ *$/m);
          await page.getByRole('button', { name: 'Cancel job' }).click();
          await page.locator('.job-page[data-status="Cancelled"]').waitFor({ timeout: 10_000 });
        },
        { path: `/jobs/${job.id}` },
      );
    });
  });

  it('a job submitted from the SDK appears live, and one cancelled from the CLI changes state live', async () => {
    await withServer(async (s) => {
      await withPage(browser, s, async (page) => {
        await page.getByText('No jobs yet').waitFor();
        const job = await s.client.submitBatchJob({ executable: 'sleep', arguments: ['30'], name: 'from-sdk', group: 'live:sdk' });
        await page.locator('.row-group[data-group="live:sdk"]').waitFor();
        await jobRow(page, job.id, 'Running').waitFor();
        const cancel = await runCli(['cancel', job.id], { env: cliEnv(s) });
        assert.equal(cancel.code, 0, cancel.stderr);
        await jobRow(page, job.id, 'Cancelled').waitFor();
        await s.client.deleteJob(job.id);
        await jobRow(page, job.id).waitFor({ state: 'detached' });
      });
    });
  });

  it('filters by status and text, works from the keyboard, and writes the screenshots', async () => {
    await withServer(async (s) => {
      const c = s.client;
      const align = await c.submitBatchJob({
        executable: 'sh',
        arguments: ['-c', 'for f in reads-1 reads-2 reads-3; do echo "aligning $f.fastq"; sleep 0.05; done; echo "warning: 12 reads below quality 20" >&2; echo "wrote aligned.bam (3 files, 48213 reads)"'],
        name: 'align',
        group: 'lab:analysis-7:step-1',
      });
      const train = await c.submitBatchJob({ executable: 'sleep', arguments: ['60'], name: 'train-model', group: 'lab:analysis-7:step-2', queueName: 'single' });
      await c.submitBatchJob({ executable: 'true', name: 'evaluate', group: 'lab:analysis-7:step-2', queueName: 'single' });
      const fetchData = await c.submitBatchJob({ executable: 'sh', arguments: ['-c', 'echo "fetch: host data.example not reachable" >&2; exit 2'], name: 'fetch-data', group: 'lab' });
      const backup = await c.submitBatchJob({ executable: 'sleep', arguments: ['60'], name: 'backup', group: 'nightly' });
      const summary = await c.submitBatchJob({ js: { code: "progress('read 1200 rows'); return { rows: 1200, mean: 3.14 };" }, name: 'summarise', group: 'lab:analysis-7' });
      await c.submitBatchJob({ executable: 'bash', arguments: ['--norc'], tty: true, name: 'shell' });
      await c.waitUntilRunning(train.id, 10_000);
      await c.setProgress(train.id, 'epoch 3 of 10, loss 0.412');
      await c.waitUntilRunning(backup.id, 10_000);
      await c.cancelJob(backup.id);
      await Promise.all([align, fetchData, summary, backup].map((j) => c.waitUntilDone(j.id, 10_000)));

      await withPage(browser, s, async (page) => {
        await jobRow(page, align.id, 'Success').waitFor();
        await jobRow(page, train.id).filter({ hasText: 'epoch 3 of 10' }).waitFor();
        await screenshot(page, 'tree.png');

        // A group's own page: its subtree only, and a real address (reload keeps it).
        await page.locator('.row-group[data-group="lab:analysis-7"] a.group-name').click();
        await page.waitForURL(`${s.url}/groups/lab:analysis-7`);
        await page.locator('.tree[data-jobs="4"]').waitFor();
        assert.equal(await jobRow(page, fetchData.id).count(), 0);
        await page.reload();
        await page.locator('.tree[data-jobs="4"]').waitFor();
        await page.getByRole('navigation', { name: 'Group' }).getByRole('link', { name: 'All jobs' }).click();
        await page.locator('.tree[data-jobs="7"]').waitFor();

        // Status filter: only failed jobs (and the groups holding them).
        await page.getByRole('button', { name: /^Failed/ }).click();
        await sleepUntil(async () => (await page.locator('.row-job').count()) === 1 || undefined, 5000, 'only the failed job');
        await jobRow(page, fetchData.id).waitFor();
        await page.getByRole('button', { name: 'Clear filter' }).click();
        // Text filter.
        await page.getByRole('searchbox', { name: 'Filter jobs by text' }).fill('align');
        await sleepUntil(async () => (await page.locator('.row-job').count()) === 1 || undefined, 5000, 'only align');

        // Keyboard: the tree is one tab stop; End goes to the last row, Enter opens it.
        await page.getByRole('tree').focus();
        await page.keyboard.press('End');
        assert.equal(await page.getByRole('treeitem', { selected: true }).getAttribute('data-job-id'), align.id);
        await page.keyboard.press('Home');
        assert.equal(await page.getByRole('treeitem', { selected: true }).getAttribute('data-group'), 'lab');
        await page.keyboard.press('ArrowLeft'); // closes the group
        assert.equal(await page.locator('.row-job').count(), 0);
        await page.keyboard.press('ArrowRight');
        await page.keyboard.press('End');
        await page.keyboard.press('Enter');
        await page.waitForURL(`${s.url}/jobs/${align.id}`);
        await waitForTerminal(page, /\[Success, exit code 0\]/);
        await page.mouse.move(0, 0);
        await screenshot(page, 'job.png');

        // Dark theme, chosen on the page.
        await page.getByRole('combobox', { name: 'Colour theme' }).selectOption('dark');
        await page.goBack();
        await page.getByRole('button', { name: 'Clear filter' }).click();
        await jobRow(page, train.id).waitFor();
        assert.equal(await page.evaluate('document.documentElement.dataset.theme'), 'dark');
        await screenshot(page, 'tree-dark.png');
      });
    });
  });
});
