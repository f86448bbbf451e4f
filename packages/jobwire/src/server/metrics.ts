/**
 * Prometheus metrics at `GET /metrics` (prom-client), for admin tokens only: they count every
 * user's jobs, and a user may see only their own.
 *
 * What the process measures — attach sessions, output bytes sent, store operation latency, and
 * prom-client's default metrics (event-loop delay, memory, CPU, handles) — lives in one registry
 * of this module, fed by the one-line calls below from wherever the thing happens. Each server
 * adds what its store knows: Queued and Running jobs by queue, read from the queues' counts when
 * scraped (the same cheap count `GET /v1/queues` reads, never a scan of the jobs), and the jobs
 * that ended, by status and queue, counted from the store's events as they pass (a count of all
 * finished jobs would be a scan per scrape).
 *
 * Counters start at zero with the process, as Prometheus expects; several servers in one process
 * (tests, embedding) share the process's metrics.
 * @module
 */
import { performance } from 'node:perf_hooks';
import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, exponentialBuckets } from 'prom-client';
import { z } from 'zod';
import { isFinal, type QueueStatus } from '@jobwire/client';
import type { Store } from '../store/types.js';
import { errorAnswers } from './schemas.js';

/** Where the metrics are served. */
export const METRICS_PATH = '/metrics';

/** How output reaches a client: an attach WebSocket, a gRPC interactive call, an HTTP download. */
export type Transport = 'websocket' | 'grpc' | 'http';

const processRegistry = new Registry();

const attachSessions = new Gauge({
  name: 'jobwire_attach_sessions',
  help: 'Attach sessions open (clients following a job live), by transport.',
  labelNames: ['transport'],
  registers: [processRegistry],
});

const outputBytes = new Counter({
  name: 'jobwire_output_sent_bytes_total',
  help: 'Bytes of job output sent to clients, by transport (websocket attach, grpc interactive, http download).',
  labelNames: ['transport'],
  registers: [processRegistry],
});

const storeSeconds = new Histogram({
  name: 'jobwire_store_operation_duration_seconds',
  help: 'Time a store operation took, by operation (streams.* for the stream log).',
  labelNames: ['operation'],
  // 0.1 ms to about 6.5 s: an embedded store answers in well under a millisecond, Redis in a few.
  buckets: exponentialBuckets(0.0001, 4, 9),
  registers: [processRegistry],
});

// Every transport's series from the start, so that a dashboard sees 0 rather than nothing.
for (const transport of ['websocket', 'grpc', 'http'] satisfies Transport[]) {
  if (transport !== 'http') attachSessions.set({ transport }, 0);
  outputBytes.inc({ transport }, 0);
}

let defaultsCollected = false;

/** An attach session opened. Pair with {@link attachClosed}. */
export function attachOpened(transport: Transport): void {
  attachSessions.inc({ transport });
}

/** An attach session ended. */
export function attachClosed(transport: Transport): void {
  attachSessions.dec({ transport });
}

/** `bytes` of output went to a client. */
export function outputSent(transport: Transport, bytes: number): void {
  outputBytes.inc({ transport }, bytes);
}

/** `chunks`, counting each as sent when the consumer takes it. */
export async function* countSent(chunks: AsyncIterable<Uint8Array>, transport: Transport): AsyncGenerator<Uint8Array> {
  for await (const chunk of chunks) {
    outputSent(transport, chunk.byteLength);
    yield chunk;
  }
}

const timedStreams = new WeakMap<object, object>();

/**
 * `target` with every call that returns a promise timed into the store latency histogram under
 * `prefix + name`. Everything else — fields, synchronous calls, iterables — passes through; calls
 * reach the target itself, so its private fields work.
 */
function timed<T extends object>(target: T, prefix: string): T {
  return new Proxy(target, {
    get(obj, key) {
      const value: unknown = Reflect.get(obj, key, obj);
      if (key === 'streams' && prefix === '' && value !== null && typeof value === 'object') {
        let streams = timedStreams.get(value);
        if (!streams) timedStreams.set(value, (streams = timed(value, 'streams.')));
        return streams;
      }
      if (typeof value !== 'function') return value;
      if (typeof key !== 'string') return (value as (...args: unknown[]) => unknown).bind(obj);
      const operation = prefix + key;
      return (...args: unknown[]): unknown => {
        const start = performance.now();
        const result: unknown = (value as (...args: unknown[]) => unknown).apply(obj, args);
        if (result instanceof Promise) {
          const observe = (): void => storeSeconds.observe({ operation }, (performance.now() - start) / 1000);
          result.then(observe, observe);
        }
        return result;
      };
    },
  });
}

/** `store` with the latency of each operation (and of its stream log's) recorded. */
export function timedStore(store: Store): Store {
  return timed(store, '');
}

/** What a server's metrics read. */
export interface MetricsSources {
  /** The store, whose events count the jobs that end. */
  store: Pick<Store, 'onEvent'>;
  /** Every queue with its running and queued jobs (the job service's `queues()`). */
  queues: () => Promise<QueueStatus[]>;
}

/** Adds `GET /metrics` to `app` (admin tokens only), with the process's metrics and those of `sources`. */
export function registerMetrics(app: FastifyInstance, sources: MetricsSources): void {
  if (!defaultsCollected) {
    defaultsCollected = true;
    collectDefaultMetrics({ register: processRegistry });
  }
  const server = new Registry();
  new Gauge({
    name: 'jobwire_jobs',
    help: 'Jobs Queued and Running, by status and queue.',
    labelNames: ['status', 'queue'],
    registers: [server],
    async collect() {
      const queues = await sources.queues();
      this.reset();
      for (const q of queues) {
        this.set({ status: 'Queued', queue: q.name }, q.queued);
        this.set({ status: 'Running', queue: q.name }, q.running);
      }
    },
  });
  const finished = new Counter({
    name: 'jobwire_jobs_finished_total',
    help: 'Jobs that ended since this server started, by final status and queue.',
    labelNames: ['status', 'queue'],
    registers: [server],
  });
  // A job's status turns final once, in one `update` event.
  const off = sources.store.onEvent((ev) => {
    if (ev.verb === 'update' && ev.info.type === 'job' && isFinal(ev.info.status)) finished.inc({ status: ev.info.status, queue: ev.info.queue });
  });
  app.addHook('onClose', async () => off());
  const registry = Registry.merge([processRegistry, server]);

  app.get(
    METRICS_PATH,
    {
      config: { auth: 'admin' },
      schema: {
        tags: ['operations'],
        summary: 'Prometheus metrics',
        description: 'Jobs by status and queue, attach sessions, output bytes sent, store latency, event-loop delay (docs/api.md, Metrics).',
        response: {
          200: { description: 'The Prometheus text format', content: { [registry.contentType]: { schema: z.string() } } },
          ...errorAnswers,
        },
      },
    },
    async (_req, reply) => reply.type(registry.contentType).send(await registry.metrics()),
  );
}
