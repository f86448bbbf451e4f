/**
 * The shape of a job network — jobs joined by pipes — as one zod schema whose types are the
 * SDK's: {@link NetworkSpec} is what a user writes (a network file, or the argument of a future
 * `client.runNetwork(spec)`). jobwire's network file loader (YAML, with line numbers in its
 * errors) and its checks build on this schema; docs/networks.md describes the shape.
 *
 * Imported on its own as `@jobwire/client/network`, so that pages which never handle networks
 * do not load zod.
 * @module
 */
import { z } from 'zod';

/** Names of networks, jobs and pipes: they become parts of stream ids and group paths. */
export const NETWORK_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const nameMessage = 'letters, digits, "_" and "-", starting with a letter or digit, at most 64';
const name = z.string().regex(NETWORK_NAME, nameMessage);
/** Pools and nodes: the same alphabet as a job description's placement names. */
const placementName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'letters, digits, ".", "_" and "-", starting with a letter or digit, at most 128');
const path = z.string().min(1).max(4096);

/** How a pipe cuts its producer's bytes into frames. */
export const FRAMINGS = ['bytes', 'lines', 'frames'] as const;
/** Framing of a pipe: `bytes` (each write a frame), `lines` (each line a frame), `frames` (see {@link FRAME_ENCODINGS}). */
export type Framing = (typeof FRAMINGS)[number];

/** How `frames` are written by an executable: one JSON value per line, or a 4-byte big-endian length and that many bytes. */
export const FRAME_ENCODINGS = ['json', 'binary'] as const;
/** Encoding of `frames`. */
export type FrameEncoding = (typeof FRAME_ENCODINGS)[number];

/** What a full queue does to its producer. */
export const OVERFLOWS = ['block', 'drop-oldest', 'drop-newest'] as const;
/** Overflow policy of a bounded queue. */
export type Overflow = (typeof OVERFLOWS)[number];

/** What an input with `align: seq` does about a sequence number one of its inputs lacks. */
export const GAP_POLICIES = ['wait', 'fill-previous', 'fill-zero', 'skip'] as const;
/** Gap policy of an aligned job. */
export type GapPolicy = (typeof GAP_POLICIES)[number];

/** The builtin jobs. */
export const BUILTINS = ['csv-sink', 'interactive', 'logging', 'clock', 'forward'] as const;
/** A builtin job's name. */
export type Builtin = (typeof BUILTINS)[number];

/** When a job that ended is started again. */
export const RESTART_POLICIES = ['never', 'on-failure', 'always'] as const;

const queue = z.strictObject({
  /** Most frames stored and not yet read by the slowest consumer (docs/networks.md, bounded queues). */
  max: z.number().int().min(1).max(1_000_000).optional(),
  overflow: z.enum(OVERFLOWS).optional(),
  /** `fifo`: every frame in order; `latest`: a consumer takes the newest frame (or `default`) without waiting. */
  mode: z.enum(['fifo', 'latest']).optional(),
  /** What a `latest` consumer gets before the first frame. */
  default: z.unknown().optional(),
});

const restart = z.strictObject({
  policy: z.enum(RESTART_POLICIES).optional(),
  max: z.number().int().min(0).max(1000).optional(),
});

const align = z.union([
  z.literal('seq'),
  z.strictObject({
    by: z.literal('seq'),
    gap: z.enum(GAP_POLICIES).optional(),
  }),
]);

/** zod schema of one job of a network (see {@link NetworkJobSpec}). */
export const networkJobSchema = z.strictObject({
  /** Executable: the program and its arguments (numbers become strings); `{in.NAME}`/`{out.NAME}` become named pipes. */
  command: z
    .array(z.union([z.string().min(1).max(100_000), z.number()]).transform(String))
    .min(1)
    .max(10_000)
    .optional(),
  /** JavaScript: path of an ES module exporting `run` (and optional `setup`, `finish`). */
  js: path.optional(),
  /** JavaScript: the export holding `setup`/`run`/`finish`, when not the module itself. */
  export: z.string().min(1).max(200).optional(),
  /** A builtin job. */
  builtin: z.enum(BUILTINS).optional(),
  inputs: z.array(name).max(256).optional(),
  outputs: z.array(name).max(256).optional(),
  pools: z.array(placementName).min(1).max(32).optional(),
  node: placementName.optional(),
  restart: restart.optional(),
  align: align.optional(),
  environment: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'environment variable names are letters, digits and _'), z.string().max(1_000_000)).optional(),
  workingDirectory: path.optional(),
  /** Builtins `csv-sink` and `logging`: the CSV file written. */
  path: path.optional(),
  /** Builtin `csv-sink`: the columns, from frame fields (objects) or array items (in order). */
  columns: z.array(z.string().min(1).max(200)).min(1).max(1000).optional(),
  /** Builtin `clock`: milliseconds between frames. */
  interval: z.number().min(1).max(86_400_000).optional(),
  /** Builtin `clock`: frames before it ends (absent: runs until stopped). */
  count: z.number().int().min(1).optional(),
});

