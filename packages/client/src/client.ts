/**
 * `Client`: the SDK's implementation of {@link JobwireApi} over the REST API and the attach and
 * events WebSockets.
 * @module
 */
import type { AttachOptions, Attachment, ClientOptions, EventStream, EventsOptions, InteractiveJob, JobFilter, JobwireApi } from './api.js';
import { InteractiveAttachment, JobAttachment, type AttachContext } from './attach.js';
import { AmbiguousIdError, BadRequestError, ConnectionError, NotFoundError, errorFromWire } from './errors.js';
import { GroupEventStream } from './events.js';
import { request, requestBytes, requestStream, type Connection } from './http.js';
import { isFinal, type ExecutorInfo, type GroupInfo, type JobDescription, type JobInfo, type Page, type QueueStatus, type WhoAmI, type WorkersReport } from './types.js';
import { base64ToBytes, isNode, toBytes } from './util.js';
import type { NetworkGraph, NetworkSpec, NetworkStatus, PipeFrame } from './network.js';

/** A whole job id (a UUID), taken as it is by {@link Client.resolveJobId}. */
const FULL_JOB_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Longest single wait the server allows; longer waits loop. */
const MAX_WAIT_CALL = 60_000;

/** {@link ClientOptions} with every default filled in. */
export interface ResolvedClientOptions {
  url: string | undefined;
  token: string | undefined;
  /** PEM text. */
  ca: string | undefined;
  home: string | undefined;
  reconnect: boolean;
  reconnectTimeout: number;
  fallbackUrls: string[];
}

/** Fills in the defaults of {@link ClientOptions} and checks them. The one place defaults live. */
export function parseClientOptions(options: ClientOptions = {}): ResolvedClientOptions {
  const resolved: ResolvedClientOptions = {
    url: options.url,
    token: options.token,
    ca: typeof options.ca === 'string' || options.ca === undefined ? options.ca : new TextDecoder().decode(options.ca),
    home: options.home,
    reconnect: options.reconnect ?? true,
    reconnectTimeout: options.reconnectTimeout ?? 30_000,
    fallbackUrls: options.fallbackUrls ?? [],
  };
  if (!Array.isArray(resolved.fallbackUrls)) throw new BadRequestError('fallbackUrls must be a list of URLs', { field: 'fallbackUrls' });
  for (const url of resolved.fallbackUrls) {
    try {
      new URL(url);
    } catch (err) {
      throw new BadRequestError(`fallbackUrls: not a URL: ${String(url)}`, { field: 'fallbackUrls', cause: err });
    }
  }
  if (options.ca !== undefined && typeof options.ca !== 'string' && !(options.ca instanceof Uint8Array)) {
    throw new BadRequestError('ca must be PEM text (a string) or its bytes (a Buffer or Uint8Array)', { field: 'ca' });
  }
  if (resolved.ca !== undefined && !resolved.ca.includes('-----BEGIN CERTIFICATE-----')) {
    throw new BadRequestError('ca holds no PEM certificate (no "-----BEGIN CERTIFICATE-----" line); pass the file\'s text, not its path', { field: 'ca' });
  }
  if (typeof resolved.reconnect !== 'boolean') throw new BadRequestError('reconnect must be a boolean', { field: 'reconnect' });
  if (!Number.isFinite(resolved.reconnectTimeout) || resolved.reconnectTimeout < 0) {
    throw new BadRequestError(`reconnectTimeout must be a number of ms >= 0, got ${String(resolved.reconnectTimeout)}`, { field: 'reconnectTimeout' });
  }
  if (resolved.url !== undefined) {
    try {
      new URL(resolved.url);
    } catch (err) {
      throw new BadRequestError(`url is not a URL: ${resolved.url}`, { field: 'url', cause: err });
    }
  }
  return resolved;
}

// A variable specifier keeps bundlers from pulling the Node-only home module (node:fs) into a
// browser build; it is only imported in Node.
const HOME_MODULE = './home.js';
type HomeModule = typeof import('./home.js');

/**
 * URL, token and CA: options first, then (Node) environment and jobwire home, (browser) the
 * page's origin and the browser's own trust.
 */
