/**
 * What distributed mode asks of its store beyond {@link Store}: the operations of the worker
 * registry, placement, hand-over, the shared token book and the server registry, each one named
 * operation (atomic where it must be: one Lua script in the Redis store).
 * @module
 */

/** The claim a worker holds on a job it runs: placed on `node`, in attempt `attempt`. */
export interface RunClaim {
  /** The worker's node name. */
  node: string;
  /** The attempt the worker was handed (1 for the first run; each retry adds one). */
  attempt: number;
}
