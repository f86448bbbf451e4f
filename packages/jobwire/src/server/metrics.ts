/**
 * `GET /metrics` (Prometheus text format), for admin tokens only: the figures count every user's
 * jobs, and a user may see only their own.
 *
 * The answer holds the process's metrics (../metrics.ts) and what this server's store knows:
 * Queued and Running jobs by queue, read from the queues' counts when scraped (the same cheap
 * count `GET /v1/queues` reads, never a scan of the jobs), and the jobs that ended, by status and
 * queue, counted from the store's events as they pass (a count of all finished jobs would be a
 * scan per scrape).
 * @module
 */
import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Registry } from 'prom-client';
import { z } from 'zod';
import { isFinal, type QueueStatus } from '@jobwire/client';
import { collectProcessMetrics, processRegistry } from '../metrics.js';
import type { Store } from '../store/types.js';
import { errorAnswers } from './schemas.js';

/** Where the metrics are served. */
export const METRICS_PATH = '/metrics';

/** What a server's metrics read. */
export interface MetricsSources {
  /** The store, whose events count the jobs that end. */
  store: Pick<Store, 'onEvent'>;
  /** Every queue with its running and queued jobs (the job service's `queues()`). */
  queues: () => Promise<QueueStatus[]>;
}

/** Adds `GET /metrics` to `app` (admin tokens only), with the process's metrics and those of `sources`. */
export function registerMetrics(app: FastifyInstance, sources: MetricsSources): void {
  collectProcessMetrics();
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
