/**
 * Network files: YAML parsed with `yaml` (which keeps each node's place in the text), validated
 * with the SDK's zod schema (`@jobwire/client/network`), defaults filled in and relative paths
 * resolved against the file's folder. Every error names the field and its line and column.
 * @module
 */
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { BadRequestError } from '@jobwire/client';
import { DEFAULT_QUEUE, networkSchema } from '@jobwire/client/network';
import { LineCounter, isMap, isPair, isScalar, isSeq, parseDocument, type Document } from 'yaml';
import type { IssueLike } from '../jobs/schema.js';
import { resolveNetwork, type Network } from './model.js';

/** A path into a network file: `['jobs', 'square', 'inputs', 0]`. */
export type FieldPath = ReadonlyArray<string | number>;

/** One thing wrong with a network file. */
export interface NetworkIssue {
  /** The field, dotted: `jobs.square.inputs.0` (`(file)` for the file as a whole). */
  field: string;
  message: string;
  /** 1-based line of the field in the file (0 when the network came without a file). */
  line: number;
  /** 1-based column. */
  column: number;
}

/** A network file that cannot be used: every issue found, each with its field and line. */
export class NetworkFileError extends BadRequestError {
  override name = 'NetworkFileError';
  readonly issues: NetworkIssue[];
  constructor(readonly file: string, issues: NetworkIssue[], options?: ErrorOptions) {
    const lines = issues.map((issue) => formatIssue(file, issue));
    const field = issues[0]?.field;
    super(lines.length === 1 ? lines[0]! : `${lines.length} problems in ${file}:\n  ${lines.join('\n  ')}`, {
      ...options,
      ...(field !== undefined && field !== '(file)' ? { field } : {}),
    });
    this.issues = issues;
  }
}

/** `file:line:column: field: message`, the way compilers point at a place. */
export function formatIssue(file: string, issue: NetworkIssue): string {
  const where = issue.line > 0 ? `${file}:${issue.line}:${issue.column}` : file;
  return `${where}: ${issue.field === '(file)' ? '' : `${issue.field}: `}${issue.message}`;
}

/** Finds where a field is written; fields not written point at the nearest written parent. */
export type Locator = (path: FieldPath, at?: 'key' | 'value') => { line: number; column: number };

/** A network read from a file, with the means to point into that file. */
export interface LoadedNetwork {
  network: Network;
  /** The file's name as given (for messages). */
  file: string;
  locate: Locator;
  /** Builds an issue for `path`, located in the file. */
  issue(path: FieldPath, message: string, at?: 'key' | 'value'): NetworkIssue;
}

/** Reads and validates a network file (not yet the checks that look past the file: see `checkNetwork`). */
export async function loadNetworkFile(file: string): Promise<LoadedNetwork> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'a folder, not a file' : (error as Error).message;
    throw new NetworkFileError(file, [{ field: '(file)', message: `cannot read the network file: ${why}`, line: 0, column: 0 }], { cause: error });
  }
  return parseNetworkText(text, { file, baseDir: dirname(resolve(file)) });
}

/** Options of {@link parseNetworkText}. */
export interface ParseNetworkOptions {
  /** Name of the file, for messages. @defaultValue "(network)" */
  file?: string;
  /** Folder that relative paths resolve against. @defaultValue the working directory */
  baseDir?: string;
}

/** Parses and validates the YAML text of a network file. */
export function parseNetworkText(text: string, options: ParseNetworkOptions = {}): LoadedNetwork {
  const file = options.file ?? '(network)';
  const baseDir = options.baseDir ?? process.cwd();
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const position = (offset: number): { line: number; column: number } => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
  if (doc.errors.length > 0) {
    throw new NetworkFileError(
      file,
      doc.errors.map((error) => ({ field: '(file)', message: `not valid YAML: ${firstLine(error.message)}`, ...position(error.pos[0]) })),
    );
  }
  const locate: Locator = (path, at = 'value') => position(offsetOf(doc, path, at));
  const issue = (path: FieldPath, message: string, at?: 'key' | 'value'): NetworkIssue => ({ field: fieldName(path), message, ...locate(path, at) });
  const parsed = networkSchema.safeParse(doc.toJS({ maxAliasCount: 100 }));
  if (!parsed.success) throw new NetworkFileError(file, parsed.error.issues.map((i) => issueOf(i, issue)));
  return { network: resolveNetwork(parsed.data, baseDir, DEFAULT_QUEUE), file, locate, issue };
}

/** A network given as an object (no file): validated the same way, issues carry no line. */
export function parseNetworkSpec(spec: unknown, baseDir: string): LoadedNetwork {
  const file = '(network)';
  const locate: Locator = () => ({ line: 0, column: 0 });
  const issue = (path: FieldPath, message: string): NetworkIssue => ({ field: fieldName(path), message, line: 0, column: 0 });
  const parsed = networkSchema.safeParse(spec);
  if (!parsed.success) throw new NetworkFileError(file, parsed.error.issues.map((i) => issueOf(i, issue)));
  if (!isAbsolute(baseDir)) throw new TypeError('parseNetworkSpec: baseDir must be absolute');
  return { network: resolveNetwork(parsed.data, baseDir, DEFAULT_QUEUE), file, locate, issue };
}

/** `['jobs', 'a', 'inputs', 0]` → `jobs.a.inputs.0`. */
export function fieldName(path: FieldPath): string {
  return path.length === 0 ? '(file)' : path.map(String).join('.');
}

function issueOf(zodIssue: IssueLike, issue: (path: FieldPath, message: string, at?: 'key' | 'value') => NetworkIssue): NetworkIssue {
  const path = zodIssue.path.map((p) => (typeof p === 'number' ? p : String(p)));
  if (zodIssue.code === 'unrecognized_keys') {
    const keys = zodIssue.keys ?? [];
    return issue([...path, keys[0] ?? ''], `unknown field${keys.length > 1 ? `s ${keys.map((k) => JSON.stringify(k)).join(', ')}` : ''}`, 'key');
  }
  // A record key that fails its check: point at the key, say what names may be.
  if (zodIssue.code === 'invalid_key') return issue(path, `bad name: ${zodIssue.message}`, 'key');
  if (zodIssue.code === 'invalid_type' && zodIssue.expected !== undefined) {
    return issue(path, zodIssue.message.includes('received undefined') ? `required (${zodIssue.expected})` : `expected ${zodIssue.expected}`);
  }
  return issue(path, zodIssue.message);
}

function firstLine(text: string): string {
  return text.split('\n')[0]!;
}

/**
 * Offset in the text of the node at `path` (its key with `at: 'key'`), or of the nearest
 * ancestor that is written when the path goes further than the file does.
 */
function offsetOf(doc: Document, path: FieldPath, at: 'key' | 'value'): number {
  let node: unknown = doc.contents;
  let offset = rangeStart(node) ?? 0;
  for (let i = 0; i < path.length; i++) {
    const step = path[i]!;
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(step));
      if (pair === undefined) return offset;
      const keyStart = rangeStart(pair.key);
      if (last && at === 'key' && keyStart !== undefined) return keyStart;
      node = pair.value;
      offset = rangeStart(node) ?? keyStart ?? offset;
    } else if (isSeq(node) && typeof step === 'number') {
      const item = node.items[step];
      if (item === undefined) return offset;
      node = item;
      offset = rangeStart(node) ?? offset;
    } else {
      return offset;
    }
  }
  return offset;
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as { range?: readonly number[] | null } | null | undefined)?.range;
  return range ? range[0] : undefined;
}