async function resolveConnection(options: ResolvedClientOptions): Promise<Connection> {
  let url = options.url;
  let token = options.token;
  let ca = options.ca;
  if (isNode()) {
    const home = (await import(/* @vite-ignore */ HOME_MODULE)) as HomeModule;
    const found = await home.resolveConnection({ url, token, home: options.home, ca });
    url = found.url;
    token = found.token;
    ca = found.ca;
  } else {
    url ??= (globalThis as { location?: { origin?: string } }).location?.origin;
  }
  if (!url) {
    throw new ConnectionError('no jobwire server URL: pass { url }, set JOBWIRE_URL, or start one with `jobwire server`', { code: 'no_server' });
  }
  return ca === undefined ? { url, token } : { url, token, ca };
}

function jobPath(id: string, rest = ''): string {
  return `/jobs/${encodeURIComponent(id)}${rest}`;
}

/**
 * A jobwire client (Xenon's Scheduler, jobwire's verbs). Works in Node and browsers.
 *
 * ```ts
 * const client = new Client(); // URL and token from JOBWIRE_URL / JOBWIRE_TOKEN / the jobwire home
 * const job = await client.submitBatchJob({ executable: 'echo', arguments: ['hi'] });
 * const done = await client.waitUntilDone(job.id);
 * ```
 */
export class Client implements JobwireApi {
  // Private: it holds the token, which should not show up when a client is logged.
  private readonly options: Readonly<ResolvedClientOptions>;
  private connection: Promise<Connection> | undefined;
  /** Index of the server in use among the URL and the fallback URLs. */
  private active = 0;

  constructor(options: ClientOptions = {}) {
    this.options = parseClientOptions(options);
  }

  /** The server URL and token in use (resolved on first use; a failure is retried next time). */
  resolveConnection(): Promise<Connection> {
    if (!this.connection) {
      this.connection = resolveConnection(this.options);
      this.connection.catch(() => {
        this.connection = undefined;
      });
    }
    return this.connection;
  }

  private async call<T>(method: string, path: string, options?: Parameters<typeof request>[3]): Promise<T> {
    return this.withFailover(method, (conn) => request<T>(conn, method, path, options));
  }

  /** The server in use now: the URL, or a fallback URL after the ones before it failed. */
  private async current(): Promise<Connection> {
    const base = await this.resolveConnection();
    const servers = [base.url, ...this.options.fallbackUrls.filter((url) => url !== base.url)];
    return { ...base, url: servers[this.active % servers.length]! };
  }

  /** Moves on to the next server, unless someone else did already since `failed` was in use. */
  private async failOver(failed: string): Promise<void> {
    if ((await this.current()).url === failed) this.active += 1;
  }

