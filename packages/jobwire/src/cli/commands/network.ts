/**
 * `jobwire network graph FILE`: draws a network file as Graphviz DOT or a Mermaid flowchart,
 * after the same checks a start would make (all but importing js modules). Needs no server.
 * @module
 */
import type { Command } from 'commander';
import { checkNetwork, loadNetworkFile, networkToDot, networkToMermaid } from '../../networks/index.js';
import { act, examples, print } from './common.js';

interface GraphOptions {
  mermaid?: boolean;
}

/** Adds `jobwire network graph`. */
export function registerNetwork(program: Command): void {
  const network = program
    .command('network')
    .summary('job networks: jobs joined by pipes (see docs/networks.md)')
    .description('Work with job networks: long-running jobs whose outputs feed other jobs\' inputs through pipes, described in a YAML network file (docs/networks.md).');

  network
    .command('graph')
    .summary('draw a network file as Graphviz DOT or Mermaid')
    .description(
      'Check a network file and print it as a Graphviz digraph (render with: dot -Tsvg) or, with --mermaid, as a Mermaid flowchart. ' +
        'Jobs are nodes; each pipe is an edge from its producer to each consumer, labelled with its name, framing and queue. ' +
        'A file with problems is refused with each problem\'s field and line (exit code 2); js modules are not imported here.',
    )
    .argument('<file>', 'the network file (YAML)')
    .option('--mermaid', 'print a Mermaid flowchart instead of DOT')
    .addHelpText(
      'after',
      examples(
        ['jobwire network graph squares.yaml | dot -Tsvg > squares.svg', 'draw the network with Graphviz'],
        ['jobwire network graph squares.yaml --mermaid', 'a flowchart to paste into Markdown'],
      ),
    )
    .action(
      act(async (file: string, opts: GraphOptions) => {
        const loaded = await loadNetworkFile(file);
        await checkNetwork(loaded, { importModules: false });
        process.stdout.write(opts.mermaid ? networkToMermaid(loaded.network) : `${networkToDot(loaded.network)}\n`);
      }),
    );
}
