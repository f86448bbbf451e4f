/**
 * The import graph of `src/` has no loops: no folder imports one that imports it back (directly
 * or around a ring — `grpc/` into `server/` while `server/` starts `grpc/`), and no module
 * imports one that imports it back (type-only imports count: they tie the two just the same).
 * Each loop found is listed with one import per step, so the failure says where to cut.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { stronglyConnected } from '../../src/graphs.js';

const SRC = fileURLToPath(new URL('../../../src/', import.meta.url));

/**
 * Folder imports that close loops on this branch and that the token book's move out of
 * `server/` and the distributed layer's rework (issue 9, another branch) remove. The lead empties
 * this list when merging; the test fails on any loop these do not explain, and on an entry that
 * no longer exists.
 */
const KNOWN_BACK_EDGES: readonly string[] = [];

/** Module loops known on this branch: `ScriptDef` moves out of `store/redis/scripts/index.ts` (another branch). Emptied at merge too. */
const KNOWN_MODULE_LOOPS: readonly string[] = [];

/** An import of one module by another: `from` imports `to`. */
interface Import {
  from: string;
  to: string;
}

/** Every relative import between the `.ts` files of `src` (static, type-only, re-exports and `import()` alike). */
function sourceImports(src: string): { files: string[]; imports: Import[] } {
  const files = readdirSync(src, { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .map((f) => f.split(sep).join('/'))
    .sort();
  const imports: Import[] = [];
  for (const from of files) {
    const { importedFiles } = ts.preProcessFile(readFileSync(join(src, from), 'utf8'), true, true);
    for (const { fileName } of importedFiles) {
      if (!fileName.startsWith('.')) continue;
      const to = relative(src, resolve(src, dirname(from), fileName)).split(sep).join('/').replace(/\.js$/, '.ts');
      assert.ok(existsSync(join(src, to)), `${from} imports ${fileName}, which is no module of src/`);
      imports.push({ from, to });
    }
  }
  return { files, imports };
}

/** The folder a module belongs to: its top-level folder of `src/`; a module at the top is a node of its own. */
function folderOf(file: string): string {
  const slash = file.indexOf('/');
  return slash < 0 ? file : file.slice(0, slash);
}

/** The strongly connected parts of a graph with more than one node: its loops, each sorted, in a stable order. */
function loops(nodes: Iterable<string>, edges: ReadonlyMap<string, ReadonlySet<string>>): string[][] {
  const found = stronglyConnected([...nodes].sort(), edges).filter((part) => part.length > 1);
  return found.map((part) => part.sort()).sort((a, b) => a.join(' ').localeCompare(b.join(' ')));
}

/** A graph of `key(from) -> key(to)` over the imports, skipping `skip` edges and self-edges; with one example import per edge. */
function graphOf(imports: Import[], key: (file: string) => string, skip: ReadonlySet<string> = new Set()): { edges: Map<string, Set<string>>; example: Map<string, Import> } {
  const edges = new Map<string, Set<string>>();
  const example = new Map<string, Import>();
  for (const imp of imports) {
    const [a, b] = [key(imp.from), key(imp.to)];
    if (a === b || skip.has(`${a} -> ${b}`)) continue;
    if (!edges.has(a)) edges.set(a, new Set());
    edges.get(a)!.add(b);
    if (!example.has(`${a} -> ${b}`)) example.set(`${a} -> ${b}`, imp);
  }
  return { edges, example };
}

/** A loop as the failure shows it: each step inside it, with one import that makes it. */
function describeLoop(loop: string[], edges: Map<string, Set<string>>, example: Map<string, Import>): string {
  const inside = new Set(loop);
  const steps: string[] = [];
  for (const a of loop) {
    for (const b of [...(edges.get(a) ?? [])].sort()) {
      if (!inside.has(b)) continue;
      const imp = example.get(`${a} -> ${b}`)!;
      steps.push(`    ${a} -> ${b}   (${imp.from} imports ${imp.to})`);
    }
  }
  return `  ${loop.join(', ')}:\n${steps.join('\n')}`;
}

describe('import loops in packages/jobwire/src', () => {
  const { files, imports } = sourceImports(SRC);

  it('finds a loop when there is one (the check itself)', () => {
    const made: Import[] = [
      { from: 'server/index.ts', to: 'grpc/server.ts' },
      { from: 'grpc/auth.ts', to: 'server/tokens.ts' },
      { from: 'grpc/server.ts', to: 'jobs/service.ts' },
    ];
    const { edges } = graphOf(made, folderOf);
    assert.deepEqual(loops(['server', 'grpc', 'jobs'], edges), [['grpc', 'server']]);
    assert.deepEqual(loops(['server', 'grpc', 'jobs'], graphOf(made, folderOf, new Set(['grpc -> server'])).edges), []);
  });

  it('no folder imports a folder that imports it back', () => {
    const folders = new Set(files.map(folderOf));
    const { edges, example } = graphOf(imports, folderOf, new Set(KNOWN_BACK_EDGES));
    const found = loops(folders, edges);
    assert.equal(found.length, 0, `folder-level import loops:\n${found.map((l) => describeLoop(l, edges, example)).join('\n')}`);
    const all = graphOf(imports, folderOf).example;
    const stale = KNOWN_BACK_EDGES.filter((edge) => !all.has(edge));
    assert.deepEqual(stale, [], 'KNOWN_BACK_EDGES lists imports that no longer exist: remove them');
  });

  it('no module imports a module that imports it back', () => {
    const { edges, example } = graphOf(imports, (f) => f);
    const found = loops(files, edges);
    const unknown = found.filter((l) => !KNOWN_MODULE_LOOPS.includes(l.join(' ')));
    assert.equal(unknown.length, 0, `module import loops:\n${unknown.map((l) => describeLoop(l, edges, example)).join('\n')}`);
    const stale = KNOWN_MODULE_LOOPS.filter((l) => !found.some((f) => f.join(' ') === l));
    assert.deepEqual(stale, [], 'KNOWN_MODULE_LOOPS lists loops that no longer exist: remove them');
  });
});
