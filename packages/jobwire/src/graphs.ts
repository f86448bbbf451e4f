/**
 * Graph algorithms the code shares: strongly connected parts (Tarjan's algorithm), for the
 * network checks' deadlock cycles and the import-loop test.
 * @module
 */

/**
 * The strongly connected parts of a directed graph, each as the nodes in it, in the order
 * Tarjan's algorithm completes them; single nodes make parts of their own. Nodes are visited in
 * the order given; `successors` lists each node's edges (targets that are not in `nodes` are
 * visited too).
 */
export function stronglyConnected(nodes: Iterable<string>, successors: ReadonlyMap<string, Iterable<string>>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const parts: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of successors.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const part: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        part.push(w);
      } while (w !== v);
      parts.push(part);
    }
  };
  for (const v of nodes) if (!index.has(v)) visit(v);
  return parts;
}
