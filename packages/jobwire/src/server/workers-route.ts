/**
 * `GET /v1/workers`: the workers of distributed mode, their load, and the pools' queues. An
 * embedded server has no workers (it runs every job itself) and says so.
 * @module
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { API_PREFIX, type WorkersReport } from '@jobwire/client';
import { errorAnswers, noQuery, workersReportSchema } from './schemas.js';

/** Registers the route; `report` is undefined in embedded mode. Authentication is the API's hook. */
export function registerWorkersRoute(app: FastifyInstance, report: (() => Promise<WorkersReport>) | undefined): void {
  app.withTypeProvider<ZodTypeProvider>().get(
    `${API_PREFIX}/workers`,
    { schema: { tags: ['queues'], summary: 'Workers, their load, and the pools', querystring: noQuery, response: { 200: workersReportSchema, ...errorAnswers } } },
    async () => {
      if (!report) return { mode: 'embedded', items: [], pools: [] } satisfies WorkersReport;
      return report();
    },
  );
}
