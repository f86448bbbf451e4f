/**
 * `jobwire network run FILE`: checks a network file here (so problems come with their lines)
 * and starts it on the server; `--block` follows it to the end. `jobwire network graph FILE|NAME`:
 * draws a network file as Graphviz DOT or a Mermaid flowchart, after the same checks a start
 * would make (all but importing js modules) and with no server — or, when no such file exists,
 * the network of that name as the server knows it, drawn the same way. `jobwire network status NAME`
 * and `jobwire network stop NAME` tell how a running network goes, and stop it;
 * `jobwire network rm NAME` removes one that has ended; `jobwire network tap NAME PIPE` prints a
 * pipe's frames.
 * @module
 */
import type { Command } from 'commander';
import { once } from 'node:events';
import { dirname, resolve } from 'node:path';
import { readFile, stat } from 'node:fs/promises';
import { isFinal, type JobwireApi, type NetworkGraph, type NetworkSpec, type NetworkStatus } from '@jobwire/client';
import { parse } from 'yaml';
import { checkNetwork, loadNetworkFile, networkGraph, networkToDot, networkToMermaid } from '../../networks/index.js';
import { addConnectionOptions, connect, connectedTarget, serverListening, type ConnectionOptions } from '../connect.js';
import { CliError, jobwireErrorCode, noServerMessage } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { formatDuration, formatJson, formatTable } from '../format.js';
import { startSpinner } from '../spinner.js';
import { act, examples, print } from './common.js';

interface GraphOptions extends ConnectionOptions {
  mermaid?: boolean;
}

interface RunOptions extends ConnectionOptions {
  block?: boolean;
  json?: boolean;
}

/** How often `--block` asks how the network runs. */
const POLL_MS = 300;

/** The status as two tables: jobs, then pipes. */
function formatStatus(status: NetworkStatus): string {
  const jobs = formatTable(
    ['JOB', 'STATUS', 'EXIT', 'NODE', 'IN', 'OUT', 'RESTARTS', 'MOVES', 'ID'],
    status.jobs.map((j) => [j.name, j.status, j.exitCode === null ? '-' : String(j.exitCode), j.node ?? '-', String(j.framesIn), String(j.framesOut), String(j.restarts), String(j.moves), j.id]),
  );
  const pipes = status.pipes.length === 0 ? '' : `\n\n${formatTable(['PIPE', 'FRAMES', 'QUEUED', 'DROPPED'], status.pipes.map((p) => [p.name, String(p.frames), String(p.lag), String(p.dropped)]))}`;
  const errors = status.errors.map((e) => `\nerror: ${e}`).join('');
  return `network ${status.name} (${status.state}, group ${status.group})\n${jobs}${pipes}${errors}`;
}

/** What the spinner of `network run --block` says: the state, how many jobs ended, the time waited. */
function networkProgress(status: NetworkStatus, since: number): string {
  const ended = status.jobs.filter((j) => isFinal(j.status)).length;
  return `waiting for network ${status.name}: ${status.state}, ${ended} of ${status.jobs.length} jobs ended, ${formatDuration(Date.now() - since)}`;
}

/** Polls a running network until it is no longer running, with a spinner on stderr when it is a terminal. */
async function followNetwork(api: JobwireApi, first: NetworkStatus): Promise<NetworkStatus> {
  const since = Date.now();
  const spinner = startSpinner(networkProgress(first, since));
  let status = first;
  try {
    while (status.state === 'running') {
      await new Promise((r) => setTimeout(r, POLL_MS));
      status = await api.networkStatus(status.name);
      spinner.update(networkProgress(status, since));
    }
    return status;
  } finally {
    spinner.stop();
  }
}

