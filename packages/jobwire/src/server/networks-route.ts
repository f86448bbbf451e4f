/**
 * `POST /v1/networks` starts a network (docs/networks.md), `GET /v1/networks` lists them,
 * `GET /v1/networks/:name` tells how it runs, `GET /v1/networks/:name/graph` gives its shape, `POST /v1/networks/:name/stop` stops it. The network's jobs are ordinary jobs of the group
 * `networks:NAME`; the server wires them to their pipes (`networks/run.ts`).
 * @module
 */
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { API_PREFIX } from '@jobwire/client';
import type { NetworkRunner } from '../networks/run.js';
import { errorAnswers, noQuery } from './schemas.js';

const networkStatusSchema = z
  .object({
    name: z.string(),
    run: z.string().describe('Id of this run: its pipes are the streams net.NAME.RUN.PIPE.'),
    state: z.enum(['running', 'done', 'failed', 'stopped']),
    group: z.string().describe('The group of its jobs: networks:NAME.'),
    jobs: z.array(
      z.object({
        name: z.string(),
        id: z.string().describe('Its newest job (a restart submits a new one).'),
        status: z.enum(['Queued', 'Running', 'Success', 'Failed', 'Cancelled', 'Lost']),
        exitCode: z.number().nullable(),
        node: z.string().nullable().describe('Worker node running it (distributed mode).'),
        restarts: z.number().describe('Restarts made by its restart policy.'),
        moves: z.number().describe('Times it was placed again because its worker died or its wiring server stopped (not restarts).'),
        framesIn: z.number().describe('Frames taken from its inputs.'),
        framesOut: z.number().describe('Frames stored to its outputs.'),
      }),
    ),
    pipes: z.array(z.object({ name: z.string(), frames: z.number(), dropped: z.number(), lag: z.number().describe('Queue depth: frames between the producer and its slowest consumer.') })),
    errors: z.array(z.string()),
  })
  .describe('A network run: its jobs, its pipes, and what went wrong in the wiring.');

const networkGraphSchema = z
  .object({
    name: z.string(),
    run: z.string(),
    jobs: z.array(
      z.object({
        name: z.string(),
        kind: z.enum(['executable', 'js', 'builtin']),
        builtin: z.enum(['csv-sink', 'interactive', 'logging', 'clock', 'forward']).optional(),
        command: z.array(z.string()).optional().describe('The program and its arguments, for an executable job (a program named by a path made absolute).'),
        js: z.object({ module: z.string().describe('Absolute path of the module.'), export: z.string().optional() }).optional().describe('The module and export, for a js job.'),
        inputs: z.array(z.string()).describe('Pipes it reads, in order.'),
        outputs: z.array(z.string()).describe('Pipes it writes, in order.'),
      }),
    ),
    pipes: z.array(
      z.object({
        name: z.string(),
        framing: z.enum(['bytes', 'lines', 'frames']),
        encoding: z.enum(['json', 'binary']).optional().describe('How its frames are encoded, for framing frames.'),
        queue: z.object({ max: z.number(), overflow: z.enum(['block', 'drop-oldest', 'drop-newest']), mode: z.enum(['fifo', 'latest']) }),
        producer: z.string().describe('The job that writes it.'),
        consumers: z.array(z.string()).describe('The jobs that read it.'),
      }),
    ),
  })
  .describe("A network run's shape: its jobs and the pipes that join them.");

/** A stream of newline-delimited JSON (the route sends a Node stream). */
const ndjsonSchema = z.custom<Readable>().meta({ type: 'string', contentMediaType: 'application/x-ndjson' });

const startBody = z.strictObject({
  spec: z.unknown().describe('The network, as a network file holds it (docs/networks.md).'),
  baseDir: z.string().min(1).max(4096).describe("Absolute folder that the network's relative paths resolve against (a network file's folder)."),
});

