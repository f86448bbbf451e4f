/**
 * Where the network page draws each job and pipe: a small layered layout, written here rather
 * than taken from a graph library (dagre, elkjs) because a network is a handful of jobs and the
 * whole job is four steps:
 *
 * 1. **Layers**: a job's layer is the length of the longest path of pipes reaching it from a job
 *    without inputs, so sources stand left and sinks right. A pipe that closes a cycle (found by
 *    depth-first search) does not count, so cycles (allowed when a pipe never blocks) still end.
 * 2. **Order** within a layer: declaration order, then two sweeps that sort each layer by the
 *    mean position of its neighbours in the layer before (then after), which untangles most
 *    crossings of small graphs.
 * 3. **Positions**: layers are columns, jobs rows, each column centred on the tallest.
 * 4. **Edges**: one cubic curve per (pipe, consumer) from the producer's right side to the
 *    consumer's left; a pipe nobody reads ends in a small dot of its own. A pipe back to an
 *    earlier (or the same) column loops under the jobs instead.
 * @module
 */
import type { NetworkGraph } from '@jobwire/client';

export const NODE_W = 168;
export const NODE_H = 62;
/** Room between columns for a pipe's label (`name · 1234/s · queue 64/64`). */
const GAP_X = 210;
const GAP_Y = 44;
const MARGIN = 24;

/** A job's box. */
export interface NodeBox {
  name: string;
  x: number;
  y: number;
  layer: number;
}

/** One drawn edge: a pipe from its producer to one consumer (or to its loose end). */
export interface EdgePath {
  pipe: string;
  from: string;
  /** The consumer, or null for a pipe nobody reads. */
  to: string | null;
  /** SVG path data. */
  d: string;
  /** Where the label goes (its centre, on the line). */
  label: { x: number; y: number };
}

export interface Layout {
  width: number;
  height: number;
  nodes: Map<string, NodeBox>;
  edges: EdgePath[];
  /** Loose ends of pipes nobody reads. */
  ends: Array<{ pipe: string; x: number; y: number }>;
}

