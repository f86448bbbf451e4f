/**
 * Delays longer than one setTimeout can wait (2^31-1 ms, about 24.8 days): maxRuntime up to the
 * schema's year, and grace periods of any length.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_TIMER_MS, setLongTimeout, type TimerFunctions } from '../../src/timers.js';
import { sleepUntil, withServer } from '../helpers.js';

/** A virtual clock: timers fire only when the test moves time on; every delay asked is recorded. */
function fakeTimers(): TimerFunctions & { now: number; delays: number[]; pending(): number; advance(ms: number): void } {
  let id = 0;
  const timers = new Map<number, { at: number; callback: () => void }>();
  const fake = {
    now: 0,
    delays: [] as number[],
    setTimeout(callback: () => void, ms: number): NodeJS.Timeout {
      fake.delays.push(ms);
      timers.set(++id, { at: fake.now + ms, callback });
      return id as unknown as NodeJS.Timeout;
    },
    clearTimeout(timer: NodeJS.Timeout): void {
      timers.delete(timer as unknown as number);
    },
    pending: () => timers.size,
    advance(ms: number): void {
      const until = fake.now + ms;
      for (;;) {
        const due = [...timers.entries()].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
        if (!due) break;
        timers.delete(due[0]);
        fake.now = due[1].at;
        due[1].callback();
      }
      fake.now = until;
    },
  };
  return fake;
}

const YEAR_MS = 525_600 * 60_000;

describe('long timers', () => {
  it('fires a delay of a year exactly when it is due, asking setTimeout for no more than 2^31-1 ms at a time', () => {
    const timers = fakeTimers();
    let fired = 0;
    setLongTimeout(() => fired++, YEAR_MS, { timers });
    timers.advance(MAX_TIMER_MS);
    assert.equal(fired, 0, 'not after the first step');
    timers.advance(YEAR_MS - MAX_TIMER_MS - 1);
    assert.equal(fired, 0, 'not 1 ms early');
    timers.advance(1);
    assert.equal(fired, 1);
    timers.advance(YEAR_MS);
    assert.equal(fired, 1, 'once');
    assert.ok(timers.delays.length > 1 && timers.delays.every((d) => d <= MAX_TIMER_MS), `delays asked: ${timers.delays.join(', ')}`);
    assert.equal(timers.delays.reduce((a, b) => a + b, 0), YEAR_MS);
  });

  it('never fires once cleared, in any step of the chain', () => {
    const timers = fakeTimers();
    let fired = 0;
    const timer = setLongTimeout(() => fired++, 3 * MAX_TIMER_MS, { timers });
    timers.advance(MAX_TIMER_MS + 5);
    timer.clear();
    assert.equal(timers.pending(), 0);
    timers.advance(10 * MAX_TIMER_MS);
    assert.equal(fired, 0);
    timer.clear();
  });

  it('fires short, zero and negative delays as setTimeout does, and an infinite one never', () => {
    const timers = fakeTimers();
    const fired: string[] = [];
    setLongTimeout(() => fired.push('short'), 10, { timers });
    setLongTimeout(() => fired.push('zero'), 0, { timers });
    setLongTimeout(() => fired.push('negative'), -5, { timers });
    setLongTimeout(() => fired.push('never'), Number.POSITIVE_INFINITY, { timers });
    timers.advance(10);
    assert.deepEqual(fired.sort(), ['negative', 'short', 'zero']);
    assert.equal(timers.pending(), 0, 'an infinite delay holds no timer');
  });

  it('keeps a job with the largest maxRuntime (525600 minutes) running', async () => {
    await withServer(async ({ client }) => {
      const job = await client.submitBatchJob({ executable: 'sleep', arguments: ['30'], maxRuntime: 525_600, queueName: 'unlimited' });
      await client.waitUntilRunning(job.id, 10_000);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const info = await client.getJobStatus(job.id);
      assert.equal(info.status, 'Running', `after a second: ${info.status} ${info.error ?? ''}`);
      await client.cancelJob(job.id);
      assert.equal((await client.waitUntilDone(job.id, 10_000)).status, 'Cancelled');
    });
  });

  it('gives a cancelled job its whole grace period when it is longer than 24.8 days', async () => {
    // 30 days of grace: the job gets SIGTERM, takes a second to clean up and exits by itself;
    // a SIGKILL fired early (a setTimeout overflow) would cut its clean-up short.
    await withServer(
      async ({ client }) => {
        const job = await client.submitBatchJob({
          executable: 'sh',
          arguments: ['-c', "trap 'sleep 1; echo cleaned; exit 7' TERM; echo ready; while true; do sleep 0.1; done"],
          queueName: 'unlimited',
        });
        await sleepUntil(async () => (await client.readOutput(job.id)).size > 0, 10_000, 'the trap to be set');
        await client.cancelJob(job.id);
        const done = await client.waitUntilDone(job.id, 15_000);
        assert.equal(done.status, 'Cancelled');
        assert.equal(done.signal, null, `killed by ${done.signal}`);
        assert.equal(done.exitCode, 7);
        assert.equal(Buffer.from((await client.readOutput(job.id)).data).toString(), 'ready\ncleaned\n');
      },
      { graceSeconds: 30 * 24 * 3600 },
    );
  });
});
