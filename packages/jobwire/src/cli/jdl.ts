/**
 * gLite's JDL (Job Description Language) for `jobwire submit job.jdl` and `jobwire run job.jdl`:
 * the parser, and the mapping of its attributes to a jobwire job description.
 *
 * The syntax is the ClassAd subset JDL files use: `Name = value;` statements, optionally inside
 * `[ ... ]`; values are strings (`"..."` with `\"` and `\\`), numbers, `true`/`false`, lists in
 * `{ ... }`, or expressions (`Requirements = other.GlueCEStateStatus == "Production";`), kept as
 * their text; comments are `#` or `//` to the end of the line, and `/* ... *\/`. Attribute names
 * are case-insensitive. The parser is written here because no maintained ClassAd parser exists
 * for JavaScript; it reports every error with its line and column.
 * @module
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import type { JobDescription } from '@jobwire/client';
import { UsageError } from './errors.js';
import { withJobSettings, type JobOptions } from './options.js';
import { inputFileNames } from './sandbox.js';

/** A parsed JDL value. */
export type JdlValue = string | number | boolean | JdlValue[] | { expression: string };

/** An attribute as written: its name's spelling, its value, where it stands. */
export interface JdlAttribute {
  name: string;
  value: JdlValue;
  line: number;
  column: number;
}

/** A JDL syntax or meaning error, with the file, line and column it is about. */
export class JdlError extends UsageError {
  override name = 'JdlError';
  constructor(file: string, line: number, column: number, message: string) {
    super(`${file}:${line}:${column}: ${message}`);
  }
}

/** Parses JDL text into its attributes, in order; `file` names it in errors. */
export function parseJdl(text: string, file = 'job.jdl'): JdlAttribute[] {
  let i = 0;
  let line = 1;
  let column = 1;
  const fail = (message: string, at: { line: number; column: number } = { line, column }): never => {
    throw new JdlError(file, at.line, at.column, message);
  };
  const advance = (): string => {
    const c = text[i++]!;
    if (c === '\n') {
      line++;
      column = 1;
    } else column++;
    return c;
  };
  const skipBlank = (): void => {
    for (;;) {
      const c = text[i];
      if (c === undefined) return;
      if (/\s/.test(c)) advance();
      else if (c === '#' || (c === '/' && text[i + 1] === '/')) while (i < text.length && text[i] !== '\n') advance();
      else if (c === '/' && text[i + 1] === '*') {
        const start = { line, column };
        advance();
        advance();
        while (i < text.length && !(text[i] === '*' && text[i + 1] === '/')) advance();
        if (i >= text.length) fail('unterminated comment (missing "*/")', start);
        advance();
        advance();
      } else return;
    }
  };
  const here = (): string => (i >= text.length ? 'the end of the file' : JSON.stringify(text[i]));

  const parseString = (): string => {
    const start = { line, column };
    advance();
    let out = '';
    for (;;) {
      if (i >= text.length || text[i] === '\n') fail('unterminated string (missing closing ")', start);
      const c = advance();
      if (c === '"') return out;
      if (c === '\\') {
        const e = advance();
        out += e === 'n' ? '\n' : e === 't' ? '\t' : e;
      } else out += c;
    }
  };

  const parseList = (): JdlValue[] => {
    const start = { line, column };
    advance();
    const items: JdlValue[] = [];
    skipBlank();
    if (text[i] === '}') {
      advance();
      return items;
    }
    for (;;) {
      items.push(parseValue(['}', ',']));
      skipBlank();
      if (i >= text.length) fail('unterminated list (missing "}")', start);
      const c = advance();
      if (c === '}') return items;
      if (c !== ',') fail(`expected "," or "}" in a list, found ${JSON.stringify(c)}`, { line, column: column - 1 });
      skipBlank();
    }
  };

  /** An expression or bare word: its text up to a `;` (or `ends`) outside strings and brackets. */
  const parseExpression = (ends: string[]): JdlValue => {
    const start = { line, column };
    let depth = 0;
    let out = '';
    while (i < text.length) {
      const c = text[i]!;
      if (depth === 0 && (c === ';' || ends.includes(c))) break;
      if (c === '"') {
        out += JSON.stringify(parseString());
        continue;
      }
      if (c === '(' || c === '[' || c === '{') depth++;
      if (c === ')' || c === ']' || c === '}') {
        if (depth === 0) break;
        depth--;
      }
      out += advance();
    }
    const expression = out.trim();
    if (expression === '') fail(`expected a value, found ${here()}`, start);
    if (/^(true|false)$/i.test(expression)) return expression.toLowerCase() === 'true';
    if (/^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(expression)) return Number(expression);
    return { expression };
  };

  const parseValue = (ends: string[]): JdlValue => {
    skipBlank();
    if (text[i] === '"') return parseString();
    if (text[i] === '{') return parseList();
    return parseExpression(ends);
  };

  const attributes: JdlAttribute[] = [];
  skipBlank();
  const bracketed = text[i] === '[';
  if (bracketed) advance();
  for (;;) {
    skipBlank();
    if (i >= text.length) {
      if (bracketed) fail('missing "]" at the end of the description');
      break;
    }
    if (bracketed && text[i] === ']') {
      advance();
      skipBlank();
      if (i < text.length) fail(`unexpected ${here()} after the closing "]"`);
      break;
    }
    const at = { line, column };
    const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i))?.[0];
    if (name === undefined) fail(`expected an attribute name, found ${here()}`);
    for (let k = 0; k < name!.length; k++) advance();
    skipBlank();
    if (text[i] !== '=') fail(`expected "=" after ${name}, found ${here()}`);
    advance();
    const value = parseValue([']']);
    skipBlank();
    if (text[i] !== ';') {
      // The last statement before "]" may leave out its ";", as ClassAds allow.
      if (!(bracketed && text[i] === ']')) fail(`expected ";" after the value of ${name}, found ${here()}`);
    } else advance();
    if (attributes.some((a) => a.name.toLowerCase() === name!.toLowerCase())) fail(`${name} is given twice`, at);
    attributes.push({ name: name!, value, ...at });
  }
  return attributes;
}

