/**
 * The HTTP API's schemas, in zod: what each route takes (path, query, body) and what it answers.
 * The routes validate requests with them (fastify-type-provider-zod), and the OpenAPI document at
 * `/api/openapi.json` is made from the same objects (openapi.ts), so the description cannot drift
 * from what the server checks. A job description is checked by the one schema of
 * jobs/schema.ts that gRPC and the CLI use too.
 *
 * The query rules are those the routes always had: a parameter the route does not know is
 * refused by name, a text given twice is refused ("give it once"), and a number is read the way
 * `Number()` reads it. The WebSocket endpoints are stricter: their positions are digits only.
 * Every message names its field, and {@link requestError} turns a failed check into the API's
 * error shape.
 * @module
 */
import { z } from 'zod';
import { BadRequestError, HTTP_STATUS, type ErrorCode, type ExecutorInfo, type GroupInfo, type JobInfo, type QueueStatus, type WhoAmI, type WorkersReport } from '@jobwire/client';
import { describeIssue, jobDescriptionSchema, type IssueLike } from '../jobs/schema.js';

/** Largest byte position or event id: what a JavaScript number holds exactly. */
const MAX_POSITION = Number.MAX_SAFE_INTEGER;

/** `message`, or "give it once" when the parameter came more than once (fastify then reads an array). */
function onceOr(message: string) {
  return (issue: { input?: unknown }): string => (Array.isArray(issue.input) ? 'give it once' : message);
}

/** A text query parameter. */
const text = z.string({ error: 'give it once, as a string' });

/** An integer query parameter from `min` to `max`, read by `Number()`; empty counts as absent. */
function integer(min: number, max: number) {
  const error = `an integer from ${min} to ${max}`;
  return z.coerce.number({ error }).int({ error }).min(min, { error }).max(max, { error });
}

/** {@link integer}, undefined when absent or empty. */
function optionalInteger(min: number, max: number) {
  return z.preprocess((v) => (v === '' ? undefined : v), integer(min, max).optional());
}

/** {@link integer}, `fallback` when absent or empty. */
function integerOr(min: number, max: number, fallback: number) {
  return z.preprocess((v) => (v === '' ? undefined : v), integer(min, max).default(fallback));
}

/** One of `values`. */
function choice<T extends string>(values: readonly [T, ...T[]]) {
  return z.enum(values, { error: `one of ${values.join(', ')}` });
}

/** A position or id of a WebSocket query: digits only, exact as a JavaScript number. */
function position(what: string) {
  const error = onceOr(`${what} (an integer from 0 to ${MAX_POSITION})`);
  return z
    .string({ error })
    .regex(/^\d+$/, { error })
    .transform(Number)
    .pipe(z.number().max(MAX_POSITION, { error }));
}

/** The `access_token` of a WebSocket query. */
const accessToken = z
  .string({ error: onceOr('a string') })
  .describe('The token, for browsers, whose WebSockets cannot send an Authorization header. Prefer the header elsewhere: URLs end up in logs.');

/** A route that takes no query parameters. */
export const noQuery = z.strictObject({});

/** `:id` of the job routes. */
export const jobParams = z.object({ id: z.string().describe('Job id.') });

/** `GET /v1/jobs`. */
export const listJobsQuery = z.strictObject({
  group: text.optional().describe('Only jobs of this group and the groups under it.'),
  status: text.optional().describe('Only jobs in these statuses: a comma-separated list (Queued, Running, Success, Failed, Cancelled, Lost).'),
  name: text.optional().describe('Only jobs of this name (exact).'),
  limit: integerOr(1, 1000, 100).describe('Most jobs in the page.'),
  cursor: text.optional().describe('Where the page starts: `next` of the page before.'),
});

/** `GET /v1/jobs/:id/output`. */
export const outputQuery = z.strictObject({
  stream: choice(['stdout', 'stderr']).default('stdout').describe('Which output stream.'),
  from: integerOr(0, MAX_POSITION, 0).describe('First byte.'),
  to: optionalInteger(0, MAX_POSITION).describe('End (exclusive); the current end of the stream when absent.'),
});

/** `GET /v1/jobs/:id/files/content`. */
export const outputFileQuery = z.strictObject({
  name: text.describe('Name of the kept file, relative to the working directory (as `GET /v1/jobs/:id/files` lists it).'),
});

/** Body of `POST /v1/uploads`: raw bytes, streamed to the store. */
export const uploadBody = z
  .custom<NodeJS.ReadableStream>((v) => typeof (v as { pipe?: unknown } | null)?.pipe === 'function', { error: 'an upload is sent as application/octet-stream' })
  .meta({ type: 'string', contentMediaType: 'application/octet-stream' });

/** `POST /v1/uploads`. */
export const uploadSchema = z
  .object({ id: z.string().describe('Upload id, for a description\'s `inputFiles`.'), size: z.number().int().describe('Bytes stored.') })
  .meta({ id: 'Upload' });

