import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addUser, sleepUntil, withServer, type TestServer } from '../helpers.js';

/** One scrape: each sample by its series (`name{label="value",...}`, labels sorted), and the `# TYPE` of each metric. */
interface Scrape {
  samples: Map<string, number>;
  types: Map<string, string>;
}

/**
 * Parses the Prometheus text format (version 0.0.4) — prom-client writes it but has no parser.
 * Fails on any line that is not a comment, a blank or a sample, so a malformed exposition fails
 * the test.
 */
function parseExposition(text: string): Scrape {
  const samples = new Map<string, number>();
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      types.set(type[1]!, type[2]!);
      continue;
    }
    if (line.startsWith('# HELP ')) continue;
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(sample, `not a line of the exposition format: ${JSON.stringify(line)}`);
    const labels: string[] = [];
    for (const pair of (sample[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g)) labels.push(`${pair[1]}="${pair[2]}"`);
    const raw = sample[3]!;
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : raw === 'Nan' || raw === 'NaN' ? NaN : Number(raw);
    assert.ok(!Number.isNaN(value) || /^nan$/i.test(raw), `not a sample value: ${JSON.stringify(line)}`);
    samples.set(`${sample[1]}{${labels.sort().join(',')}}`, value);
  }
  return { samples, types };
}

async function scrape(s: TestServer): Promise<Scrape> {
  const res = await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${s.token}` } });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return parseExposition(await res.text());
}

/** The value of one series, 0 when the scrape has none. */
function value(scrape: Scrape, series: string): number {
  return scrape.samples.get(series) ?? 0;
}

describe('metrics', () => {
  it('serves /metrics to admin tokens only: 401 without a token, 403 for a user', async () => {
    await withServer(async (s) => {
      const none = await fetch(`${s.url}/metrics`);
      assert.equal(none.status, 401);
      assert.equal(((await none.json()) as { error: { code: string } }).error.code, 'unauthorized');
      const bob = await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${addUser(s.home, 'bob')}` } });
      assert.equal(bob.status, 403);
      assert.equal(((await bob.json()) as { error: { code: string } }).error.code, 'forbidden');
    });
  });

  it('counts jobs by status and queue, attach sessions, bytes sent, store latency and event-loop delay, as a job runs and is attached to', async () => {
    await withServer(async (s) => {
      const before = await scrape(s);
      for (const [name, type] of [
        ['jobwire_jobs', 'gauge'],
        ['jobwire_jobs_finished_total', 'counter'],
        ['jobwire_attach_sessions', 'gauge'],
        ['jobwire_output_sent_bytes_total', 'counter'],
        ['jobwire_store_operation_duration_seconds', 'histogram'],
        ['nodejs_eventloop_lag_p99_seconds', 'gauge'],
      ]) {
        assert.equal(before.types.get(name!), type, `# TYPE of ${name}`);
      }
      // Every queue is there from the start, at 0.
      assert.equal(before.samples.get('jobwire_jobs{queue="unlimited",status="Running"}'), 0);

      const job = await s.client.submitInteractiveJob({ executable: 'cat', queueName: 'unlimited' });
      await s.client.waitUntilRunning(job.jobId, 20_000);
      const running = await scrape(s);
      assert.equal(value(running, 'jobwire_jobs{queue="unlimited",status="Running"}'), 1, 'the running job');
      assert.equal(value(running, 'jobwire_attach_sessions{transport="websocket"}'), value(before, 'jobwire_attach_sessions{transport="websocket"}') + 1, 'the open attach session');
      const created = 'jobwire_store_operation_duration_seconds_count{operation="createJob"}';
      assert.ok(value(running, created) >= value(before, created) + 1, 'createJob timed');
      assert.equal(value(running, 'jobwire_store_operation_duration_seconds_bucket{le="+Inf",operation="createJob"}'), value(running, created), 'the +Inf bucket counts every call');

      await job.stdin.write('hello metrics\n');
      await job.stdin.end();
      let echoed = '';
      for await (const chunk of job.output) echoed += Buffer.from(chunk.data).toString();
      assert.equal(echoed, 'hello metrics\n');
      assert.equal((await job.exit).status, 'Success');
      const download = await s.client.readOutput(job.jobId);
      assert.equal(Buffer.from(download.data).toString(), 'hello metrics\n');

      // The server notices the closed socket on its own time.
      const after = await sleepUntil(async () => {
        const now = await scrape(s);
        return value(now, 'jobwire_attach_sessions{transport="websocket"}') === value(before, 'jobwire_attach_sessions{transport="websocket"}') && now;
      }, 10_000, 'the attach session counted closed');
      assert.equal(value(after, 'jobwire_jobs{queue="unlimited",status="Running"}'), 0);
      assert.equal(
        value(after, 'jobwire_jobs_finished_total{queue="unlimited",status="Success"}'),
        value(before, 'jobwire_jobs_finished_total{queue="unlimited",status="Success"}') + 1,
        'the finished job',
      );
      assert.equal(value(after, 'jobwire_output_sent_bytes_total{transport="websocket"}') - value(before, 'jobwire_output_sent_bytes_total{transport="websocket"}'), 14, 'bytes sent over the attach socket');
      assert.equal(value(after, 'jobwire_output_sent_bytes_total{transport="http"}') - value(before, 'jobwire_output_sent_bytes_total{transport="http"}'), 14, 'bytes of the download');
      const appended = 'jobwire_store_operation_duration_seconds_count{operation="streams.appendStdin"}';
      assert.ok(value(after, appended) > value(before, appended), 'stream log operations timed');
      const lag = after.samples.get('nodejs_eventloop_lag_p99_seconds{}');
      assert.ok(lag !== undefined && Number.isFinite(lag) && lag >= 0, `event-loop delay p99: ${lag}`);
    });
  });
});