/** Adds `jobwire network graph`. */
export function registerNetwork(program: Command): void {
  const network = program
    .command('network')
    .summary('job networks: jobs joined by pipes (see docs/networks.md)')
    .description('Work with job networks: long-running jobs whose outputs feed other jobs\' inputs through pipes, described in a YAML network file (docs/networks.md).');

  addConnectionOptions(
    network
      .command('run')
      .summary('start a network')
      .description(
        'Check a network file and start it: each job becomes an ordinary job in the group networks:NAME, wired to its pipes by the server. ' +
          'A file with problems is refused with each problem\'s field and line (exit code 2); nothing starts. ' +
          'With --block, wait until every job has ended and exit 0 only when all succeeded.',
      )
      .argument('<file>', 'the network file (YAML)')
      .option('--block', 'wait until every job has ended (progress on stderr when it is a terminal), then print the status')
      .option('--json', 'print the status as JSON'),
  )
    .addHelpText(
      'after',
      examples(
        ['jobwire network run squares.yaml --block', 'run it to the end; exit 0 when every job succeeded'],
        ['jobwire jobs --group networks:squares --summary', "the network's jobs, like any others"],
      ),
    )
    .action(
      act(async (file: string, opts: RunOptions) => {
        const loaded = await loadNetworkFile(file);
        await checkNetwork(loaded);
        const api = await connect(opts);
        // The file's own content goes to the server, which checks it again and resolves its paths against the file's folder.
        const spec = parse(await readFile(file, 'utf8')) as NetworkSpec;
        let status = await api.runNetwork(spec, { baseDir: dirname(resolve(file)) });
        if (opts.block && status.state === 'running') status = await followNetwork(api, status);
        print(opts.json ? formatJson(status) : formatStatus(status));
        return opts.block && status.state !== 'done' ? ExitCode.FAILED : ExitCode.OK;
      }),
    );

  const byName: Array<{ command: string; summary: string; description: string; call: (api: JobwireApi, name: string) => Promise<NetworkStatus> }> = [
    {
      command: 'status',
      summary: 'how a network runs: its jobs and pipes',
      description:
        'Print the newest run of a network (any server answers, from the status the wiring server saves in the store): per job its status, node, frames taken in and stored out, restarts, and moves (placed again after its worker died); ' +
        'per pipe the frames stored, the frames queued (stored and not yet read by its slowest consumer) and the frames dropped.',
      call: (api, name) => api.networkStatus(name),
    },
    {
      command: 'stop',
      summary: 'stop a network: cancel its jobs',
      description:
        'Cancel every job of the newest run of a network; none is restarted. Its pipes are kept as they are (not ended): taps on them end, after every frame stored, saying the network was stopped. Prints the status. ' +
        'Only the server that wires the network stops it (another answers 409, naming it).',
      call: (api, name) => api.stopNetwork(name),
    },
  ];
  for (const { command, summary, description, call } of byName) {
    addConnectionOptions(network.command(command).summary(summary).description(description).argument('<name>', 'the network name').option('--json', 'print the status as JSON')).action(
      act(async (name: string, opts: RunOptions) => {
        const status = await call(await connect(opts), name);
        print(opts.json ? formatJson(status) : formatStatus(status));
      }),
    );
  }

  addConnectionOptions(
    network
      .command('list')
      .alias('ls')
      .summary('list your networks: the newest run of each')
      .description("List your networks (GET /v1/networks; in distributed mode every server's, whichever server answers): per network its state, how many of its jobs have ended, its pipes and its newest run.")
      .option('--json', 'print the networks as a JSON array (their full status)'),
  )
    .addHelpText('after', examples(['jobwire network list', 'your networks and their state'], ['jobwire network list --json | jq -r \'.[] | select(.state == "running") | .name\'', 'the names of those still running']))
    .action(
      act(async (opts: RunOptions) => {
        const items = await (await connect(opts)).networks();
        if (opts.json) print(formatJson(items));
        else if (items.length > 0) {
          const rows = items.map((n) => [n.name, n.state, `${n.jobs.filter((j) => isFinal(j.status)).length}/${n.jobs.length}`, String(n.pipes.length), n.run]);
          print(formatTable(['NAME', 'STATE', 'JOBS ENDED', 'PIPES', 'RUN'], rows));
        }
      }),
    );

  addConnectionOptions(
    network
      .command('rm')
      .alias('delete')
      .summary('remove a network that has ended: its record and its pipes')
      .description(
        'Remove a network that no longer runs (done, failed or stopped): its saved record and the streams of its newest run (pipes and consumer cursors), so its frames are gone. ' +
          'Its jobs stay, as ended jobs of the group networks:NAME (remove them with jobwire delete). Refused while the network runs: stop it first (jobwire network stop NAME).',
      )
      .argument('<name>', 'the network name')
      .option('--json', 'print what was removed as JSON'),
  )
    .addHelpText('after', examples(['jobwire network rm squares', 'remove a network that has ended (after jobwire network stop, once its status says stopped)']))
    .action(
      act(async (name: string, opts: RunOptions) => {
        const removed = await (await connect(opts)).removeNetwork(name);
        print(opts.json ? formatJson(removed) : `removed network ${removed.name} (run ${removed.run}, ${removed.streams} streams)`);
      }),
    );

  addConnectionOptions(
    network
      .command('tap')
      .summary("print the frames of a network's pipe, live until it ends")
      .description(
        "Print every frame stored in a pipe of the newest run of a network, from the first, then each new one as it is stored, until the pipe ends (any server answers; a tap commits nothing and holds no producer back). " +
          'Each value on a line of its own (lines as they are, JSON frames as JSON, bytes as they are); with --json one JSON object a line: {seq, index, epoch, reset, value}, bytes as {"$bytes": base64}. ' +
          'When the network is stopped (or fails) before the pipe ended, the tap prints every frame stored, then stops with an error saying so (exit code 1). ' +
          'A tap follows one run: when the network is started again or removed while the tap is behind, the tap stops with an error saying so (exit code 1, or 4 when removed).',
      )
      .argument('<name>', 'the network name')
      .argument('<pipe>', 'the pipe name')
      .option('--json', 'print each frame as a JSON object, one a line'),
  )
    .addHelpText(
      'after',
      examples(
        ['jobwire network tap squares sq', 'every square so far, then live ones, until the pipe ends'],
        ['jobwire network tap squares sq --json | jq .seq', 'frames with their sequence numbers'],
      ),
    )
    .action(
      act(async (name: string, pipe: string, opts: RunOptions) => {
        const api = await connect(opts);
        for await (const frame of api.tapPipe(name, pipe)) {
          const text = opts.json ? `${JSON.stringify({ ...frame, value: frame.value instanceof Uint8Array ? { $bytes: Buffer.from(frame.value).toString('base64') } : frame.value })}\n` : undefined;
          const data = text ?? (frame.value instanceof Uint8Array ? frame.value : `${typeof frame.value === 'string' ? frame.value : JSON.stringify(frame.value)}\n`);
          if (!process.stdout.write(data)) await once(process.stdout, 'drain');
        }
      }),
    );

  addConnectionOptions(
    network
      .command('graph')
      .summary('draw a network (a file, or one the server knows) as Graphviz DOT or Mermaid')
      .description(
        'Print a network as a Graphviz digraph (render with: dot -Tsvg) or, with --mermaid, as a Mermaid flowchart. ' +
          'Jobs are nodes, labelled with how they run; each pipe is an edge from its producer to each consumer, labelled with its name, framing and queue. ' +
          'When the argument is an existing file, it is checked and drawn here, with no server: a file with problems is refused with each problem\'s field and line (exit code 2); js modules are not imported. ' +
          'Otherwise it is the name of a network the server knows (running or ended, GET /v1/networks/:name/graph), drawn the same way as its file; neither a file nor a known network is exit code 4.',
      )
      .argument('<file|name>', 'the network file (YAML), or the name of a network the server knows')
      .option('--mermaid', 'print a Mermaid flowchart instead of DOT'),
  )
    .addHelpText(
      'after',
      examples(
        ['jobwire network graph squares.yaml | dot -Tsvg > squares.svg', 'draw the network file with Graphviz'],
        ['jobwire network graph squares.yaml --mermaid', 'a flowchart to paste into Markdown'],
        ['jobwire network graph squares', 'the network squares as the server runs it (its newest run)'],
      ),
    )
    .action(
      act(async (what: string, opts: GraphOptions) => {
        const graph = (await isFile(what)) ? await fileGraph(what) : await serverGraph(what, opts);
        process.stdout.write(opts.mermaid ? networkToMermaid(graph) : `${networkToDot(graph)}\n`);
      }),
    );
}