/** Registers the routes. Authentication is the API's hook. */
/** `stopping` aborts when the server begins to stop: taps are cut then. */
export function registerNetworksRoute(app: FastifyInstance, runner: NetworkRunner, stopping: AbortSignal): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const user = (req: FastifyRequest): string => req.who!.user;
  api.post(
    `${API_PREFIX}/networks`,
    {
      schema: {
        tags: ['networks'],
        summary: 'Start a network',
        description: 'Checks the network (each problem named with its field) and starts its jobs in the group networks:NAME, wired to their pipes. Refused when a network of that name runs.',
        querystring: noQuery,
        body: startBody,
        response: { 201: networkStatusSchema, ...errorAnswers },
      },
    },
    async (req, reply) => reply.code(201).send(await runner.start(user(req), req.body.spec, req.body.baseDir)),
  );
  api.get(
    `${API_PREFIX}/networks`,
    {
      schema: {
        tags: ['networks'],
        summary: 'Your networks',
        description: "The newest run of each of your networks, by name: this server's and those any server saved in the store (in distributed mode, every server's).",
        querystring: noQuery,
        response: { 200: z.object({ items: z.array(networkStatusSchema) }), ...errorAnswers },
      },
    },
    async (req) => ({ items: await runner.list(user(req)) }),
  );
  api.get(
    `${API_PREFIX}/networks/:name/graph`,
    {
      schema: {
        tags: ['networks'],
        summary: "A network's graph: its jobs and pipes",
        description: 'Which job writes and which jobs read each pipe, with its framing and queue (the counts are in the status).',
        params: z.object({ name: z.string().describe('Network name.') }),
        querystring: noQuery,
        response: { 200: networkGraphSchema, ...errorAnswers },
      },
    },
    async (req) => runner.graph(user(req), req.params.name),
  );
  api.get(
    `${API_PREFIX}/networks/:name`,
    {
      schema: {
        tags: ['networks'],
        summary: 'A network run: its jobs and pipes',
        description:
          'The newest run of the network. A server that does not wire it answers from the status the wiring server saves in the store (once a second): ' +
          "job statuses and nodes are read afresh, frame counts are as of the save, and a save over 10 s old while running is from a server that stopped (said in errors).",
        params: z.object({ name: z.string().describe('Network name.') }),
        querystring: noQuery,
        response: { 200: networkStatusSchema, ...errorAnswers },
      },
    },
    async (req) => runner.status(user(req), req.params.name),
  );
  api.get(
    `${API_PREFIX}/networks/:name/pipes/:pipe/frames`,
    {
      schema: {
        tags: ['networks'],
        summary: "Tap a network's pipe",
        description:
          'Every frame stored in the pipe (of the newest run) from the first, then each new one as it is stored, until the pipe ends: one JSON object a line, ' +
          '{seq, index, epoch, reset, value} (bytes as {"$bytes": base64}). A tap commits nothing and holds no producer back. ' +
          'When the network is stopped (or fails) before the pipe ended, a last line {"error": {code: "conflict", message}} follows the frames stored, saying so; ' +
          'when it is started again or removed while the tap is behind, a last line says that (conflict, not_found).',
        params: z.object({ name: z.string().describe('Network name.'), pipe: z.string().describe('Pipe name.') }),
        querystring: noQuery,
        response: { 200: { description: 'Frames as newline-delimited JSON', content: { 'application/x-ndjson': { schema: ndjsonSchema } } }, ...errorAnswers },
      },
    },
    async (req, reply) => {
      const frames = Readable.from(await runner.tap(user(req), req.params.name, req.params.pipe));
      // A tap lasts until its pipe ends; a server stop cuts it (the client sees the answer end
      // unfinished, not as if the pipe had ended), so it does not hold the stop.
      const cut = (): void => {
        reply.raw.destroy();
        frames.destroy();
      };
      if (stopping.aborted) cut();
      else stopping.addEventListener('abort', cut, { once: true });
      reply.raw.once('close', () => stopping.removeEventListener('abort', cut));
      return reply.type('application/x-ndjson').send(frames);
    },
  );
  api.post(
    `${API_PREFIX}/networks/:name/stop`,
    {
      schema: {
        tags: ['networks'],
        summary: 'Stop a network',
        description: 'Cancels the jobs of the newest run of the network; none is restarted. Its pipes are kept (not ended); taps on them end with an error line saying the network was stopped.',
        params: z.object({ name: z.string().describe('Network name.') }),
        querystring: noQuery,
        response: { 200: networkStatusSchema, ...errorAnswers },
      },
    },
    async (req) => runner.stop(user(req), req.params.name),
  );
  api.delete(
    `${API_PREFIX}/networks/:name`,
    {
      schema: {
        tags: ['networks'],
        summary: 'Remove a network',
        description:
          'Removes a network that no longer runs (done, failed or stopped): its saved record and the streams of its newest run (pipes, consumer cursors), so its frames are gone. ' +
          'Its jobs stay, as ended jobs (DELETE /v1/jobs/:id removes them). 409 while it runs (stop it first), 404 when there is no such network.',
        params: z.object({ name: z.string().describe('Network name.') }),
        querystring: noQuery,
        response: {
          200: z.object({ name: z.string(), run: z.string().describe('Id of the run removed.'), streams: z.number().int().describe('Streams removed (pipes, cursors, takeover claims).') }),
          ...errorAnswers,
        },
      },
    },
    async (req) => runner.remove(user(req), req.params.name),
  );
}