  /**
   * Runs a request on the server in use; when it cannot be reached (nothing listens there, or a
   * GET lost its connection) and fallback URLs are set, tries the next servers once each.
   */
  private async withFailover<T>(method: string, send: (conn: Connection) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const conn = await this.current();
      try {
        return await send(conn);
      } catch (err) {
        const unreachable = err instanceof ConnectionError && (err.code === 'no_server' || (err.code === 'connection' && method === 'GET'));
        if (!unreachable || attempt >= this.options.fallbackUrls.length) throw err;
        await this.failOver(conn.url);
      }
    }
  }

  /**
   * The connection function of an attachment or event stream: its first connection uses the
   * server in use; each reconnection (after a drop) moves on to the next server when fallback
   * URLs are set, so a stream survives the loss of its server.
   */
  private reconnecting(): () => Promise<Connection> {
    let last: string | undefined;
    return async () => {
      if (last !== undefined && this.options.fallbackUrls.length > 0) await this.failOver(last);
      const conn = await this.current();
      last = conn.url;
      return conn;
    };
  }

  /** Who the token belongs to. */
  whoami(): Promise<WhoAmI> {
    return this.call('GET', '/whoami');
  }

  /**
   * Starts a network (docs/networks.md). Relative paths in `spec` resolve
   * against `baseDir`, an absolute folder on the server's machine. A network that fails its
   * checks is refused with a BadRequestError naming the field.
   */
  runNetwork(spec: NetworkSpec, options: { baseDir: string }): Promise<NetworkStatus> {
    return this.call('POST', '/networks', { json: { spec, baseDir: options.baseDir } });
  }

  /** How a network runs: its jobs and pipes. */
  networkStatus(name: string): Promise<NetworkStatus> {
    return this.call('GET', `/networks/${encodeURIComponent(name)}`);
  }

  /** The networks the server runs (or has run) for you: the newest run of each, by name. */
  async networks(): Promise<NetworkStatus[]> {
    return (await this.call<{ items: NetworkStatus[] }>('GET', '/networks')).items;
  }

  /** The shape of a network's newest run: its jobs and the pipes that join them. */
  networkGraph(name: string): Promise<NetworkGraph> {
    return this.call('GET', `/networks/${encodeURIComponent(name)}/graph`);
  }

  /**
   * Taps a pipe of a network's newest run: every frame stored in it from the first, then each
   * new one as it is stored, until the pipe ends (or you `break`). A tap commits nothing and
   * holds no producer back. When the network is stopped (or fails) before the pipe ended, the
   * loop gets every frame stored, then throws a `ConflictError` saying so: no frame will come. A
   * tap follows one run: when the network is started again (a new run replaces the one tapped,
   * and its pipes are removed) the loop throws a `ConflictError`, and when the network is
   * removed a `NotFoundError`, each saying so — tap again to follow the new run.
   *
   * ```ts
   * for await (const frame of client.tapPipe('squares', 'sq')) console.log(frame.seq, frame.value);
   * ```
   */
  async *tapPipe(network: string, pipe: string): AsyncGenerator<PipeFrame> {
    const body = await this.withFailover('GET', (conn) => requestStream(conn, 'GET', `/networks/${encodeURIComponent(network)}/pipes/${encodeURIComponent(pipe)}/frames`));
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let pending = '';
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        const lines = (pending + decoder.decode(value, { stream: true })).split('\n');
        pending = lines.pop()!;
        for (const line of lines) {
          if (line === '') continue;
          const parsed = JSON.parse(line) as PipeFrame | { error: { code?: string; message?: string } };
          // The server's last line when the tapped run was replaced or removed.
          if ('error' in parsed) throw errorFromWire(parsed.error);
          const frame = parsed;
          const wire = frame.value as { $bytes?: unknown } | null;
          if (wire !== null && typeof wire === 'object' && typeof wire.$bytes === 'string') frame.value = base64ToBytes(wire.$bytes);
          yield frame;
        }
      }
    } finally {
      await reader.cancel().catch(() => {});
    }
  }

  /** Stops a network: its jobs are cancelled and none restarts; resolves to its status then. */
  stopNetwork(name: string): Promise<NetworkStatus> {
    return this.call('POST', `/networks/${encodeURIComponent(name)}/stop`);
  }

  /**
   * Removes a network that no longer runs: its saved record and its pipes' streams (its frames
   * are gone; its jobs stay, as ended jobs). Rejects with a `conflict` error while it runs.
   */
  removeNetwork(name: string): Promise<{ name: string; run: string; streams: number }> {
    return this.call('DELETE', `/networks/${encodeURIComponent(name)}`);
  }

  /** Submits a job and returns its info at once (status Queued or later). */
  submitBatchJob(description: JobDescription): Promise<JobInfo> {
    return this.call('POST', '/jobs', { json: description });
  }

  /**
   * Submits many jobs in one request (1 to 1000); returns their infos in the order given. All or
   * nothing: a wrong description is refused (its field starts `jobs.<index>`) and no job is
   * queued. Much cheaper than a request per job when submitting hundreds.
   */
  async submitBatchJobs(descriptions: JobDescription[]): Promise<JobInfo[]> {
    const { jobs } = await this.call<{ jobs: JobInfo[] }>('POST', '/jobs/batch', { json: { jobs: descriptions } });
    return jobs;
  }

  /**
   * Submits a job with `interactive: true` and attaches to it from the first byte of output.
   * The attachment carries the submitted job's `info`.
   */
  async submitInteractiveJob(description: JobDescription): Promise<InteractiveJob> {
    const info = await this.call<JobInfo>('POST', '/jobs', { json: { ...description, interactive: true } });
    const attachment = new InteractiveAttachment(this.attachContext(info.id, {}), info);
    await attachment.start();
    return attachment;
  }

  /** The job's info, with its description. */
  getJobStatus(id: string): Promise<JobInfo> {
    return this.call('GET', jobPath(id));
  }

  /**
   * The full id of the caller's one job whose id starts with `prefix`. A full id is taken as it
   * is; a shorter one is looked for in the caller's jobs, page by page.
   */
  async resolveJobId(prefix: string): Promise<string> {
    const wanted = prefix.trim().toLowerCase();
    if (FULL_JOB_ID.test(wanted)) return wanted;
    if (wanted === '') throw new BadRequestError('a job id (or the start of one) is needed', { field: 'id' });
    const found: string[] = [];
    let cursor: string | undefined;
    do {
      const page: Page<JobInfo> = await this.getJobs({ limit: 1000, ...(cursor !== undefined ? { cursor } : {}) });
      for (const job of page.items) if (job.id.startsWith(wanted)) found.push(job.id);
      cursor = page.next;
    } while (cursor !== undefined);
    if (found.length === 1) return found[0]!;
    if (found.length === 0) throw new NotFoundError(`no job whose id starts with ${JSON.stringify(prefix)}`);
    throw new AmbiguousIdError(prefix, found);
  }

  /** Infos of several jobs, fetched in parallel, in the order of `ids`. */
  getJobStatuses(ids: string[]): Promise<JobInfo[]> {
    return Promise.all(ids.map((id) => this.getJobStatus(id)));
  }

  /**
   * Waits until the job is final. With `timeoutMs` > 0, returns the current (not final) info
   * when the time runs out instead of throwing; 0 waits forever.
   */
  waitUntilDone(id: string, timeoutMs = 0): Promise<JobInfo> {
    return this.waitFor(id, 'done', timeoutMs);
  }

  /** Waits until the job is Running (or already final); `timeoutMs` as in {@link Client.waitUntilDone}. */
  waitUntilRunning(id: string, timeoutMs = 0): Promise<JobInfo> {
    return this.waitFor(id, 'running', timeoutMs);
  }

  private async waitFor(id: string, what: 'done' | 'running', timeoutMs: number): Promise<JobInfo> {
    if (!Number.isFinite(timeoutMs) || timeoutMs < 0) {
      throw new BadRequestError(`timeoutMs must be a number of ms >= 0 (0 = forever), got ${timeoutMs}`, { field: 'timeoutMs' });
    }
    const deadline = timeoutMs > 0 ? Date.now() + timeoutMs : Infinity;
    for (;;) {
      const left = deadline - Date.now();
      const timeout = Math.max(0, Math.min(MAX_WAIT_CALL, Math.ceil(left)));
      const info = await this.call<JobInfo>('GET', jobPath(id, '/wait'), { query: { for: what, timeout } });
      if (isFinal(info.status) || (what === 'running' && info.status !== 'Queued')) return info;
      if (Date.now() >= deadline) return info;
    }
  }

  /** Cancels a job: Queued ones at once, Running ones by signal. Returns the info after the request. */
  cancelJob(id: string): Promise<JobInfo> {
    return this.call('POST', jobPath(id, '/cancel'));
  }

  /** Deletes a final job and its stored output (`ConflictError` while it runs). */
  async deleteJob(id: string): Promise<void> {
    await this.call<undefined>('DELETE', jobPath(id));
  }

  /** One page of jobs, oldest first; pass `next` back as `cursor` for the next page. */
  getJobs(filter: JobFilter = {}): Promise<Page<JobInfo>> {
    const status = Array.isArray(filter.status) ? filter.status.join(',') : filter.status;
    return this.call('GET', '/jobs', {
      query: { group: filter.group, status: status || undefined, name: filter.name, limit: filter.limit, cursor: filter.cursor },
    });
  }

  /** Names of the queues jobs may be submitted to. */
  async getQueueNames(): Promise<string[]> {
    return (await this.getQueueStatus()).map((q) => q.name);
  }

  /** Status of every queue, or of the named one (`NotFoundError` when there is no such queue). */
  async getQueueStatus(name?: string): Promise<QueueStatus[]> {
    const { items } = await this.call<{ items: QueueStatus[] }>('GET', '/queues');
    if (name === undefined) return items;
    const found = items.filter((q) => q.name === name);
    if (found.length === 0) throw new NotFoundError(`no queue named ${JSON.stringify(name)} (queues: ${items.map((q) => q.name).join(', ')})`);
    return found;
  }

  /** Workers of distributed mode with their load, and the pools' queues (none in embedded mode). */
  getWorkers(): Promise<WorkersReport> {
    return this.call('GET', '/workers');
  }

  /** The server's named executors, their state and queues (`local` always). */
  async getExecutors(): Promise<ExecutorInfo[]> {
    const { items } = await this.call<{ items: ExecutorInfo[] }>('GET', '/executors');
    return items;
  }

  /** Groups of the job tree, all or those under `under`. */
  async getGroups(under?: string): Promise<GroupInfo[]> {
    return (await this.call<{ items: GroupInfo[] }>('GET', '/groups', { query: { under } })).items;
  }

  /**
   * Reads bytes `[from, to)` of one output stream. `size` is the stream's current length and
   * `complete` tells whether it can still grow.
   */
  async readOutput(id: string, stream: 'stdout' | 'stderr' = 'stdout', from?: number, to?: number): Promise<{ data: Uint8Array; size: number; complete: boolean }> {
    const { data, headers } = await this.withFailover('GET', (conn) => requestBytes(conn, 'GET', jobPath(id, '/output'), { query: { stream, from, to } }));
    const size = Number(headers.get('x-jobwire-size'));
    return { data, size: Number.isFinite(size) ? size : data.byteLength + (from ?? 0), complete: headers.get('x-jobwire-complete') === 'true' };
  }

  /**
   * Uploads a file (strings as UTF-8) for a description's `inputFiles`: the server places it in
   * the job's working directory before the job starts. Returns the upload's id and size.
   */
  upload(data: Uint8Array | string): Promise<{ id: string; size: number }> {
    return this.call('POST', '/uploads', { bytes: toBytes(data) });
  }

  /** The output files a job kept (its description's `outputFiles`), by name. */
  async getOutputFiles(id: string): Promise<{ name: string; size: number }[]> {
    return (await this.call<{ items: { name: string; size: number }[] }>('GET', jobPath(id, '/files'))).items;
  }

  /** One output file a job kept; NotFoundError when it kept none of that name. */
  async readOutputFile(id: string, name: string): Promise<Uint8Array> {
    return (await this.withFailover('GET', (conn) => requestBytes(conn, 'GET', jobPath(id, '/files/content'), { query: { name } }))).data;
  }

  /**
   * Appends to an interactive job's stdin over HTTP (strings as UTF-8). With `offset`, bytes the
   * server already has are skipped, so a retry never doubles input. Returns the accepted stdin size.
   */
  async writeStdin(id: string, data: Uint8Array | string, offset?: number): Promise<number> {
    const res = await this.call<{ offset: number }>('POST', jobPath(id, '/stdin'), { bytes: toBytes(data), query: { offset } });
    return res.offset;
  }

  /** Closes an interactive job's stdin (EOF). Returns the final stdin size. */
  async closeStdin(id: string): Promise<number> {
    return (await this.call<{ offset: number }>('POST', jobPath(id, '/stdin/close'))).offset;
  }

  /** Sets the job's progress message. */
  setProgress(id: string, message: string): Promise<JobInfo> {
    return this.call('POST', jobPath(id, '/progress'), { json: { message } });
  }

  /**
   * Attaches to a job: replays its output from `from` (default 0), then follows it live until
   * the exit status. Resolves once the server greeted the connection.
   */
  async attach(id: string, options: AttachOptions = {}): Promise<Attachment> {
    const attachment = new JobAttachment(this.attachContext(id, options));
    await attachment.start();
    return attachment;
  }

  /**
   * Subscribes to the events of `group`'s subtree (everything when omitted): a snapshot (or,
   * with `since`, the events after that id), `ready`, then live events.
   */
  events(group?: string, options: EventsOptions = {}): EventStream {
    if (options.since !== undefined && (!Number.isInteger(options.since) || options.since < 0)) {
      throw new BadRequestError(`since must be an event id (integer >= 0), got ${options.since}`, { field: 'since' });
    }
    if (options.waitForServer !== undefined && typeof options.waitForServer !== 'boolean') {
      throw new BadRequestError('waitForServer must be a boolean', { field: 'waitForServer' });
    }
    return new GroupEventStream({ connection: this.reconnecting(), group, since: options.since, waitForServer: options.waitForServer ?? false });
  }

  private attachContext(id: string, options: AttachOptions): AttachContext {
    const from = options.from ?? 0;
    if (!Number.isInteger(from) || from < 0) throw new BadRequestError(`from must be a byte position (integer >= 0), got ${from}`, { field: 'from' });
    return {
      jobId: id,
      connection: this.reconnecting(),
      from,
      reconnect: this.options.reconnect,
      reconnectTimeout: this.options.reconnectTimeout,
      signal: options.signal,
    };
  }
}
