/**
 * The `logging` builtin end to end: a real server runs a network with a busy job, an idle job
 * and a logging job; the CSV file gets rows for each running job, sampled from /proc, and the
 * busy job's cpu time grows from row to row. In distributed mode the logging job runs on one
 * worker and measures a job on another (both workers on this machine, so /proc shows both).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cliEnv, runCli, sleepUntil, withServer } from '../helpers.js';
import { withCluster } from '../distributed/cluster.js';

let dir: string;

/**
 * A fixed amount of work (about 2 cpu seconds of a 2020s machine), not a fixed time: on a loaded
 * machine it takes longer, but the cpu time it adds up to is the same.
 */
const BUSY = 'i=0; while [ $i -lt 1500000 ]; do i=$((i+1)); done';

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'jobwire-network-logging-'));
});

after(() => rmSync(dir, { recursive: true, force: true }));

describe('the logging builtin', () => {
  it("writes the cpu, memory and elapsed time of the network's jobs to CSV while they run, then ends with them", async () => {
    const network = join(dir, 'measured.yaml');
    writeFileSync(
      network,
      `name: measured
jobs:
  busy:  { command: [sh, -c, '${BUSY}'] }
  idle:  { command: [sleep, '2'] }
  log:   { builtin: logging, path: ./usage.csv, interval: 250 }
`,
    );
    await withServer(async (s) => {
      const result = await runCli(['network', 'run', network, '--block', '--json'], { env: cliEnv(s), timeoutMs: 120_000 });
      assert.equal(result.code, 0, result.stderr + result.stdout);
      const status = JSON.parse(result.stdout) as { state: string; jobs: Array<{ name: string; status: string }> };
      assert.equal(status.state, 'done');
      assert.deepEqual(new Map(status.jobs.map((j) => [j.name, j.status])), new Map([['busy', 'Success'], ['idle', 'Success'], ['log', 'Success']]));
      const ids = new Map(status.jobs.map((j) => [j.name, (j as unknown as { id: string }).id]));

      const [header, ...lines] = readFileSync(join(dir, 'usage.csv'), 'utf8').trimEnd().split('\n');
      assert.equal(header, 'time,job,id,pid,cpu_seconds,rss_bytes,elapsed_seconds,processes');
      const rows = lines.map((line) => {
        const [time, job, id, pid, cpu, rss, elapsed, processes] = line.split(',');
        return { time: Date.parse(time!), job: job!, id: id!, pid: Number(pid), cpu: Number(cpu), rss: Number(rss), elapsed: Number(elapsed), processes: Number(processes) };
      });
      for (const row of rows) {
        assert.ok(Number.isFinite(row.time) && row.pid > 0 && row.rss > 0 && row.processes >= 1 && row.elapsed >= 0, `a whole row: ${JSON.stringify(row)}`);
        assert.equal(row.id, ids.get(row.job), 'the job id of the row is the job of that name');
      }
      assert.deepEqual(new Set(rows.map((r) => r.job)), new Set(['busy', 'idle']), 'rows for each measured job, none for the logging job itself');
      const busy = rows.filter((r) => r.job === 'busy');
      const idle = rows.filter((r) => r.job === 'idle');
      assert.ok(busy.length >= 4, `several samples of the busy job (${busy.length})`);
      for (let i = 1; i < busy.length; i++) {
        assert.ok(busy[i]!.cpu >= busy[i - 1]!.cpu, 'cpu time never goes back');
        assert.ok(busy[i]!.elapsed > busy[i - 1]!.elapsed, 'elapsed time goes on');
      }
      assert.ok(busy.at(-1)!.cpu - busy[0]!.cpu >= 0.5, `the busy job's cpu grows: ${busy[0]!.cpu} → ${busy.at(-1)!.cpu}`);
      assert.ok(idle.at(-1)!.cpu < 0.5, `the idle job uses next to no cpu: ${idle.at(-1)!.cpu}`);
    });
  });

  it('measures, from a worker, a job running on another worker of the same machine (distributed mode)', async () => {
    await withCluster(async (cluster) => {
      await cluster.addServer();
      await cluster.addWorker({ name: 'left', pools: ['left'], slots: 2 });
      await cluster.addWorker({ name: 'right', pools: ['right'], slots: 2 });
      const client = cluster.client();
      const path = join(dir, 'distributed.csv');
      const started = await client.runNetwork(
        {
          name: 'spread',
          jobs: {
            busy: { command: ['sh', '-c', BUSY], pools: ['left'] },
            log: { builtin: 'logging', path, interval: 250, pools: ['right'] },
          },
        },
        { baseDir: dir },
      );
      const status = await sleepUntil(
        async () => {
          const now = await client.networkStatus('spread');
          return now.state === 'running' ? undefined : now;
        },
        60_000,
        'the network to end',
      );
      assert.equal(status.state, 'done', JSON.stringify(status));
      assert.deepEqual(new Map(status.jobs.map((j) => [j.name, j.node])), new Map([['busy', 'left'], ['log', 'right']]));
      const rows = readFileSync(path, 'utf8').trimEnd().split('\n').slice(1).map((line) => line.split(','));
      const busy = rows.filter((r) => r[1] === 'busy');
      assert.ok(busy.length >= 4, `several samples (${busy.length})`);
      assert.equal(busy[0]![2], started.jobs.find((j) => j.name === 'busy')!.id);
      assert.ok(Number(busy.at(-1)![4]) - Number(busy[0]![4]) >= 0.5, `cpu grows: ${busy[0]![4]} → ${busy.at(-1)![4]}`);
    });
  });
});