/** `GET /v1/jobs/:id/files`. */
export const outputFileListSchema = z
  .object({ items: z.array(z.object({ name: z.string(), size: z.number().int() })) })
  .meta({ id: 'OutputFiles', description: "The files a job kept (its description's `outputFiles`)." });

/** `POST /v1/jobs/:id/stdin`. */
export const stdinQuery = z.strictObject({
  offset: optionalInteger(0, MAX_POSITION).describe(
    "Where these bytes start in the job's stdin: bytes already accepted are skipped, a gap is 409. The current end when absent.",
  ),
});

/** `GET /v1/jobs/:id/wait`. */
export const waitQuery = z.strictObject({
  for: choice(['done', 'running']).default('done').describe('Wait until the job is final (`done`), or Running or final (`running`).'),
  timeout: integerOr(0, 60_000, 30_000).describe('Longest wait in milliseconds.'),
});

/** `GET /v1/groups`. */
export const groupsQuery = z.strictObject({
  under: text.optional().describe('Only this group and the groups under it.'),
});

/** `GET /v1/jobs/:id/attach` (WebSocket). */
export const attachQuery = z.strictObject({
  from: position('a byte position').optional().describe("Position in the job's merged output to replay from (default 0)."),
  access_token: accessToken.optional(),
});

/** `GET /v1/events` (WebSocket). */
export const eventsQuery = z.strictObject({
  group: z.string({ error: onceOr('a string') }).optional().describe('Only events of this group and the groups under it (default: all).'),
  since: position('an event id').optional().describe('Replay the events after this id instead of sending a snapshot.'),
  access_token: accessToken.optional(),
});

/** Body of `POST /v1/jobs/:id/progress`. */
export const progressBody = z.strictObject(
  { message: z.string({ error: 'a string of at most 10000 characters' }).max(10_000, { error: 'a string of at most 10000 characters' }) },
  { error: 'a JSON object {"message": TEXT}' },
);

/** Body of `POST /v1/jobs/:id/stdin`: raw bytes. */
export const stdinBody = z
  .custom<Buffer>((v) => Buffer.isBuffer(v), { error: 'stdin is sent as application/octet-stream' })
  .meta({ type: 'string', contentMediaType: 'application/octet-stream' });

/** The job description, named for the OpenAPI document. */
z.globalRegistry.add(jobDescriptionSchema, { id: 'JobDescription', description: 'What to run and how (docs/api.md).' });

const ERROR_CODES = Object.keys(HTTP_STATUS) as [ErrorCode, ...ErrorCode[]];

/** Every error answer. */
export const errorSchema = z
  .object({
    error: z.object({
      code: z.enum(ERROR_CODES).describe('Stable code; the HTTP status follows from it (docs/api.md, Errors).'),
      message: z.string(),
      field: z.string().optional().describe('The input field that was wrong, when one was.'),
    }),
  })
  .meta({ id: 'Error', description: 'An error: `{"error":{"code","message","field"?}}`.' });

/** The error answers of a route: any 4xx, in the shape above. */
export const errorAnswers = { '4XX': errorSchema.describe('An error; the status follows from its code.') } as const;

const jobStatus = z.enum(['Queued', 'Running', 'Success', 'Failed', 'Cancelled', 'Lost']);

/** A job's info object. */
export const jobInfoSchema = z
  .object({
    id: z.string(),
    type: z.literal('job'),
    name: z.string(),
    group: z.string().describe("Group path, '' for the root."),
    owner: z.string(),
    status: jobStatus,
    queue: z.string(),
    progress: z.string().nullable(),
    exitCode: z.number().int().nullable(),
    signal: z.string().nullable(),
    error: z.string().nullable(),
    result: z.unknown().describe('JSON result of a function job.'),
    url: z.string().nullable(),
    interactive: z.boolean(),
    tty: z.boolean(),
    node: z.string().nullable(),
    reason: z.string().nullable().describe('Why a Queued job is still waiting, when known.'),
    createdAt: z.string(),
    startedAt: z.string().nullable(),
    endedAt: z.string().nullable(),
    description: jobDescriptionSchema.optional().describe('The description as submitted (after defaults); on single-job reads.'),
  })
  .meta({ id: 'JobInfo', description: "A job's info object." });

/** A group's info object. */
export const groupInfoSchema = z
  .object({
    id: z.string(),
    type: z.literal('group'),
    name: z.string(),
    path: z.string(),
    parent: z.string().nullable(),
    owner: z.string(),
    createdAt: z.string(),
  })
  .meta({ id: 'GroupInfo', description: 'A node of the job tree.' });

/** `GET /v1/jobs`. */
export const jobPageSchema = z.object({
  items: z.array(jobInfoSchema),
  next: z.string().optional().describe('Cursor of the next page; absent on the last.'),
});

/** `GET /v1/groups`. */
export const groupListSchema = z.object({ items: z.array(groupInfoSchema) });

/** One queue. */
export const queueStatusSchema = z
  .object({ name: z.string(), limit: z.number().int().nullable().describe('Most jobs running at once; null when unlimited.'), running: z.number().int(), queued: z.number().int() })
  .meta({ id: 'QueueStatus' });

