/**
 * The jobwire server: REST, WebSocket attach and events, the embedded scheduler.
 * @module
 */

/** Options of {@link startServer}. */
export interface ServerOptions {
  /** Address to bind. @defaultValue "127.0.0.1" */
  host?: string;
  /** Port; 0 picks a free one. @defaultValue 7700 */
  port?: number;
  /** jobwire home. @defaultValue resolveHome() */
  home?: string;
  /** Slots of the `multi` queue. @defaultValue os.availableParallelism() */
  multiSlots?: number;
  /** Seconds between SIGTERM and SIGKILL when cancelling. @defaultValue 5 */
  graceSeconds?: number;
  /** pino log level. @defaultValue "info" */
  logLevel?: string;
}

/** A running server. */
export interface ServerHandle extends AsyncDisposable {
  /** Base URL, e.g. http://127.0.0.1:7700 */
  readonly url: string;
  /** The admin token. */
  readonly token: string;
  readonly home: string;
  /** Stops accepting, detaches clients, stops running jobs' bookkeeping, closes the store. */
  close(): Promise<void>;
}

/** Starts a server. (Being written: see the core issue.) */
export async function startServer(_options: ServerOptions = {}): Promise<ServerHandle> {
  throw new Error('not yet implemented');
}
