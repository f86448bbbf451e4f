/**
 * A stand-in for a jobwire server in the job host tests: a separate node process that connects
 * to (or starts) a home's host and obeys JSON commands on stdin, one per line —
 * `{"op":"start","job":StartJob}`, `{"op":"subscribe","jobId","from"}`,
 * `{"op":"stdin","jobId","offset","text"}`, `{"op":"resize","jobId","cols","rows"}` — printing
 * what happens as JSON lines on stdout (see `ClientEvent` in helpers.ts). Tests kill it -9.
 * Usage: `node client-process.js HOME HOST_OPTIONS_JSON [CLIENT_OPTIONS_JSON]` (the client's
 * options: `keepAliveMs`, `versions`).
 */
import { createInterface } from 'node:readline';
import { ensureHost } from '../../src/host/ensure.js';

const [home, hostOptions, clientOptions] = process.argv.slice(2);
// node --test runs every .js file under test/ as a test file, without arguments: nothing to do.
if (home === undefined) process.exit(0);
const print = (message: object): void => {
  process.stdout.write(JSON.stringify(message) + '\n');
};
const { client } = await ensureHost(home!, { ...(JSON.parse(clientOptions ?? '{}') as object), host: JSON.parse(hostOptions ?? '{}') as object });
print({ ev: 'connected', hostPid: client.host.pid });

createInterface({ input: process.stdin }).on('line', (line) => {
  const command = JSON.parse(line) as { op: string; [key: string]: unknown };
  const run = async (): Promise<unknown> => {
    switch (command.op) {
      case 'start':
        return client.start(command.job as Parameters<typeof client.start>[0]);
      case 'subscribe': {
        const jobId = command.jobId as string;
        return client.subscribe(
          jobId,
          (event) => {
            if (event.type === 'output') print({ ev: 'output', jobId, pos: event.chunk.pos, channel: event.chunk.channel, data: Buffer.from(event.chunk.data).toString('base64') });
            if (event.type === 'exit') print({ ev: 'exit', jobId, exit: event.exit });
          },
          { from: (command.from as number | undefined) ?? 0 },
        );
      }
      case 'stdin':
        return client.writeStdin(command.jobId as string, command.offset as number, Buffer.from(command.text as string, 'latin1'));
      case 'resize':
        return client.resize(command.jobId as string, command.cols as number, command.rows as number);
      default:
        throw new Error(`unknown op ${command.op}`);
    }
  };
  run().then(
    (result) => print({ ev: 'reply', op: command.op, result }),
    (error: unknown) => print({ ev: 'error', op: command.op, message: (error as Error).message }),
  );
});