/** zod schema of one pipe of a network (see {@link PipeSpec}). */
export const pipeSchema = z.strictObject({
  framing: z.enum(FRAMINGS).optional(),
  /** Only with `framing: frames`. */
  encoding: z.enum(FRAME_ENCODINGS).optional(),
  queue: queue.optional(),
});

/** zod schema of a network file (see {@link NetworkSpec}). */
export const networkSchema = z.strictObject({
  name,
  defaults: z
    .strictObject({
      queue: queue.optional(),
      restart: restart.optional(),
      pools: z.array(placementName).min(1).max(32).optional(),
    })
    .optional(),
  jobs: z.record(name, networkJobSchema).refine((jobs) => Object.keys(jobs).length > 0, 'a network has at least one job'),
  pipes: z.record(name, pipeSchema.nullable()).optional(),
});

/** A network as written: jobs by name, pipes by name, defaults. */
export type NetworkSpec = z.input<typeof networkSchema>;
/** A network as the schema gives it back (numbers in `command` made strings). */
export type ParsedNetwork = z.output<typeof networkSchema>;
/** One job as written. */
export type NetworkJobSpec = z.input<typeof networkJobSchema>;
/** One pipe as written. */
export type PipeSpec = z.input<typeof pipeSchema>;
/** A bounded queue as written. */
export type QueueSpec = z.input<typeof queue>;

/** A pipe's queue with its defaults filled in. */
export interface Queue {
  max: number;
  overflow: Overflow;
  mode: 'fifo' | 'latest';
  default?: unknown;
}

/** Defaults of a queue when neither the pipe nor the network's `defaults` say. */
export const DEFAULT_QUEUE: Queue = { max: 64, overflow: 'block', mode: 'fifo' };

/** One job of a running network, as its status shows it. */
export interface NetworkJobStatus {
  name: string;
  /** The job's id: an ordinary job of the group `networks:NAME`. */
  id: string;
  status: 'Queued' | 'Running' | 'Success' | 'Failed' | 'Cancelled' | 'Lost';
  exitCode: number | null;
  /** Worker node running it (distributed mode), or null. */
  node: string | null;
  /** Times it was restarted by its restart policy (each restart is a new job; `id` is the newest). */
  restarts: number;
  /**
   * Times it was placed again because its worker died, or started again because the server
   * wiring it stopped and another took the network over (each move is a new job, resuming from
   * its committed cursors; not counted in `restarts`).
   */
  moves: number;
  /** Frames it took from its inputs. */
  framesIn: number;
  /** Frames it stored to its outputs. */
  framesOut: number;
}

/** A frame of a pipe, as a tap ({@link Client.tapPipe}) gives it. */
export interface PipeFrame {
  /** The producer's sequence number. */
  seq: number;
  /** The frame's place among the frames stored in the pipe. */
  index: number;
  /** The producer's epoch (one more after each restart). */
  epoch: number;
  /** First frame of a new epoch: the producer restarted. */
  reset: boolean;
  /** The value, as a js job sees it: a string (`lines`), a JSON value (`frames`), bytes otherwise. */
  value: unknown;
}

/** One pipe of a running network, as its status shows it. */
export interface NetworkPipeStatus {
  name: string;
  /** Frames stored. */
  frames: number;
  /** Frames dropped by its producer (`drop-newest`) and by its consumers (`drop-oldest`). */
  dropped: number;
  /** Frames stored and not yet read by the slowest consumer (the queue depth). */
  lag: number;
}

/**
 * The shape of a network run, as `GET /v1/networks/NAME/graph` answers: its jobs and which
 * pipes join them (what the dashboard draws; the counts are in {@link NetworkStatus}).
 */
export interface NetworkGraph {
  name: string;
  /** Id of the run (as in {@link NetworkStatus}). */
  run: string;
  jobs: Array<{
    name: string;
    kind: 'executable' | 'js' | 'builtin';
    /** The builtin's name, for a builtin job. */
    builtin?: Builtin;
    /** The program and its arguments, for an executable job (a program named by a path made absolute). */
    command?: string[];
    /** The module (an absolute path) and its export when the file names one, for a js job. */
    js?: { module: string; export?: string };
    /** Pipe names, in order. */
    inputs: string[];
    outputs: string[];
  }>;
  pipes: Array<{
    name: string;
    framing: Framing;
    /** How its frames are encoded, for `framing: frames`. */
    encoding?: FrameEncoding;
    queue: { max: number; overflow: Overflow; mode: 'fifo' | 'latest' };
    /** The job that writes it. */
    producer: string;
    /** The jobs that read it. */
    consumers: string[];
  }>;
}

/** A network run, as `POST /v1/networks` and `GET /v1/networks/NAME` answer. */
export interface NetworkStatus {
  name: string;
  /** Id of this run: its pipes are the streams `net.NAME.RUN.PIPE`. */
  run: string;
  /**
   * `running` until every job has ended and will not restart; then `done` when all succeeded,
   * `stopped` after a stop, else `failed`.
   */
  state: 'running' | 'done' | 'failed' | 'stopped';
  /** The group of its jobs: `networks:NAME`. */
  group: string;
  jobs: NetworkJobStatus[];
  pipes: NetworkPipeStatus[];
  /** What went wrong in the wiring (a producer's bytes that break the framing, say). */
  errors: string[];
}
