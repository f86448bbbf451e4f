/**
 * What this process measures for Prometheus (prom-client): attach sessions, output bytes sent to
 * clients, store operation latency, and prom-client's default metrics (event-loop delay, memory,
 * CPU, handles). Each is fed by a one-line call from wherever the thing happens — the transports,
 * the downloads, a store wrapped by {@link timedStore} — and served with each server's own
 * figures at `GET /metrics` (server/metrics.ts).
 *
 * The module depends on nothing of the server, so that every transport (`server/`, `grpc/`) may
 * call it. Counters start at zero with the process, as Prometheus expects; several servers in one
 * process (tests, embedding) share these.
 * @module
 */
import { performance } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, exponentialBuckets } from 'prom-client';
import type { Store } from './store/types.js';

/** How output reaches a client: an attach WebSocket, a gRPC interactive call, an HTTP download. */
export type Transport = 'websocket' | 'grpc' | 'http';

/** The process's metrics. */
export const processRegistry = new Registry();

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

/** Starts prom-client's default metrics (once; the event-loop monitor runs from then on). */
export function collectProcessMetrics(): void {
  if (defaultsCollected) return;
  defaultsCollected = true;
  collectDefaultMetrics({ register: processRegistry });
}

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
