/**
 * The one schema every job description passes at the edge (REST, gRPC, CLI): Xenon's fields plus
 * jobwire's. Unknown fields are refused, and every error names the field.
 * @module
 */
import { z } from 'zod';
import { BadRequestError, type JobDescription } from '@jobwire/client';
import { PLACEMENT_NAME } from './placement-names.js';

/** No NUL byte: an operating system cannot take one in a program's path, arguments or environment. */
const NO_NUL = /^[^\0]*$/;
const NUL_MESSAGE = 'has a NUL byte ("\\u0000"): no program path, argument or environment value can hold one';
/** A text that becomes a path, an argument or an environment value of a process. */
const osText = (max?: number) => (max === undefined ? z.string() : z.string().max(max)).regex(NO_NUL, NUL_MESSAGE);
const name = z.string().min(1).max(200);
const path = osText(4096).min(1);
const envName = /^[A-Za-z_][A-Za-z0-9_]*$/;
const groupPath = /^[^:\s][^:]*(:[^:\s][^:]*)*$/;
/** A relative file name: components that are neither empty, `.` nor `..`. */
const RELATIVE_NAME = /^(?!(?:.*\/)?\.\.?(?:\/|$))(?:[^/\0]+\/)*[^/\0]+$/;
/** A relative glob pattern: no leading `/`, no `..` component. */
const RELATIVE_PATTERN = /^(?!\/)(?!(?:.*\/)?\.\.(?:\/|$))[^\0]+$/;
/** An upload id (a UUID). */
const UPLOAD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const placementName = z.string().regex(PLACEMENT_NAME, 'letters, digits, ".", "_" and "-", starting with a letter or digit, at most 128');

const jsFunction = z
  .strictObject({
    code: z.string().min(1).max(1_000_000).optional(),
    module: path.optional(),
    export: z.string().min(1).max(200).optional(),
    args: z.array(z.unknown()).max(10_000).optional(),
  })
  .refine((f) => (f.code === undefined) !== (f.module === undefined), {
    message: 'give exactly one of "code" and "module"',
  });

/** zod schema of {@link JobDescription}. */
export const jobDescriptionSchema = z
  .strictObject({
    executable: path.optional(),
    arguments: z.array(osText(1_000_000)).max(100_000).optional(),
    js: jsFunction.optional(),
    environment: z
      .record(z.string().regex(envName, 'environment variable names are letters, digits and _'), osText(1_000_000))
      .optional(),
    workingDirectory: path.optional(),
    submitDirectory: path.regex(/^\//, 'an absolute path').optional(),
    queueName: z.string().min(1).max(100).optional(),
    executor: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'an executor name: letters, digits, ".", "_" and "-", starting with a letter or digit, at most 64').optional(),
    maxRuntime: z.number().min(0).max(525_600).optional(),
    maxMemory: z.number().int().min(0).optional(),
    outputWindow: z.number().int().min(4096).max(1024 * 1024 * 1024).optional(),
    stdin: path.optional(),
    stdout: path.optional(),
    stderr: path.optional(),
    name: name.optional(),
    tasks: z.number().int().min(1).optional(),
    coresPerTask: z.number().int().min(1).optional(),
    schedulerArguments: z.array(osText()).max(1000).optional(),
    interactive: z.boolean().optional(),
    tty: z.boolean().optional(),
    size: z.strictObject({ cols: z.number().int().min(1).max(10_000), rows: z.number().int().min(1).max(10_000) }).optional(),
    inputFiles: z
      .record(
        z.string().max(1000).regex(RELATIVE_NAME, 'a relative file name (folders allowed, no "..", ".", empty or leading "/")'),
        z.string().regex(UPLOAD_ID, 'an upload id (POST /v1/uploads)'),
      )
      .refine((files) => Object.keys(files).length <= 1000, 'at most 1000 input files')
      .optional(),
    outputFiles: z.array(z.string().min(1).max(1000).regex(RELATIVE_PATTERN, 'a pattern relative to the working directory (no "..", no leading "/")')).max(100).optional(),
    attributes: z
      .record(z.string().min(1).max(200), z.string().max(100_000))
      .refine((a) => Object.keys(a).length <= 200, 'at most 200 attributes')
      .optional(),
    group: z.string().max(1000).regex(groupPath, 'a group path is ":"-separated non-empty names').or(z.literal('')).optional(),
    url: z.string().max(4096).optional(),
    pools: z.array(placementName).min(1).max(32).optional(),
    node: placementName.optional(),
    retries: z.number().int().min(0).max(100).optional(),
  })
  .superRefine((d, ctx) => {
    if ((d.executable === undefined) === (d.js === undefined)) {
      ctx.addIssue({ code: 'custom', path: d.executable === undefined ? ['executable'] : ['js'], message: 'give exactly one of "executable" and "js"' });
    }
    if (d.js !== undefined && d.arguments !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['arguments'], message: '"arguments" is for executables; a function job takes js.args' });
    }
  });

/**
 * What {@link describeIssue} reads of a zod issue. A zod issue has this shape, and so has what
 * the REST routes rebuild from fastify's validation errors (server/schemas.ts).
 */
export interface IssueLike {
  code: string;
  path: readonly PropertyKey[];
  message: string;
  /** `unrecognized_keys`: the unknown keys. */
  keys?: readonly string[];
  /** `invalid_type`: the type wanted. */
  expected?: string;
  /** `invalid_key`: what was wrong with the key itself. */
  issues?: readonly { message: string }[];
}

/** A key a reader can see whole after a dot: `a.b` reads as two keys, `["a.b"]` as one. */
const PLAIN_KEY = /^[A-Za-z0-9_$-]+$/;

/** A field path as a message shows it: `inputFiles["in.txt"]`, `arguments.0`, `environment.HOME`. */
function shownPath(path: readonly string[]): string {
  return path.map((k, i) => (PLAIN_KEY.test(k) ? (i === 0 ? k : `.${k}`) : `[${JSON.stringify(k)}]`)).join('');
}

/** Turns a zod issue into a BadRequestError naming the bad field. */
export function describeIssue(issue: IssueLike, root = ''): BadRequestError {
  const segments = [...(root ? root.split('.') : []), ...issue.path.map(String)];
  const field = segments.join('.');
  const shown = shownPath(segments);
  let message = issue.message;
  if (issue.code === 'invalid_key' && segments.length > 0) {
    // zod says only "Invalid key in record"; what was wrong is in its inner issues.
    const why = (issue.issues ?? []).map((i) => i.message).join('; ') || 'not allowed here';
    const key = segments[segments.length - 1]!;
    return new BadRequestError(`${shownPath(segments.slice(0, -1))}: key ${JSON.stringify(key)} is refused: ${why}`, { code: 'invalid_description', field });
  }
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys ?? [];
    const full = keys.map((k) => (field ? `${field}.${k}` : k));
    return new BadRequestError(`unknown field${keys.length > 1 ? 's' : ''}: ${full.join(', ')}`, { code: 'invalid_description', field: full[0]! });
  }
  if (issue.code === 'invalid_type') {
    if (!field) return new BadRequestError('a job description is a JSON object', { code: 'invalid_description', field: '(body)' });
    message = `expected ${issue.expected}`;
  }
  return new BadRequestError(field ? `${shown}: ${message}` : message, { code: 'invalid_description', field: field || '(body)' });
}

/** Validates a job description; throws a BadRequestError naming the bad field. */
export function parseJobDescription(input: unknown): JobDescription {
  const parsed = jobDescriptionSchema.safeParse(input);
  if (!parsed.success) throw describeIssue(parsed.error.issues[0]!);
  return parsed.data as JobDescription;
}