/** Splits gLite's `Arguments` string into words, as a shell would: blanks separate, quotes group. */
export function splitArguments(text: string, fail: (message: string) => never): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let quote: string | undefined;
  for (let k = 0; k < text.length; k++) {
    const c = text[k]!;
    if (quote !== undefined) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"' && k + 1 < text.length) word += text[++k];
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      word ??= '';
    } else if (c === '\\' && k + 1 < text.length) word = (word ?? '') + text[++k];
    else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else word = (word ?? '') + c;
  }
  if (quote !== undefined) fail(`Arguments: unterminated ${quote} quote`);
  if (word !== undefined) words.push(word);
  return words;
}

/** A JDL file as a job: the description, and what it said that jobwire does not use. */
export interface JdlJob {
  description: JobDescription;
  /** True for `JobType = "Interactive"`: submit attaches at once, as glite-wms-job-submit did. */
  interactive: boolean;
  /** Attributes jobwire keeps with the job (in `description.attributes`) without acting on them. */
  unused: string[];
  /** Files of `InputSandbox`, as written (relative to the caller's directory): uploaded at submit. */
  inputSandbox: string[];
}

/** The attributes jobwire acts on, by lower-case name. */
const KNOWN = ['jobtype', 'executable', 'arguments', 'stdinput', 'stdoutput', 'stderror', 'environment', 'inputsandbox', 'outputsandbox', 'retrycount', 'maxruntime', 'maxwallclocktime'] as const;

/**
 * Maps a parsed JDL file to a job description. `dir` is where relative sandbox paths are taken
 * from (the caller's directory, where the job starts); every input sandbox file must exist there.
 */
