/**
 * Helpers for the dashboard tests: a real Chromium (Debian's, via playwright-core) and pages
 * signed in to a test server. A missing browser fails the tests; it never skips them.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContextOptions, type Locator, type Page } from 'playwright-core';
import { sleepUntil } from '../helpers.js';

/** Debian's chromium (`apt-get install chromium`; `.ci/run` installs it). */
export const CHROMIUM = '/usr/bin/chromium';

/** The network is closed in CI: no component updates, no QUIC probing, no background fetches. */
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** Where a failing test leaves a screenshot of the page (git-ignored). */
const ARTIFACTS = fileURLToPath(new URL('../../../../../test-artifacts/', import.meta.url));

/**
 * Where screenshots go: the git-ignored `test-artifacts/screenshots/`, so a test run leaves the
 * work tree clean; with `JOBWIRE_UPDATE_SCREENSHOTS=1`, `docs/screenshots/` — the ones the README
 * and docs/dashboard.md show.
 */
export const SCREENSHOTS = fileURLToPath(
  new URL(process.env.JOBWIRE_UPDATE_SCREENSHOTS === '1' ? '../../../../../docs/screenshots/' : '../../../../../test-artifacts/screenshots/', import.meta.url),
);

/** Starts Chromium, or fails loudly when it is not installed. */
export async function launchChromium(): Promise<Browser> {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: the dashboard tests need a real browser (apt-get install -y chromium)`);
  return chromium.launch({ executablePath: CHROMIUM, args: ARGS });
}

/** A laptop screen. */
export const LAPTOP = { width: 1280, height: 800 };

/** Options of {@link withPage}. */
export interface PageOptions extends BrowserContextOptions {
  /** Address to open (the token is added as `?token=`). @defaultValue "/" */
  path?: string;
  /** Open with the sign-in link's token. @defaultValue true */
  signIn?: boolean;
}

/**
 * Opens a page in a fresh browser context (its own storage), signed in with the sign-in link
 * and live, runs `fn`, fails on any uncaught page error, and closes the context.
 */
export async function withPage<T>(browser: Browser, server: { url: string; token: string }, fn: (page: Page) => Promise<T>, options: PageOptions = {}): Promise<T> {
  const { path = '/', signIn = true, ...contextOptions } = options;
  const context = await browser.newContext({ viewport: LAPTOP, ...contextOptions });
  const errors: Error[] = [];
  const page = await context.newPage();
  try {
    page.on('pageerror', (err) => errors.push(err));
    page.on('dialog', (dialog) => void dialog.accept());
    await page.goto(signIn ? `${server.url}${path}?token=${encodeURIComponent(server.token)}` : server.url + path);
    if (signIn) await page.locator('.live-live').waitFor();
    const result = await fn(page);
    assert.deepEqual(errors.map(String), [], 'no uncaught errors in the page');
    return result;
  } catch (err) {
    // What the page looked like when it failed, for the one reading the test log.
    const file = `${ARTIFACTS}dashboard-failure-${Date.now()}.png`;
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: file }).catch(() => undefined);
    console.log(`# dashboard test failed at ${page.url()}; screenshot: ${file}; page errors: ${errors.map(String).join(' | ') || 'none'}`);
    throw err;
  } finally {
    await context.close();
  }
}

/** A job's row in the tree, optionally in a given status. */
export function jobRow(page: Page, id: string, status?: string): Locator {
  return page.locator(`.row-job[data-job-id="${id}"]${status ? `[data-status="${status}"]` : ''}`);
}

/** What the job page's terminal shows (its visible rows). */
export async function terminalText(page: Page): Promise<string> {
  return (await page.locator('.terminal-host .xterm-rows').innerText()).replace(/\u00a0/g, ' ');
}

/** Waits until the terminal shows something matching `pattern`; returns its text. */
export function waitForTerminal(page: Page, pattern: RegExp, timeoutMs = 10_000): Promise<string> {
  return sleepUntil(
    async () => {
      const text = await terminalText(page);
      return pattern.test(text) ? text : undefined;
    },
    timeoutMs,
    `the terminal to show ${pattern}`,
  );
}

/** Installs a recorder of every status each job row has shown (read it with {@link seenStatuses}). */
export async function recordStatuses(page: Page): Promise<void> {
  await page.evaluate(`(() => {
    const seen = {};
    const note = () => {
      for (const el of document.querySelectorAll('.row-job[data-job-id]')) {
        const list = (seen[el.dataset.jobId] ??= []);
        if (list[list.length - 1] !== el.dataset.status) list.push(el.dataset.status);
      }
    };
    new MutationObserver(note).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-status'] });
    note();
    window.__jobwireStatuses = seen;
  })()`);
}

/** Statuses a job's row has shown since {@link recordStatuses}; a reload would have lost them. */
export async function seenStatuses(page: Page, id: string): Promise<string[]> {
  return (await page.evaluate(`window.__jobwireStatuses[${JSON.stringify(id)}] ?? []`)) as string[];
}

/** Writes a screenshot to {@link SCREENSHOTS}NAME. */
export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: SCREENSHOTS + name });
}