/** `GET /v1/queues`. */
export const queueListSchema = z.object({ items: z.array(queueStatusSchema) });

/** `GET /v1/whoami`. */
export const whoAmISchema = z.object({ user: z.string(), admin: z.boolean() }).meta({ id: 'WhoAmI' });

/** `GET /v1/workers`. */
export const workersReportSchema = z
  .object({
    mode: z.enum(['embedded', 'distributed']),
    items: z.array(
      z.object({
        name: z.string(),
        alive: z.boolean(),
        pools: z.array(z.string()),
        slots: z.number().int(),
        used: z.number().int(),
        free: z.number().int(),
        single: z.number().int(),
        unlimited: z.number().int(),
        labels: z.record(z.string(), z.string()),
        host: z.string(),
        pid: z.number().int(),
        startedAt: z.string(),
        heartbeatAt: z.string(),
      }),
    ),
    pools: z.array(z.object({ name: z.string(), workers: z.number().int(), slots: z.number().int(), used: z.number().int(), queued: z.number().int() })),
  })
  .meta({ id: 'WorkersReport' });

/** One named executor. */
export const executorInfoSchema = z
  .object({
    name: z.string(),
    url: z.string(),
    adaptor: z.string(),
    state: z.enum(['ready', 'idle', 'connected', 'reconnecting', 'failing']),
    reason: z.string().optional().describe('Why it is not connected, when it is not.'),
    defaultQueue: z.string().optional().describe("The queue of its jobs that name none, when it has its own (a Slurm cluster's default partition)."),
    queues: z.array(z.object({ name: z.string(), limit: z.number().int().nullable() })),
  })
  .meta({ id: 'ExecutorInfo' });

/** `GET /v1/executors`. */
export const executorListSchema = z.object({ items: z.array(executorInfoSchema) });

/** `POST /v1/jobs/:id/stdin` and `/stdin/close`. */
export const stdinOffsetSchema = z.object({ offset: z.number().int().describe('Stdin bytes accepted so far.') });

/** Bytes of a job's output. */
export const bytesSchema = z.custom<Uint8Array>().meta({ type: 'string', contentMediaType: 'application/octet-stream' });

/** No body (204, and 101 before a WebSocket). */
export const noBody = z.null();

// The answers' schemas describe the SDK's types: a change to either that the other misses fails here.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const sameAsTheSdk: [
  Same<z.output<typeof jobInfoSchema>, JobInfo>,
  Same<z.output<typeof groupInfoSchema>, GroupInfo>,
  Same<z.output<typeof queueStatusSchema>, QueueStatus>,
  Same<z.output<typeof whoAmISchema>, WhoAmI>,
  Same<z.output<typeof workersReportSchema>, WorkersReport>,
  Same<z.output<typeof executorInfoSchema>, ExecutorInfo>,
] = [true, true, true, true, true, true];
void sameAsTheSdk;

/** A validation error as fastify-type-provider-zod hands it over (Ajv's shape, the zod issue's rest in `params`). */
export interface ProviderIssue {
  keyword: string;
  instancePath: string;
  message?: string;
  params?: Record<string, unknown>;
}

/** The zod issue behind a {@link ProviderIssue}. */
export function issueOf(v: ProviderIssue): IssueLike {
  const params = v.params ?? {};
  return {
    code: v.keyword,
    path: v.instancePath.split('/').slice(1).filter((s) => s !== ''),
    message: v.message ?? 'invalid',
    ...(Array.isArray(params.keys) ? { keys: params.keys.map(String) } : {}),
    ...(typeof params.expected === 'string' ? { expected: params.expected } : {}),
  };
}

/** Where in a request a check failed (fastify's names). */
export type RequestPart = 'querystring' | 'params' | 'body' | 'headers';

/**
 * The API's error for a failed check of `part`: an unknown query parameter or field by name,
 * anything else as `FIELD: what it must be`. A job description's errors are those of
 * jobs/schema.ts (code `invalid_description`), whichever protocol brought it.
 */
export function requestError(part: RequestPart, issue: IssueLike, isDescription = false): BadRequestError {
  if (part === 'body' && isDescription) return describeIssue(issue);
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys ?? [];
    const what = part === 'querystring' ? 'query parameter' : part === 'body' ? `field${keys.length > 1 ? 's' : ''}` : part;
    return new BadRequestError(`unknown ${what}: ${keys.join(', ')}`, keys[0] !== undefined ? { field: keys[0] } : {});
  }
  const field = issue.path.map(String).join('.');
  return new BadRequestError(field ? `${field}: ${issue.message}` : issue.message, field ? { field } : {});
}

/**
 * Reads a query (`URLSearchParams`, for the WebSocket upgrades that fastify does not route)
 * as fastify does — a repeated name becomes an array — and checks it with `schema`.
 */
export function parseQuery<T extends z.ZodType>(schema: T, query: URLSearchParams): z.output<T> {
  const input: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  for (const [name, value] of query) {
    const seen = input[name];
    input[name] = seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [seen, value];
  }
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw requestError('querystring', parsed.error.issues[0]!);
  return parsed.data;
}