/** Lays `graph` out; see the module comment. */
export function layoutNetwork(graph: NetworkGraph): Layout {
  const names = graph.jobs.map((j) => j.name);
  const next = new Map<string, string[]>(names.map((n) => [n, []]));
  for (const pipe of graph.pipes) for (const consumer of pipe.consumers) if (next.has(pipe.producer) && next.has(consumer)) next.get(pipe.producer)!.push(consumer);

  // 1. Edges that close a cycle, by depth-first search from the sources (then from any job left).
  const back = new Set<string>();
  const state = new Map<string, 1 | 2>();
  const visit = (name: string): void => {
    state.set(name, 1);
    for (const to of next.get(name)!) {
      if (state.get(to) === 1) back.add(`${name}\n${to}`);
      else if (!state.has(to)) visit(to);
    }
    state.set(name, 2);
  };
  const sources = graph.jobs.filter((j) => j.inputs.length === 0).map((j) => j.name);
  for (const name of [...sources, ...names]) if (!state.has(name)) visit(name);
  const layer = new Map<string, number>(names.map((n) => [n, 0]));
  // Longest path over the acyclic rest: at most |jobs| rounds of relaxation.
  for (let round = 0; round < names.length; round++) {
    let moved = false;
    for (const from of names) {
      for (const to of next.get(from)!) {
        if (back.has(`${from}\n${to}`)) continue;
        if (layer.get(to)! < layer.get(from)! + 1) {
          layer.set(to, layer.get(from)! + 1);
          moved = true;
        }
      }
    }
    if (!moved) break;
  }

  // 2. Order within layers.
  const layers: string[][] = [];
  for (const name of names) (layers[layer.get(name)!] ??= []).push(name);
  for (let i = 0; i < layers.length; i++) layers[i] ??= [];
  const prev = new Map<string, string[]>(names.map((n) => [n, []]));
  for (const [from, tos] of next) for (const to of tos) prev.get(to)!.push(from);
  const place = (): Map<string, number> => new Map(layers.flatMap((l) => l.map((n, i) => [n, i] as [string, number])));
  const sweep = (order: number[], neighbours: Map<string, string[]>): void => {
    for (const i of order) {
      const at = place();
      const mean = (n: string): number => {
        const ns = neighbours.get(n)!.filter((m) => layer.get(m) !== i);
        return ns.length === 0 ? at.get(n)! : ns.reduce((s, m) => s + at.get(m)!, 0) / ns.length;
      };
      layers[i] = [...layers[i]!].sort((a, b) => mean(a) - mean(b));
    }
  };
  const forward = layers.map((_, i) => i).slice(1);
  sweep(forward, prev);
  sweep(forward.map((i) => layers.length - 1 - i), next);

  // 3. Positions.
  const tallest = Math.max(1, ...layers.map((l) => l.length));
  const columnHeight = tallest * NODE_H + (tallest - 1) * GAP_Y;
  const nodes = new Map<string, NodeBox>();
  layers.forEach((column, i) => {
    const h = column.length * NODE_H + (column.length - 1) * GAP_Y;
    column.forEach((name, row) => {
      nodes.set(name, { name, layer: i, x: MARGIN + i * (NODE_W + GAP_X), y: MARGIN + (columnHeight - h) / 2 + row * (NODE_H + GAP_Y) });
    });
  });

  // 4. Edges.
  const edges: EdgePath[] = [];
  const ends: Layout['ends'] = [];
  let loops = 0;
  const bottom = MARGIN + columnHeight;
  for (const pipe of graph.pipes) {
    const from = nodes.get(pipe.producer);
    if (from === undefined) continue;
    const x1 = from.x + NODE_W;
    const y1 = from.y + NODE_H / 2;
    const targets = pipe.consumers.filter((c) => nodes.has(c));
    if (targets.length === 0) {
      const end = { pipe: pipe.name, x: x1 + GAP_X, y: y1 };
      ends.push(end);
      edges.push({ pipe: pipe.name, from: pipe.producer, to: null, d: `M ${x1} ${y1} L ${end.x - 5} ${end.y}`, label: { x: (x1 + end.x) / 2, y: y1 } });
      continue;
    }
    targets.forEach((consumer) => {
      const to = nodes.get(consumer)!;
      const x2 = to.x;
      const y2 = to.y + NODE_H / 2;
      if (to.layer > from.layer) {
        const c = Math.max(40, (x2 - x1) / 2);
        edges.push({ pipe: pipe.name, from: pipe.producer, to: consumer, d: `M ${x1} ${y1} C ${x1 + c} ${y1}, ${x2 - c} ${y2}, ${x2} ${y2}`, label: bezier(0.5, [x1, y1], [x1 + c, y1], [x2 - c, y2], [x2, y2]) });
      } else {
        // Back to an earlier (or the same) column: out to the right, under the jobs, in from the left.
        loops++;
        const under = bottom + 18 + loops * 22;
        const right = x1 + 24;
        const left = x2 - 24;
        edges.push({
          pipe: pipe.name,
          from: pipe.producer,
          to: consumer,
          d: `M ${x1} ${y1} C ${right} ${y1}, ${right} ${under}, ${x1 - 10} ${under} L ${x2 + 10} ${under} C ${left} ${under}, ${left} ${y2}, ${x2} ${y2}`,
          label: { x: (x1 + x2) / 2, y: under },
        });
      }
    });
  }
  const maxX = Math.max(...[...nodes.values()].map((n) => n.x + NODE_W), ...ends.map((e) => e.x + 10));
  return { width: maxX + MARGIN, height: bottom + MARGIN + 12 + loops * 22 + (loops > 0 ? 18 : 0), nodes, edges, ends };
}

/** The point at `t` of a cubic Bézier curve. */
function bezier(t: number, p0: number[], p1: number[], p2: number[], p3: number[]): { x: number; y: number } {
  const u = 1 - t;
  const at = (i: number): number => u * u * u * p0[i]! + 3 * u * u * t * p1[i]! + 3 * u * t * t * p2[i]! + t * t * t * p3[i]!;
  return { x: at(0), y: at(1) };
}
