/**
 * Drawings of a network: Graphviz DOT (written with ts-graphviz, which quotes and escapes) and
 * Mermaid flowcharts. Jobs are nodes; each pipe is an edge from its producer to each consumer,
 * labelled with the pipe's name, framing and queue. A pipe nobody reads ends in a small node of
 * its own, so every pipe shows. Both draw a {@link NetworkGraph} — the shape the API answers for
 * a network the server knows, and the one a checked network file gives (`shape.ts`) — so that
 * `jobwire network graph FILE` and `jobwire network graph NAME` draw the same.
 * @module
 */
import { basename } from 'node:path';
import type { NetworkGraph } from '@jobwire/client';
import { Digraph, Edge, Node, toDot } from 'ts-graphviz';

type GraphJob = NetworkGraph['jobs'][number];
type GraphPipe = NetworkGraph['pipes'][number];

/** What a job node says under its name: how it runs. */
export function jobSummary(job: GraphJob): string {
  switch (job.kind) {
    case 'executable':
      return job.command?.[0] !== undefined ? basename(job.command[0]) : '?';
    case 'js':
      return job.js === undefined ? 'js' : `js ${basename(job.js.module)}${job.js.export !== undefined ? `#${job.js.export}` : ''}`;
    case 'builtin':
      return `builtin ${job.builtin ?? '?'}`;
  }
}

/** What a pipe edge says: name, framing, and its queue when it is not the plain blocking one. */
export function pipeLabel(pipe: GraphPipe): string {
  const framing = pipe.framing === 'frames' ? `frames/${pipe.encoding ?? 'json'}` : pipe.framing;
  const queue = pipe.queue.mode === 'latest' ? 'latest' : pipe.queue.overflow === 'block' ? `max ${pipe.queue.max}` : `max ${pipe.queue.max}, ${pipe.queue.overflow}`;
  return `${pipe.name}\n${framing}, ${queue}`;
}

/** Edges of the drawing: producer → consumer per pipe, or producer → a pipe's own node when nobody reads it. */
function edgesOf(graph: NetworkGraph): Array<{ pipe: GraphPipe; from: string; to: string | undefined }> {
  const edges: Array<{ pipe: GraphPipe; from: string; to: string | undefined }> = [];
  for (const pipe of graph.pipes) {
    if (pipe.consumers.length === 0) edges.push({ pipe, from: pipe.producer, to: undefined });
    for (const to of pipe.consumers) edges.push({ pipe, from: pipe.producer, to });
  }
  return edges;
}

const SHAPES: Record<string, string> = { executable: 'box', js: 'ellipse', builtin: 'component' };

/** The network as a Graphviz `digraph` named after it; node ids are job names, open pipes `pipe:NAME`. */
export function networkToDot(network: NetworkGraph): string {
  const graph = new Digraph(network.name, { rankdir: 'LR' });
  const nodes = new Map<string, Node>();
  for (const job of network.jobs) {
    const node = new Node(job.name, { label: `${job.name}\n${jobSummary(job)}`, shape: SHAPES[job.kind] ?? 'box' });
    nodes.set(job.name, node);
    graph.addNode(node);
  }
  for (const { pipe, from, to } of edgesOf(network)) {
    let target = to === undefined ? undefined : nodes.get(to);
    if (target === undefined) {
      target = new Node(`pipe:${pipe.name}`, { label: pipe.name, shape: 'point' });
      graph.addNode(target);
    }
    graph.addEdge(new Edge([nodes.get(from)!, target], { label: pipeLabel(pipe) }));
  }
  return toDot(graph);
}

/** Mermaid escapes: `"` and the characters that open markup, as entity codes. */
function mermaidText(text: string): string {
  return text.replace(/[#"<>&]/g, (c) => `#${c.charCodeAt(0)};`).replace(/\n/g, '<br/>');
}

/**
 * The network as a Mermaid `flowchart LR`. Node ids are `j0`, `j1`, … in file order (job names
 * may hold `-`, which Mermaid reads as part of an arrow); open pipes are `p0`, `p1`, ….
 */
export function networkToMermaid(network: NetworkGraph): string {
  const lines = ['flowchart LR', `  %% network ${network.name}`];
  const ids = new Map<string, string>();
  for (const job of network.jobs) {
    const id = `j${ids.size}`;
    ids.set(job.name, id);
    const label = `"${mermaidText(`${job.name}\n${jobSummary(job)}`)}"`;
    lines.push(`  ${id}${job.kind === 'js' ? `(${label})` : job.kind === 'builtin' ? `[[${label}]]` : `[${label}]`}`);
  }
  let open = 0;
  for (const { pipe, from, to } of edgesOf(network)) {
    let target = to === undefined ? undefined : ids.get(to);
    if (target === undefined) {
      target = `p${open++}`;
      lines.push(`  ${target}(("${mermaidText(pipe.name)}"))`);
    }
    lines.push(`  ${ids.get(from)!} -->|"${mermaidText(pipeLabel(pipe))}"| ${target}`);
  }
  return `${lines.join('\n')}\n`;
}