/** Whether `path` names an existing file (a folder or nothing is not one). */
async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() ?? false;
}

/** The graph of a network file, after the checks a start would make (all but importing js modules). */
async function fileGraph(file: string): Promise<NetworkGraph> {
  const loaded = await loadNetworkFile(file);
  await checkNetwork(loaded, { importModules: false });
  // A file has no run yet; the drawing does not show one.
  return networkGraph(loaded.network, '');
}

/** The graph of the newest run of the network `name`, as the server answers it; the error names both tries when there is none. */
async function serverGraph(name: string, opts: GraphOptions): Promise<NetworkGraph> {
  const tried = `no file ${resolve(name)}`;
  let api: JobwireApi;
  try {
    api = await connect(opts);
  } catch (err) {
    if (err instanceof CliError) throw new CliError(`${tried}, and no server to ask for a network named ${JSON.stringify(name)}: ${err.message}`, err.exitCode, { cause: err });
    throw err;
  }
  try {
    return await api.networkGraph(name);
  } catch (err) {
    const code = jobwireErrorCode(err);
    const target = connectedTarget();
    if (code === 'not_found') {
      throw new CliError(`${tried}, and ${target?.url ?? 'the server'} knows no network ${JSON.stringify(name)} (jobwire network list shows those it knows)`, ExitCode.NOT_FOUND, { cause: err });
    }
    // Nothing listens there: say so after the file tried, as other commands say it alone.
    if ((code === 'no_server' || code === 'connection') && target?.url !== undefined && !(await serverListening(target.url))) {
      throw new CliError(`${tried}, and no server to ask for a network named ${JSON.stringify(name)}: ${noServerMessage(target)}`, ExitCode.NO_SERVER, { cause: err });
    }
    throw err;
  }
}
