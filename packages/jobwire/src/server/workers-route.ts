/**
 * `GET /v1/workers`: the workers of distributed mode, their load, and the pools' queues. An
 * embedded server has no workers (it runs every job itself) and says so.
 * @module
 */
import type { FastifyInstance } from 'fastify';
import { API_PREFIX, BadRequestError, type WorkersReport } from '@jobwire/client';

/** Registers the route; `report` is undefined in embedded mode. Authentication is the API's hook. */
export function registerWorkersRoute(app: FastifyInstance, report: (() => Promise<WorkersReport>) | undefined): void {
  app.get(`${API_PREFIX}/workers`, async (req) => {
    const unknown = Object.keys((req.query ?? {}) as Record<string, unknown>);
    if (unknown.length > 0) throw new BadRequestError(`unknown query parameter: ${unknown.join(', ')}`, { field: unknown[0]! });
    if (!report) return { mode: 'embedded', items: [], pools: [] } satisfies WorkersReport;
    return report();
  });
}
