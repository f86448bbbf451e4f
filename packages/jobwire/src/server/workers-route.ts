/**
 * `GET /v1/workers`: the workers of distributed mode, their load, and the pools' queues. An
 * embedded server has no workers (it runs every job itself) and says so. `GET /v1/executors`:
 * the server's named executors (docs/executors.md).
 * @module
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { API_PREFIX, type ExecutorInfo, type WorkersReport } from '@jobwire/client';
import { errorAnswers, executorListSchema, noQuery, workersReportSchema } from './schemas.js';

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

/** Registers `GET /v1/executors`: `list` says what the backend runs jobs with. Authentication is the API's hook. */
export function registerExecutorsRoute(app: FastifyInstance, list: () => ExecutorInfo[] | Promise<ExecutorInfo[]>): void {
  app.withTypeProvider<ZodTypeProvider>().get(
    `${API_PREFIX}/executors`,
    { schema: { tags: ['queues'], summary: 'Named executors, their state and queues', querystring: noQuery, response: { 200: executorListSchema, ...errorAnswers } } },
    async () => ({ items: await list() }),
  );
}