export function jdlJob(attributes: JdlAttribute[], file: string, dir: string): JdlJob {
  const byName = new Map(attributes.map((a) => [a.name.toLowerCase(), a]));
  const fail = (a: JdlAttribute, message: string): never => {
    throw new JdlError(file, a.line, a.column, `${a.name}: ${message}`);
  };
  const text = (key: (typeof KNOWN)[number]): string | undefined => {
    const a = byName.get(key);
    if (a === undefined) return undefined;
    if (typeof a.value !== 'string') fail(a, 'expected a string in double quotes');
    if ((a.value as string).trim() === '') fail(a, 'is empty');
    return a.value as string;
  };
  const strings = (key: (typeof KNOWN)[number]): string[] => {
    const a = byName.get(key);
    if (a === undefined) return [];
    const list = typeof a.value === 'string' ? [a.value] : a.value;
    if (!Array.isArray(list) || list.some((v) => typeof v !== 'string')) fail(a, 'expected a string or a list of strings, e.g. {"a", "b"}');
    return list as string[];
  };
  const minutes = (key: (typeof KNOWN)[number]): number | undefined => {
    const a = byName.get(key);
    if (a === undefined) return undefined;
    if (typeof a.value !== 'number' || a.value < 0) fail(a, 'expected a number of minutes >= 0');
    return a.value as number;
  };

  const jobType = text('jobtype') ?? 'Normal';
  if (!/^(normal|interactive)$/i.test(jobType)) fail(byName.get('jobtype')!, `JobType "${jobType}" is not supported; jobwire runs "Normal" and "Interactive" jobs`);
  const interactive = jobType.toLowerCase() === 'interactive';

  const executableAttribute = byName.get('executable');
  if (executableAttribute === undefined) throw new JdlError(file, 1, 1, 'Executable: a JDL job needs an Executable');
  let executable = text('executable')!;
  const inputs = strings('inputsandbox');
  for (const input of inputs) {
    const full = resolve(dir, input);
    if (!existsSync(full) || !statSync(full).isFile()) fail(byName.get('inputsandbox')!, `input file ${input} not found (looked for ${full})`);
  }
  // As on a gLite worker node: an Executable shipped in the InputSandbox runs from the job's
  // directory, not from PATH.
  if (!executable.includes('/') && inputs.some((input) => basename(input) === executable)) executable = `./${executable}`;

  const d: JobDescription = { executable };
  const args = text('arguments');
  if (args !== undefined) d.arguments = splitArguments(args, (message) => fail(byName.get('arguments')!, message));
  const stdin = text('stdinput');
  if (stdin !== undefined) d.stdin = stdin;
  const stdout = text('stdoutput');
  if (stdout !== undefined) d.stdout = stdout;
  const stderr = text('stderror');
  if (stderr !== undefined) d.stderr = stderr;
  const env = strings('environment');
  if (env.length > 0) {
    d.environment = {};
    for (const pair of env) {
      const eq = pair.indexOf('=');
      if (eq <= 0 || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(pair.slice(0, eq))) fail(byName.get('environment')!, `"${pair}" is not NAME=VALUE`);
      d.environment[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
  }
  const retry = byName.get('retrycount');
  if (retry !== undefined) {
    if (typeof retry.value !== 'number' || !Number.isInteger(retry.value) || retry.value < 0 || retry.value > 100) fail(retry, 'expected a whole number from 0 to 100');
    d.retries = retry.value as number;
  }
  const runtime = minutes('maxruntime') ?? minutes('maxwallclocktime');
  if (runtime !== undefined) d.maxRuntime = runtime;
  if (interactive) d.interactive = true;
  d.name = basename(file).replace(/\.jdl$/i, '') || executable;

  const outputs = strings('outputsandbox');
  if (outputs.length > 0) d.outputFiles = outputs;

  const unused = attributes.filter((a) => !(KNOWN as readonly string[]).includes(a.name.toLowerCase()));
  if (unused.length > 0) d.attributes = Object.fromEntries(unused.map((a) => [a.name, valueText(a.value)]));
  return { description: d, interactive, unused: unused.map((a) => a.name), inputSandbox: inputs };
}

/** A JDL value written back as JDL text (for attributes kept as they are). */
export function valueText(value: JdlValue): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return `{${value.map(valueText).join(', ')}}`;
  if (typeof value === 'object') return value.expression;
  return String(value);
}

/** True when the command line names a JDL file: one argument ending in `.jdl`. */
export function isJdlCommand(command: readonly string[]): boolean {
  return command.length === 1 && /\.jdl$/i.test(command[0]!);
}

/** What `submit`/`run` make of a JDL file named on their command line. */
export interface JdlSubmission {
  description: JobDescription;
  interactive: boolean;
  /** InputSandbox files to upload: name in the job's directory → local path. */
  inputs: Map<string, string>;
}

/**
 * Reads the JDL file `file` (relative to `cwd`) for `submit` or `run`: refuses other ways of
 * saying what runs, says once on stderr which attributes are kept but not acted on, and applies
 * the command's job options over the file's values.
 */
export function loadJdl(file: string, options: JobOptions, cwd: string = process.cwd(), stderr: NodeJS.WritableStream = process.stderr): JdlSubmission {
  const other = [options.js !== undefined && '--js', options.jsModule !== undefined && '--js-module', options.cmd !== undefined && '--cmd'].filter(Boolean);
  if (other.length > 0) throw new UsageError(`${file} is a JDL job description: give it without ${other.join(' and ')}`);
  let text: string;
  try {
    text = readFileSync(resolve(cwd, file), 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read the JDL file ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`, { cause: err });
  }
  const job = jdlJob(parseJdl(text, file), file, cwd);
  if (job.unused.length > 0) stderr.write(`jobwire: ${file}: kept with the job, not acted on by jobwire: ${job.unused.join(', ')}\n`);
  const inputs = inputFileNames(job.inputSandbox, cwd, 'InputSandbox:');
  const description = withJobSettings(job.description, { ...options, interactive: job.interactive || options.interactive === true }, cwd);
  return { description, interactive: description.interactive === true, inputs };
}
