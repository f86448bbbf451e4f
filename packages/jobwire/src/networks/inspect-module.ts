/**
 * Run as a child process by the network checks: imports one ES module and prints, as one JSON
 * line on stdout, what kind of value each of `setup`, `run` and `finish` is. Running the import
 * in a process of its own keeps the module's side effects (and its place in the module cache)
 * out of the server or CLI that checks the network.
 *
 * Usage: `node inspect-module.js FILE_URL [EXPORT]`.
 * @module
 */

/** What the checks learn about a js job's module. */
export type ModuleReport =
  | { ok: true; hasExport: boolean; members: Record<'setup' | 'run' | 'finish', MemberKind> }
  | { ok: false; error: string };

/** The kind of a module member. */
export type MemberKind = 'missing' | 'function' | 'generator' | 'async-generator' | 'other';

function kindOf(value: unknown): MemberKind {
  if (value === undefined) return 'missing';
  if (typeof value !== 'function') return 'other';
  const tag = Object.prototype.toString.call(value);
  if (tag === '[object AsyncGeneratorFunction]') return 'async-generator';
  if (tag === '[object GeneratorFunction]') return 'generator';
  return 'function';
}

async function main(): Promise<void> {
  const [url, exportName] = process.argv.slice(2);
  let report: ModuleReport;
  try {
    const namespace = (await import(url!)) as Record<string, unknown>;
    const holder = exportName === undefined ? namespace : namespace[exportName];
    const members = { setup: 'missing', run: 'missing', finish: 'missing' } as Record<'setup' | 'run' | 'finish', MemberKind>;
    if (holder !== undefined && holder !== null) {
      for (const key of ['setup', 'run', 'finish'] as const) members[key] = kindOf((holder as Record<string, unknown>)[key]);
    }
    report = { ok: true, hasExport: holder !== undefined && holder !== null, members };
  } catch (error) {
    report = { ok: false, error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) };
  }
  process.stdout.write(`${JSON.stringify(report)}\n`);
  // A module may leave timers or sockets open; the report is all that was wanted.
  process.exit(0);
}

void main();
