/**
 * The shape of a network as the API gives it (`GET /v1/networks/:name/graph`): jobs with their
 * kind, how it runs (command, module) and pipes, pipes with their framing, queue, producer and
 * consumers. The dashboard draws its network page from it, and `jobwire network graph NAME` its
 * DOT or Mermaid (`graph.ts`); the counts that change come from the status.
 * @module
 */
import type { NetworkGraph } from '@jobwire/client';
import type { Network } from './model.js';

/** The graph of `network`'s run `run`. */
export function networkGraph(network: Network, run: string): NetworkGraph {
  return {
    name: network.name,
    run,
    jobs: Object.values(network.jobs).map((job) => ({
      name: job.name,
      kind: job.kind ?? 'executable',
      ...(job.builtin !== undefined ? { builtin: job.builtin } : {}),
      ...(job.command !== undefined ? { command: [...job.command] } : {}),
      ...(job.js !== undefined ? { js: { ...job.js } } : {}),
      inputs: [...job.inputs],
      outputs: [...job.outputs],
    })),
    pipes: Object.values(network.pipes).map((pipe) => ({
      name: pipe.name,
      framing: pipe.framing,
      ...(pipe.encoding !== undefined ? { encoding: pipe.encoding } : {}),
      queue: { max: pipe.queue.max, overflow: pipe.queue.overflow, mode: pipe.queue.mode },
      producer: pipe.producers[0] ?? '',
      consumers: [...pipe.consumers],
    })),
  };
}
