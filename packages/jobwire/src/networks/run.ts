/**
 * Running a network on a server: each job is submitted as an ordinary job in the group
 * `networks:NAME`, and the server wires it to its pipes.
 * - An **executable**'s input frames are written to its stdin (in the pipe's framing), and its
 *   stdout is cut into frames of its output pipe. One that names pipes as `{in.NAME}`/
 *   `{out.NAME}` runs inside `fifo-host.ts`, which gives it named pipes and carries them over its
 *   stdin/stdout multiplexed (`mux.ts`).
 * - A **js** or **builtin** job is a function job running the harness `js-host.ts`: sets of input
 *   frames go to its stdin as lines (JSON, or for one input the payloads in their pipe's own
 *   encoding), and its output frames come back as lines on its stdout (protocol in `js-host.ts`,
 *   shared types in `js-wire.ts`).
 *
 * Each job is supervised (`#supervise`): a job that fails restarts as its policy says (a new
 * job; its outputs go on in a new epoch), and one that may not restart ends the network — its
 * other jobs are cancelled. A job lost with its worker is *moved* (placed again, no restart): a
 * js or builtin job with inputs resumes exactly (`resumesExactly`), the others as after a
 * restart. The wiring server saves the network's state in the store (`record.ts`); a server
 * that finds it stale takes the network over (`NetworkRunner.#adoptOrphans`). A `logging` job is
 * told the others' processes (`logging-feed.ts`). A network that fails its checks is refused
 * before anything starts; a start that fails half-way cancels the jobs it had submitted.
 * @module
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { StringDecoder } from 'node:string_decoder';
import { fileURLToPath } from 'node:url';
import { BadRequestError, ConflictError, JobwireError, NotFoundError, isFinal, type JobDescription, type JobStatus, type NetworkGraph, type NetworkJobStatus, type NetworkStatus, type OutputChunk } from '@jobwire/client';
import { OutputFollower } from '../jobs/output-follower.js';
import type { JobService } from '../jobs/service.js';
import type { JobRecord, Store, StreamEvent } from '../store/types.js';
import { PIPE_PLACEHOLDER, checkNetwork } from './checks.js';
import { parseNetworkSpec } from './file.js';
import type { FifoHostConfig } from './fifo-host.js';
import { alignBySeq, type AlignedSet, type FrameSource } from './align.js';
import { FrameFlag, hasFlag, type Frame } from './frame.js';
import { Deframer, encodeForConsumer, payloadToValue, valueToPayload, zeroPayload } from './framing.js';
import { COMPACT, FRAME_PREFIX, SetFlag, fromWire, toWire, type HostConfig, type HostPipe } from './js-wire.js';
import type { Network, NetworkJob, NetworkPipe } from './model.js';
import { Demux, muxData, muxRecord } from './mux.js';
import { OUTPUT_WINDOW_BYTES, OutputWindow } from './output-window.js';
import { PipeReader, PipeWriter, cursorStreamId, pipeStreamId } from './pipe.js';
import { feedLogging } from './logging-feed.js';
import { networkGraph } from './shape.js';
import { SAVE_EVERY_MS, STALE_AFTER_MS, claimStreamId, claimWiring, isOrphaned, listSavedNetworks, loadNetworkStatus, removeNetworkStatus, saveNetworkStatus, savedStatusNow, type SavedNetwork } from './record.js';

const FIFO_HOST = fileURLToPath(new URL('./fifo-host.js', import.meta.url));
const JS_HOST = fileURLToPath(new URL('./js-host.js', import.meta.url));

/** Most stdin bytes written to a job and not yet read by it. */
const STDIN_WINDOW = 256 * 1024;

/** Most frames the feed of a job's stdin passes on in one write. */
const FEED_BATCH = 1024;

/**
 * Most times one network job is placed again after its worker died (a job that keeps taking its
 * workers down is not moved on for ever); past it, its restart policy decides as for a failure.
 */
export const MAX_MOVES = 10;

/** How often a server looks for running networks whose wiring server stopped. */
const TAKEOVER_SCAN_MS = 3000;

/**
 * How often an open tap reads its network's saved record, to learn that another server started
 * a new run (or removed the network) under it; on this server it learns at once.
 */
const TAP_RECHECK_MS = 1000;

/** How a tap of run `old` ends when run `current` of network `name` replaces it. */
const tapReplaced = (name: string, current: string, old: string): ConflictError =>
  new ConflictError(`network ${name} was started again: run ${current} replaced run ${old}, whose pipes are removed; tap again to follow the new run`);
/** How a tap ends when its network is removed. */
const tapRemoved = (name: string): NotFoundError => new NotFoundError(`network ${name} was removed, with its pipes`);

/** The networks a server runs, by owner and name. */
export class NetworkRunner {
  readonly #runs = new Map<string, NetworkRun>();
  /** Networks whose start (or takeover) is under way (by owner and name), so that two starts of one do not race. */
  readonly #starting = new Set<string>();
  /** Open taps by owner and name: each is told when its run is replaced or removed (see {@link tap}). */
  readonly #taps = new Map<string, Set<{ run: string; end: (why: JobwireError) => void }>>();
  /** This server's id in the claims of takeovers. */
  readonly #id = randomBytes(8).toString('hex');
  readonly #scanner: NodeJS.Timeout;
  #scanning = false;
  #closed = false;

  constructor(
    private readonly service: JobService,
    private readonly store: Store,
  ) {
    this.#scanner = setInterval(() => void this.#adoptOrphans(), TAKEOVER_SCAN_MS);
    this.#scanner.unref();
  }

  /**
   * Takes over the running networks whose wiring server stopped (their saved status went stale,
   * `record.ts`): one server wins each takeover (`claimWiring`), restores the run and wires it
   * again ({@link NetworkRun.takeOver}). A takeover that fails saves the network as failed.
   */
  async #adoptOrphans(): Promise<void> {
    if (this.#scanning || this.#closed) return;
    this.#scanning = true;
    try {
      for (const { owner, name } of await listSavedNetworks(this.store)) {
        if (this.#closed) return;
        const key = `${owner}\n${name}`;
        if (this.#starting.has(key)) continue;
        const saved = await loadNetworkStatus(this.store, owner, name);
        if (saved === undefined || !isOrphaned(saved)) continue;
        const wiring = saved.wiring!;
        if (!(await claimWiring(this.store, name, saved.status.run, wiring.claims, this.#id))) continue;
        this.#starting.add(key);
        try {
          const loaded = parseNetworkSpec(wiring.spec, wiring.baseDir);
          await checkNetwork(loaded, { importModules: false });
          const run = new NetworkRun(this.service, this.store, owner, loaded.network, { spec: wiring.spec, baseDir: wiring.baseDir }, { run: saved.status.run, claims: wiring.claims + 1 });
          this.#runs.get(key)?.close();
          await run.takeOver(saved);
          this.#runs.set(key, run);
        } catch (error) {
          const message = `taking the network over from the server that stopped failed: ${error instanceof Error ? error.message : String(error)}`;
          await saveNetworkStatus(this.store, owner, { ...saved.status, state: 'failed', errors: [...saved.status.errors, message] }, this.#id, wiring).catch(() => {});
        } finally {
          this.#starting.delete(key);
        }
      }
    } catch {
      // The next scan tries again.
    } finally {
      this.#scanning = false;
    }
  }

  /**
   * Checks and starts a network for `owner`; relative paths in `spec` resolve against `baseDir`.
   * Refused (nothing started) when it fails its checks, has jobs that are not executables, or a
   * network of that name is still running.
   */
  async start(owner: string, spec: unknown, baseDir: string): Promise<NetworkStatus> {
    if (typeof baseDir !== 'string' || !baseDir.startsWith('/')) throw new BadRequestError('baseDir: an absolute path', { field: 'baseDir' });
    const loaded = parseNetworkSpec(spec, baseDir);
    // No module is imported here: the import would run the user's code as the server's own
    // account (root, on a server that runs jobs as their users' accounts). The CLI imports them
    // as the user before it asks; js jobs do not run yet anyway.
    await checkNetwork(loaded, { importModules: false });
    const { network } = loaded;
    const key = `${owner}\n${network.name}`;
    const busy = (): ConflictError => new ConflictError(`network ${network.name} is running; wait for its end, or cancel its jobs (group networks:${network.name})`);
    if (this.#starting.has(key)) throw busy();
    this.#starting.add(key);
    try {
      const previous = this.#runs.get(key);
      if (previous !== undefined && (await previous.status()).state === 'running') throw busy();
      // Started on another server (or on this one before it restarted), and still wired there.
      const saved = await loadNetworkStatus(this.store, owner, network.name);
      if (saved !== undefined && saved.status.run !== previous?.run && saved.status.state === 'running' && Date.now() - saved.savedAt <= STALE_AFTER_MS) throw busy();
      const run = new NetworkRun(this.service, this.store, owner, network, { spec, baseDir });
      await run.start();
      this.#runs.set(key, run);
      // The run it replaces had ended (a running one refuses the start, above): its record is
      // replaced, and nothing names its streams any more.
      this.#endTaps(key, run.run, (old) => tapReplaced(network.name, run.run, old));
      if (saved?.wiring !== undefined && saved.status.state !== 'running' && saved.status.run !== run.run) {
        await removeRunStreams(this.store, parseNetworkSpec(saved.wiring.spec, saved.wiring.baseDir).network, saved.status.run).catch(() => {});
      }
      return await run.status();
    } finally {
      this.#starting.delete(key);
    }
  }

  /**
   * The status of `owner`'s network `name`: of its newest run on this server, else as the server
   * that wires it saved it in the store (`record.ts`).
   */
  async status(owner: string, name: string): Promise<NetworkStatus> {
    const run = this.#runs.get(`${owner}\n${name}`);
    const here = await run?.status();
    if (here?.state === 'running') return here;
    // A newer run may have been started on another server.
    const saved = await loadNetworkStatus(this.store, owner, name);
    if (saved !== undefined && saved.status.run !== here?.run) return savedStatusNow(this.store, owner, saved);
    // An ended run's record is saved as it ends: one with none was removed (by another server).
    if (here !== undefined && saved !== undefined) return here;
    throw new NotFoundError(`no network ${JSON.stringify(name)}`);
  }

  /**
   * The newest run of each of `owner`'s networks, by name: those this server runs and those
   * saved in the store by any server (in distributed mode, every server's), each as
   * {@link NetworkRunner.status} answers it. A network removed meanwhile is left out.
   */
  async list(owner: string): Promise<NetworkStatus[]> {
    const prefix = `${owner}\n`;
    const names = new Set([...this.#runs.keys()].filter((key) => key.startsWith(prefix)).map((key) => key.slice(prefix.length)));
    for (const saved of await listSavedNetworks(this.store)) if (saved.owner === owner) names.add(saved.name);
    const statuses = await Promise.all(
      [...names].map(async (name) => {
        try {
          return [await this.status(owner, name)];
        } catch (err) {
          if (err instanceof NotFoundError) return [];
          throw err;
        }
      }),
    );
    return statuses.flat().sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /**
   * The shape of the newest run of `owner`'s network `name`: jobs, pipes, who reads and writes
   * each. Any server answers (a network this server does not wire is found by its saved record).
   */
  async graph(owner: string, name: string): Promise<NetworkGraph> {
    const { run, saved } = await this.#newest(owner, name);
    return run !== undefined ? run.graph() : networkGraph(saved.network, saved.run);
  }

  /**
   * A tap on pipe `pipe` of the newest run of `owner`'s network `name`: its frames as JSON lines
   * (see {@link tapPipe}). Any server answers: the pipe is read from the store, and a network
   * this server does not wire is found by its saved record (`record.ts`). Rejects with
   * NotFoundError for a network or pipe there is none of.
   *
   * A tap follows one run. When a new run of the network replaces it (its pipes are removed), or
   * the network is removed, the tap ends with a last line `{"error": {code, message}}` saying so
   * (`conflict`, `not_found`) rather than wait on pipes that are gone: frames of two runs, each
   * numbered from the start, would read as one confused stream, so following the new run is a new tap.
   *
   * When the run ends with the pipe not ended — the network was stopped, or failed — no frame
   * will come: the tap sends every frame stored, then a last line `{"error": {code: "conflict",
   * message}}` saying that the network was stopped (or failed) before the pipe ended. An error,
   * not a plain end, so that a reader can tell a cut pipe from a complete one.
   */
  async tap(owner: string, name: string, pipe: string): Promise<AsyncGenerator<string>> {
    const { run, saved } = await this.#newest(owner, name);
    const runId = run?.run ?? saved!.run;
    const stop = new AbortController();
    const noMore = new AbortController();
    const frames = run !== undefined ? run.tap(pipe, stop.signal, noMore.signal) : tapPipe(this.store, saved!.network, saved!.run, pipe, stop.signal, noMore.signal);
    return this.#untilEnded(owner, name, pipe, runId, frames, stop, noMore);
  }

  /** Tells the taps of `key` that do not follow `current` why they end, and ends them. */
  #endTaps(key: string, current: string | undefined, why: (old: string) => JobwireError): void {
    for (const tap of this.#taps.get(key) ?? []) if (tap.run !== current) tap.end(why(tap.run));
  }

  /**
   * `frames` until they end; or until run `runId` is replaced or removed, or ends with `pipe`
   * not ended (after its stored frames, then): then a last error line.
   */
  async *#untilEnded(owner: string, name: string, pipe: string, runId: string, frames: AsyncGenerator<string, boolean>, stop: AbortController, noMore: AbortController): AsyncGenerator<string> {
    const key = `${owner}\n${name}`;
    let why: JobwireError | undefined;
    let cut: JobwireError | undefined;
    const end = (error: JobwireError): void => {
      why ??= error;
      stop.abort();
    };
    /** The run ended without ending the pipe: nothing more will come after what is stored. */
    const ended = (state: NetworkStatus['state']): void => {
      cut ??= new ConflictError(`network ${name} ${state === 'stopped' ? 'was stopped' : state === 'failed' ? 'failed' : 'ended'} before pipe ${pipe} ended: every frame it holds was sent, no more will come`);
      noMore.abort();
    };
    const taps = this.#taps.get(key) ?? new Set();
    this.#taps.set(key, taps);
    const tap = { run: runId, end };
    taps.add(tap);
    const check = async (): Promise<void> => {
      const local = this.#runs.get(key);
      if (local?.run === runId) {
        const ending = await local.ending();
        if (ending === undefined) return;
        if (ending.unended.includes(pipe)) ended(ending.state);
      }
      const saved = await loadNetworkStatus(this.store, owner, name);
      if (saved === undefined) end(tapRemoved(name));
      else if (saved.status.run !== runId) end(tapReplaced(name, saved.status.run, runId));
      // Wired by another server: its saved record tells how the run ended, and which pipes did.
      else if (local?.run !== runId && saved.status.state !== 'running' && !(saved.wiring?.ended ?? []).includes(pipe)) ended(saved.status.state);
    };
    const recheck = setInterval(() => void check().catch(() => {}), TAP_RECHECK_MS);
    recheck.unref();
    // A tap on a run that has ended already drains at once.
    void check().catch(() => {});
    try {
      let next = await frames.next();
      while (next.done !== true && why === undefined) {
        yield next.value;
        next = await frames.next();
      }
      if (why !== undefined) yield `${JSON.stringify({ error: why.toJSON() })}\n`;
      else if (next.value !== true && cut !== undefined) yield `${JSON.stringify({ error: cut.toJSON() })}\n`;
    } finally {
      clearInterval(recheck);
      taps.delete(tap);
      if (taps.size === 0 && this.#taps.get(key) === taps) this.#taps.delete(key);
      stop.abort();
      await frames.return(false).catch(() => {});
    }
  }

  /**
   * The newest run of `owner`'s network `name`: this server's, unless a newer one was started on
   * another server (as for the status), else the saved record's network and run id. NotFoundError
   * when there is neither.
   */
  async #newest(owner: string, name: string): Promise<{ run: NetworkRun; saved?: undefined } | { run?: undefined; saved: { network: Network; run: string } }> {
    const run = this.#runs.get(`${owner}\n${name}`);
    const saved = await loadNetworkStatus(this.store, owner, name);
    if (run !== undefined && (saved?.status.run === run.run || (await run.status()).state === 'running')) return { run };
    if (saved?.wiring === undefined) throw new NotFoundError(`no network ${JSON.stringify(name)}`);
    return { saved: { network: parseNetworkSpec(saved.wiring.spec, saved.wiring.baseDir).network, run: saved.status.run } };
  }

  /**
   * Removes `owner`'s network `name` once it no longer runs (done, failed or stopped): its saved
   * record, and the streams of its newest run — its pipes, its consumers' cursors and its
   * takeover claims — so that its frames are gone. Its jobs stay, as any ended jobs (`jobwire delete`
   * removes them). Refused with ConflictError while it runs, or while it is being stopped or
   * started; NotFoundError when there is no such network. Resolves to what was removed.
   */
  async remove(owner: string, name: string): Promise<{ name: string; run: string; streams: number }> {
    const key = `${owner}\n${name}`;
    if (this.#starting.has(key)) throw new ConflictError(`network ${name} is being started or taken over: remove it once it has ended`);
    this.#starting.add(key);
    try {
      const run = this.#runs.get(key);
      const here = await run?.status();
      const saved = await loadNetworkStatus(this.store, owner, name);
      if (here?.state === 'running' || saved?.status.state === 'running') {
        throw new ConflictError(`network ${name} is running: stop it (jobwire network stop ${name}) and wait for its end before removing it`);
      }
      // An ended run's record is saved as it ends: none, and the network was removed already (or never was).
      if (saved === undefined) {
        this.#runs.delete(key);
        throw new NotFoundError(`no network ${JSON.stringify(name)}`);
      }
      // The runs to remove: the saved one, and this server's when it is another (an older one).
      const runs = new Map<string, Network>();
      if (run !== undefined) runs.set(run.run, run.shape);
      if (saved.wiring !== undefined && !runs.has(saved.status.run)) runs.set(saved.status.run, parseNetworkSpec(saved.wiring.spec, saved.wiring.baseDir).network);
      // The last save of an ended run must not bring its record back after the removal.
      await run?.settled();
      this.#endTaps(key, undefined, () => tapRemoved(name));
      let streams = 0;
      for (const [id, network] of runs) streams += await removeRunStreams(this.store, network, id);
      await removeNetworkStatus(this.store, owner, name);
      run?.close();
      this.#runs.delete(key);
      return { name, run: saved.status.run, streams };
    } finally {
      this.#starting.delete(key);
    }
  }

  /** Stops `owner`'s network `name`: its jobs are cancelled, none restarts. */
  async stop(owner: string, name: string): Promise<NetworkStatus> {
    const run = this.#runs.get(`${owner}\n${name}`);
    if (run === undefined) {
      const saved = await loadNetworkStatus(this.store, owner, name);
      if (saved?.status.state === 'running') throw new ConflictError(`network ${name} is wired by another server (${saved.server}): stop it there`);
      throw new NotFoundError(`no network ${JSON.stringify(name)}`);
    }
    return run.stop();
  }

  /**
   * Stops wiring every network (their jobs go on as jobs do when a server stops; once their saved
   * status is stale, another server, or this one started again, takes them over).
   */
  close(): void {
    this.#closed = true;
    clearInterval(this.#scanner);
    for (const run of this.#runs.values()) run.close();
  }
}

/** One run of a network. */
class NetworkRun {
  readonly run: string;
  /** Takeovers of this run's wiring so far (see `claimWiring`). */
  readonly #claims: number;
  readonly group: string;
  /** The current job of each network job (a restart submits a new one). */
  readonly #ids = new Map<string, string>();
  /** The current writer of each pipe (a restarted producer opens a new one, in a new epoch). */
  readonly #writers = new Map<string, PipeWriter>();
  /** Frames written and dropped by a pipe's earlier writers. */
  readonly #earlier = new Map<string, { written: number; dropped: number }>();
  /** Pipes that have ended. */
  readonly #ended = new Set<string>();
  /** The current reader of each pipe by each consumer (`PIPE\nJOB`); its drops include earlier ones (they live in its cursor). */
  readonly #readers = new Map<string, { pipe: string; reader: PipeReader }>();
  /** Per job: restarts, frames taken from its inputs, frames stored to its outputs. */
  readonly #counts = new Map<string, { restarts: number; moves: number; framesIn: number; framesOut: number }>();
  /** How each job's supervision ended; a job missing here is still supervised. */
  readonly #outcomes = new Map<string, 'done' | 'failed' | 'stopped'>();
  readonly #errors: string[] = [];
  readonly #stops: Array<() => void> = [];
  #stopping = false;
  #closed = false;
  /** Saves the status in the store while the network runs, for the other servers (`record.ts`). */
  #saver: NodeJS.Timeout | undefined;
  #saving: Promise<void> | undefined;
  #written: Promise<void> = Promise.resolve();
  readonly #server = `${process.pid}@${hostname()}`;
  /** Resolved once the network is being ended (failed or stopped): no drain is waited for then. */
  #endNow!: () => void;
  readonly #over = new Promise<void>((resolve) => (this.#endNow = resolve));

  constructor(
    private readonly service: JobService,
    private readonly store: Store,
    private readonly owner: string,
    private readonly network: Network,
    /** The network as asked for, saved for a server that takes it over. */
    private readonly source: { spec: unknown; baseDir: string },
    restored?: { run: string; claims: number },
  ) {
    this.group = `networks:${network.name}`;
    this.run = restored?.run ?? randomBytes(4).toString('hex');
    this.#claims = restored?.claims ?? 0;
  }

  /** The network this run runs. */
  get shape(): Network {
    return this.network;
  }

  /** Resolves once the saves of the status asked for so far are written (or have failed). */
  async settled(): Promise<void> {
    await this.#saving;
    await this.#written;
  }

  /** The `network` part of this run's pipe stream ids. */
  get streamNetwork(): string {
    return `${this.network.name}.${this.run}`;
  }

  async start(): Promise<void> {
    try {
      for (const pipe of Object.values(this.network.pipes)) {
        this.#writers.set(pipe.name, await PipeWriter.open({ streams: this.store.streams, network: this.streamNetwork, pipe: pipe.name, queue: pipe.queue, consumers: pipe.consumers }));
      }
      // Every description is checked before any job is queued: a wrong one (its field names the
      // job, `jobs.NAME.…`) refuses the start with no job left behind.
      const jobs = Object.values(this.network.jobs);
      const records = await this.service.submitAll(
        this.owner,
        jobs.map((job) => [`jobs.${job.name}`, this.description(job)] as const),
      );
      for (const [index, job] of jobs.entries()) {
        this.#ids.set(job.name, records[index]!.id);
        this.#counts.set(job.name, { restarts: 0, moves: 0, framesIn: 0, framesOut: 0 });
      }
    } catch (error) {
      await this.#cancelAll();
      this.close();
      throw error;
    }
    this.#launch(Object.values(this.network.jobs));
    // Saved before the start is answered, so every server knows the network from then on.
    await this.#saving;
  }

  /**
   * Takes over this run from the server that wired it and stopped, as it saved it: the pipes are
   * opened again (a producer that writes again does so in a new epoch: its consumers see a
   * *reset*), pipe ends that server did not get to store are stored, and each job whose
   * supervision had not ended — running unwired, or ended unseen — is cancelled and started
   * again (a move): its inputs resume from its committed cursors.
   */
  async takeOver(saved: SavedNetwork): Promise<void> {
    const wiring = saved.wiring!;
    for (const [name, outcome] of Object.entries(wiring.outcomes)) this.#outcomes.set(name, outcome);
    this.#errors.push(...saved.status.errors);
    this.#stopping = wiring.stopping;
    for (const job of saved.status.jobs) {
      this.#ids.set(job.name, job.id);
      this.#counts.set(job.name, { restarts: job.restarts, moves: job.moves ?? 0, framesIn: job.framesIn, framesOut: job.framesOut });
    }
    for (const pipe of saved.status.pipes) this.#earlier.set(pipe.name, { written: pipe.frames, dropped: 0 });
    for (const name of wiring.ended) this.#ended.add(name);
    for (const pipe of Object.values(this.network.pipes)) {
      if (this.#ended.has(pipe.name)) continue;
      try {
        this.#writers.set(pipe.name, await PipeWriter.open({ streams: this.store.streams, network: this.streamNetwork, pipe: pipe.name, queue: pipe.queue, consumers: pipe.consumers }));
      } catch (error) {
        // Ended before the save said so.
        if (!(error instanceof ConflictError)) throw error;
        this.#ended.add(pipe.name);
      }
    }
    const jobs = Object.values(this.network.jobs);
    for (const job of jobs) if (this.#outcomes.get(job.name) === 'done') for (const name of job.outputs) await this.#end(name);
    const unfinished = jobs.filter((job) => !this.#outcomes.has(job.name));
    await Promise.all(
      unfinished.map(async (job) => {
        const old = this.#ids.get(job.name)!;
        await this.service.cancel(this.owner, old).catch(() => {});
        // A job deleted meanwhile has nothing left to wait for.
        if ((await this.store.getJob(old).catch(() => undefined)) !== undefined) await this.#final(old);
      }),
    );
    if (this.#stopping) {
      for (const job of unfinished) this.#outcomes.set(job.name, 'stopped');
      this.#launch([]);
      return;
    }
    for (const job of unfinished) {
      this.#counts.get(job.name)!.moves++;
      const next = await this.service.submit(this.owner, this.description(job));
      this.#ids.set(job.name, next.id);
    }
    this.#launch(unfinished);
    await this.#saving;
  }

  /** Starts saving the status, and supervising `jobs`. */
  #launch(jobs: NetworkJob[]): void {
    this.#saver = setInterval(() => this.#save(), SAVE_EVERY_MS);
    this.#saver.unref();
    this.#save();
    for (const job of jobs) {
      void this.#supervise(job).catch((error: unknown) => {
        this.#errors.push(`${job.name}: ${error instanceof Error ? error.message : String(error)}`);
        this.#outcomes.set(job.name, 'failed');
        void this.#cancelAll();
      });
    }
  }

  /** The shape of this run (see `shape.ts`). */
  graph(): NetworkGraph {
    return networkGraph(this.network, this.run);
  }

  /**
   * Every frame of `pipe` from the first, live until the pipe ends, each as one JSON line
   * (`{seq, index, epoch, reset, value}`, bytes as `{"$bytes": base64}`). A tap keeps no cursor
   * and bounds nothing. Throws NotFoundError for a pipe the network does not have.
   */
  tap(pipe: string, signal?: AbortSignal, noMore?: AbortSignal): AsyncGenerator<string, boolean> {
    return tapPipe(this.store, this.network, this.run, pipe, signal, noMore);
  }

  /**
   * Once this run has ended (undefined while it runs): how, and the pipes that did not end — a
   * stop or a failure leaves its pipes as they are — after every frame written to them is stored.
   */
  async ending(): Promise<{ state: NetworkStatus['state']; unended: string[] } | undefined> {
    const { state } = await this.status();
    if (state === 'running') return undefined;
    for (const writer of this.#writers.values()) await writer.flush().catch(() => {});
    // Its saved record says it ended too (a caller then reads it, as other servers do).
    await this.settled();
    return { state, unended: Object.keys(this.network.pipes).filter((name) => !this.#ended.has(name)) };
  }

  /**
   * Stops the network: its jobs are cancelled and nothing restarts them. Their pipes are left
   * as they are (not ended), so what they hold can still be read; taps on them end once they
   * have read it (see {@link NetworkRunner.tap}).
   */
  async stop(): Promise<NetworkStatus> {
    this.#stopping = true;
    await this.#cancelAll();
    return this.status();
  }

  /**
   * Wires one network job and follows it to its end, restarting it as its policy says: a
   * restarted job is a new job of the group, its inputs resume from its last committed cursors
   * and its outputs go on in a new epoch (their consumers see *reset*). A job that ends badly
   * and may not restart ends the network: the others are cancelled.
   */
  async #supervise(job: NetworkJob): Promise<void> {
    const js = job.kind !== 'executable';
    for (;;) {
      const id = this.#ids.get(job.name)!;
      // What to close once this job has ended: its input readers and its stdin feed.
      const attempt: Array<() => Promise<void> | void> = [];
      // A js job tells on its stdout how many sets it has handled; its feed commits them.
      const handled: { upTo?: (sets: number) => Promise<void> } = {};
      if (job.inputs.length > 0) this.#guard(job, id, js ? this.#feedSets(job, id, attempt, handled) : this.#feed(job, id, attempt));
      if (job.builtin === 'logging') {
        const others = (): string[] => [...this.#ids.keys()].filter((name) => name !== job.name);
        const jobs = () => others().map((name): [string, string] => [name, this.#ids.get(name)!]);
        const over = (): boolean => others().every((name) => this.#outcomes.has(name));
        this.#guard(job, id, feedLogging({ store: this.store, service: this.service, owner: this.owner, id, jobs, over, onEnd: (stop) => attempt.push(stop) }));
      }
      const drains = js ? job.inputs.length + job.outputs.length > 0 : job.outputs.length > 0;
      const drained = drains ? this.#guarded(job, id, js ? this.#drainFrames(job, id, handled) : this.#drain(job, id)) : Promise.resolve();
      const record = await this.#final(id);
      // Its output closes when it ends: every frame it wrote is stored before it is judged —
      // unless the network is ending, when a blocked pipe may never have room again.
      await Promise.race([drained, this.#over]);
      for (const close of attempt.splice(0)) await close();
      if (this.#closed) return;
      if (this.#stopping) return void this.#outcomes.set(job.name, 'stopped');
      const counts = this.#counts.get(job.name)!;
      // Its worker died (distributed mode): not the job's failure, so no restart — the job is
      // placed again by the same rules and resumes (see `resumesExactly`).
      if (record.status === 'Lost' && counts.moves < MAX_MOVES) {
        counts.moves++;
        if (!resumesExactly(job)) for (const name of job.outputs) await this.#reopen(name);
        const next = await this.service.submit(this.owner, this.description(job));
        this.#ids.set(job.name, next.id);
        continue;
      }
      const { policy, max } = job.restart;
      const failed = record.status === 'Failed' || record.status === 'Lost';
      const restart = counts.restarts < max && ((policy === 'on-failure' && failed) || (policy === 'always' && record.status !== 'Cancelled'));
      if (restart) {
        counts.restarts++;
        for (const name of job.outputs) await this.#reopen(name);
        const next = await this.service.submit(this.owner, this.description(job));
        this.#ids.set(job.name, next.id);
        continue;
      }
      if (record.status === 'Success') {
        for (const name of job.outputs) await this.#end(name);
        return void this.#outcomes.set(job.name, 'done');
      }
      this.#outcomes.set(job.name, 'failed');
      await this.#cancelAll();
      return;
    }
  }

  /** The job record once it is final. */
  #final(id: string): Promise<JobRecord> {
    return new Promise((resolve) => {
      let settled = false;
      const check = async (): Promise<void> => {
        const record = await this.store.getJob(id).catch(() => undefined);
        if (settled || record === undefined || !isFinal(record.status)) return;
        settled = true;
        stop();
        resolve(record);
      };
      const stop = this.store.onEvent((event) => {
        const info = event.info as { id?: string; type?: string; status?: JobStatus };
        if (info.type === 'job' && info.id === id && info.status !== undefined && isFinal(info.status)) void check();
      });
      this.#stops.push(stop);
      void check();
    });
  }

  /** Opens a pipe again for a restarted producer: a new epoch, its first frame flagged *reset*. */
  async #reopen(name: string): Promise<void> {
    if (this.#ended.has(name)) return;
    const pipe = this.network.pipes[name]!;
    const old = this.#writers.get(name)!;
    await old.flush().catch(() => {});
    old.close();
    const earlier = this.#earlier.get(name) ?? { written: 0, dropped: 0 };
    this.#earlier.set(name, { written: earlier.written + old.stats.written, dropped: earlier.dropped + old.stats.dropped });
    this.#writers.set(name, await PipeWriter.open({ streams: this.store.streams, network: this.streamNetwork, pipe: name, queue: pipe.queue, consumers: pipe.consumers }));
  }

  /** Ends a pipe after its last frame (once). */
  async #end(name: string): Promise<void> {
    if (this.#ended.has(name)) return;
    this.#ended.add(name);
    await this.#writers.get(name)!.end();
  }

  async status(): Promise<NetworkStatus> {
    const jobs: NetworkJobStatus[] = [];
    for (const [name, id] of this.#ids) {
      const record = await this.store.getJob(id, this.owner);
      const counts = this.#counts.get(name)!;
      jobs.push({ name, id, status: record?.status ?? 'Lost', exitCode: record?.exitCode ?? null, node: record?.node ?? null, ...counts });
    }
    const readers = [...this.#readers.values()];
    const pipes = Object.values(this.network.pipes).map((pipe) => {
      const writer = this.#writers.get(pipe.name);
      const earlier = this.#earlier.get(pipe.name) ?? { written: 0, dropped: 0 };
      const dropped = earlier.dropped + (writer?.stats.dropped ?? 0) + readers.filter((r) => r.pipe === pipe.name).reduce((n, r) => n + r.reader.stats.dropped, 0);
      return { name: pipe.name, frames: earlier.written + (writer?.stats.written ?? 0), dropped, lag: writer?.stats.lag ?? 0 };
    });
    const outcomes = [...this.#outcomes.values()];
    const final = outcomes.length === Object.keys(this.network.jobs).length;
    const state = !final ? 'running' : this.#stopping ? 'stopped' : outcomes.every((o) => o === 'done') && this.#errors.length === 0 ? 'done' : 'failed';
    const status: NetworkStatus = { name: this.network.name, run: this.run, state, group: this.group, jobs, pipes, errors: [...this.#errors] };
    // Nothing moves any more: stop following the pipes (the figures above are the last), and
    // save them for the other servers.
    if (final && !this.#closed) {
      this.close();
      void this.#persist(status);
    }
    return status;
  }

  /** Saves the status for the other servers, unless a save is under way (the timer calls again). */
  #save(): void {
    if (this.#saving !== undefined) return;
    this.#saving = this.status()
      .then((status) => (this.#closed && status.state === 'running' ? undefined : this.#persist(status)))
      .finally(() => (this.#saving = undefined));
  }

  /** Writes a status to the store after the writes asked for before it, so the last one asked for is the one kept. */
  #persist(status: NetworkStatus): Promise<void> {
    this.#written = this.#written
      .then(() =>
        saveNetworkStatus(this.store, this.owner, status, this.#server, {
          ...this.source,
          outcomes: Object.fromEntries(this.#outcomes),
          ended: [...this.#ended],
          stopping: this.#stopping,
          claims: this.#claims,
        }),
      )
      .catch(() => {
        // The next save tries again; a server whose store fails has other troubles to report.
      });
    return this.#written;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#saver);
    for (const stop of this.#stops.splice(0)) stop();
    for (const writer of this.#writers.values()) writer.close();
    for (const { reader } of this.#readers.values()) reader.close();
  }

  /** The job description of a network job: the command, the FIFO wrapper around it, or the js harness. */
  description(job: NetworkJob): JobDescription {
    const common: Partial<JobDescription> = {
      name: job.name,
      group: this.group,
      // A network's jobs run together (a producer held by a full pipe waits for its consumer):
      // none may wait for a slot another job of the network holds.
      queueName: 'unlimited',
      ...(job.environment !== undefined ? { environment: job.environment } : {}),
      ...(job.workingDirectory !== undefined ? { workingDirectory: job.workingDirectory } : {}),
      ...(job.pools !== undefined ? { pools: job.pools } : {}),
      ...(job.node !== undefined ? { node: job.node } : {}),
      ...(this.#blocks(job) ? { outputWindow: OUTPUT_WINDOW_BYTES } : {}),
    };
    if (job.kind !== 'executable') {
      const pipe = (name: string): HostPipe => {
        const p = this.network.pipes[name]!;
        return { name, kind: p.framing === 'lines' ? 'lines' : p.framing === 'frames' && p.encoding !== 'binary' ? 'json' : 'bytes' };
      };
      const config: HostConfig = {
        network: this.network.name,
        job: job.name,
        ...(job.js !== undefined ? { module: job.js.module, ...(job.js.export !== undefined ? { export: job.js.export } : {}) } : {}),
        ...(job.builtin !== undefined ? { builtin: { name: job.builtin, options: { path: job.path, columns: job.columns, interval: job.interval, count: job.count } } } : {}),
        inputs: job.inputs.map(pipe),
        outputs: job.outputs.map(pipe),
        restarts: this.#counts.get(job.name)?.restarts ?? 0,
        moves: this.#counts.get(job.name)?.moves ?? 0,
      };
      // A job with inputs (or the interactive or logging builtin) reads its stdin: an interactive
      // function job, which runs in a warm runner of the pool as a source does (its process.stdin
      // is fed over the runner's IPC channel).
      const reads = job.inputs.length > 0 || job.builtin === 'interactive' || job.builtin === 'logging';
      return { ...common, js: { module: JS_HOST, export: 'hostNetworkJob', args: [config] }, ...(reads ? { interactive: true } : {}) };
    }
    const command = job.command!;
    const fifos = { in: new Set<string>(), out: new Set<string>() };
    for (const arg of command) for (const [, dir, name] of arg.matchAll(PIPE_PLACEHOLDER)) fifos[dir as 'in' | 'out'].add(name!);
    const wrapped = fifos.in.size + fifos.out.size > 0;
    const config: FifoHostConfig = {
      inputs: job.inputs.map((name) => ({ name, fifo: fifos.in.has(name) })),
      outputs: job.outputs.map((name) => ({ name, fifo: fifos.out.has(name) })),
    };
    return {
      executable: wrapped ? process.execPath : command[0]!,
      arguments: wrapped ? [FIFO_HOST, JSON.stringify(config), '--', ...command] : command.slice(1),
      ...common,
      ...(job.inputs.length > 0 ? { interactive: true } : {}),
    };
  }

  /** Whether the job's pipes travel multiplexed through the FIFO wrapper. */
  #wrapped(job: NetworkJob): boolean {
    return job.command !== undefined && job.command.some((arg) => [...arg.matchAll(PIPE_PLACEHOLDER)].length > 0);
  }

  #guard(job: NetworkJob, id: string, work: Promise<void>): void {
    void this.#guarded(job, id, work);
  }

  /** `work` for job `id`, whose failure (a wiring fault) is recorded and cancels the job; resolves when it settles. */
  #guarded(job: NetworkJob, id: string, work: Promise<void>): Promise<void> {
    return work.catch(async (error: unknown) => {
      if (this.#closed) return;
      // A job that ended (or was cancelled) refuses its input: that is its end, not a wiring fault.
      if (error instanceof ConflictError) return;
      const record = await this.store.getJob(id).catch(() => undefined);
      if (record !== undefined && isFinal(record.status)) return;
      this.#errors.push(`${job.name}: ${error instanceof Error ? error.message : String(error)}`);
      await this.service.cancel(this.owner, id).catch(() => {});
    });
  }

  /**
   * Frames of the job's input pipes → its stdin (multiplexed when wrapped); then end of stdin.
   * A frame is committed once the job has read it from its stdin, so the pipe's bound counts
   * what the job has not read yet.
   */
  async #feed(job: NetworkJob, id: string, attempt: Array<() => Promise<void> | void>): Promise<void> {
    const { stdin, done, readers } = await this.#openInputs(job, id, attempt);
    const counts = this.#counts.get(job.name)!;
    const wrapped = this.#wrapped(job);
    await Promise.all(
      job.inputs.map(async (name, port) => {
        const pipe = this.network.pipes[name]!;
        const reader = readers[port]!;
        for (let batch = await reader.nextBatch(FEED_BATCH); batch !== undefined; batch = await reader.nextBatch(FEED_BATCH)) {
          const bytes = Buffer.concat(batch.map((frame) => encodeForConsumer(pipe, frame.payload)));
          if (bytes.byteLength === 0) continue;
          const cursor = reader.cursorAfter(batch[batch.length - 1]!);
          let offset = 0;
          for (const record of wrapped ? muxData(port, bytes) : [bytes]) offset = await stdin.write(record);
          done.push({ offset, commit: () => reader.commit(cursor) });
          // The job may have read it already (a job host acks before this write returned).
          stdin.recheck();
          counts.framesIn += batch.length;
          // The embedded store answers at once, so without this a busy pipe would hold the event loop.
          await new Promise((resolve) => setImmediate(resolve));
        }
        const end = wrapped ? await stdin.write(muxRecord(port, new Uint8Array(0))) : stdin.offset;
        const cursor = reader.cursor;
        done.push({ offset: end, commit: () => reader.commit(cursor) });
        stdin.recheck();
      }),
    );
    await stdin.end();
  }

  /**
   * A job's stdin (paced by what it has read) and a reader of each of its inputs, resuming from
   * its committed cursor. `done` holds the commits to make once the job has read up to an offset.
   * What to close when the job ends goes into `attempt`. With `tellsReads`, each reader tells its
   * pipe's writer what it took (`PipeWriter.noteRead`): for a feed that holds at most the bound's
   * frames taken and not committed, so that the producer refills the pipe while the job works.
   */
  async #openInputs(
    job: NetworkJob,
    id: string,
    attempt: Array<() => Promise<void> | void>,
    tellsReads = false,
  ): Promise<{ stdin: JobStdin; done: Array<{ offset: number; commit: () => void }>; readers: PipeReader[] }> {
    const done: Array<{ offset: number; commit: () => void }> = [];
    const stdin = new JobStdin(this.service, this.store, this.owner, id, (consumed) => {
      while (done.length > 0 && done[0]!.offset <= consumed) done.shift()!.commit();
    });
    attempt.push(() => stdin.close());
    this.#stops.push(() => stdin.close());
    const readers = await Promise.all(
      job.inputs.map(async (name) => {
        const pipe = this.network.pipes[name]!;
        // The pipe's writer of the moment (a restarted producer gets a new one).
        const onTake = tellsReads ? (index: number) => this.#writers.get(name)?.noteRead(job.name, index) : undefined;
        const reader = await PipeReader.open({ streams: this.store.streams, network: this.streamNetwork, pipe: name, queue: pipe.queue, consumer: job.name, commits: 'manual', onTake });
        this.#readers.set(`${name}\n${job.name}`, { pipe: name, reader });
        // Commits made are stored before a restarted job's reader opens from them.
        attempt.push(async () => {
          await reader.flush().catch(() => {});
          reader.close();
        });
        return reader;
      }),
    );
    return { stdin, done, readers };
  }

  /**
   * Sets of input frames → a js job's stdin, one line each (see `js-host.ts`): one set per
   * frame for a single input, sets aligned by sequence number for several. A set's frames are
   * committed once the job says it has handled the set (`handled.upTo`, from its stdout), so the
   * pipe's bound counts what the job has not handled, and a set it took but had not handled when
   * it crashed comes again to the restarted job.
   */
  async #feedSets(job: NetworkJob, id: string, attempt: Array<() => Promise<void> | void>, handled: { upTo?: (sets: number) => Promise<void> }): Promise<void> {
    const { stdin, readers } = await this.#openInputs(job, id, attempt, true);
    const counts = this.#counts.get(job.name)!;
    const pipes = job.inputs.map((name) => this.network.pipes[name]!);
    // The sets sent and not yet committed, a batch each (numbered `first`…`last`, with each
    // reader's drop count when it was read); `sets` undefined: commit every reader where it is.
    const done: Array<{ first: number; last: number; sets?: AlignedSet[]; dropped: number[] }> = [];
    // Sets the job said it handled, and those of them whose commits are stored.
    let upTo = 0;
    let safe = 0;
    let total = 0;
    // At most the smallest queue bound of sets is in the job's hands (sent, and their commits not
    // stored): the frames beyond wait in their pipes, where their queue's overflow policy applies
    // to them. A server that dies sends at most these sets again to the job that takes over.
    const window = Math.min(...pipes.map((p) => p.queue.max));
    let wake: (() => void) | undefined;
    let ended = false;
    attempt.push(() => {
      ended = true;
      wake?.();
    });
    // The job is sent up to its whole window. Once the window is full, more goes only when at
    // most half of it is in the job's hands (its low-water mark), so that it goes in batches of
    // half a window or more, not as many sets as the last commit freed. (Waiting at the low-water
    // mark before the window was full left a job that had been sent part of it waiting for frames
    // already stored, for as long as it held what it had.)
    const room = async (): Promise<number> => {
      if (total - safe >= window) while (!ended && total - safe > Math.floor(window / 2)) await new Promise<void>((resolve) => (wake = resolve));
      return Math.max(1, window - (total - safe));
    };
    // One commit per set handled: the job acks sets one by one, and a set acked is a set whose
    // output frames are stored, so its frames must never come again (a batch committed whole would
    // bring back the acked sets before a crash in its middle). Each input commits the cursor after
    // its newest frame among the sets handled.
    const commit = (): void => {
      while (done.length > 0 && done[0]!.first <= upTo) {
        const batch = done[0]!;
        if (batch.sets === undefined) readers.forEach((reader) => reader.commit(reader.cursor));
        else {
          const handledHere = Math.min(upTo, batch.last) - batch.first + 1;
          readers.forEach((reader, port) => {
            for (let at = handledHere - 1; at >= 0; at--) {
              const frame = batch.sets![at]!.frames[port];
              if (frame === undefined || frame.index < 0) continue;
              reader.commit({ pos: frame.end, index: frame.index + 1, dropped: batch.dropped[port]! });
              break;
            }
          });
          if (upTo < batch.last) {
            // Partly handled: the rest waits for the next `+N`.
            batch.sets = batch.sets.slice(handledHere);
            batch.first += handledHere;
            break;
          }
        }
        done.shift();
      }
    };
    // Resolves once the commits of the sets handled are stored (a failed commit is the feed's to
    // report: its reader throws it on the next read).
    handled.upTo = async (sets) => {
      upTo = Math.max(upTo, sets);
      commit();
      await Promise.all(readers.map((reader) => reader.flush().catch(() => {})));
      safe = Math.max(safe, sets);
      wake?.();
    };
    const value = (port: number, frame: Frame | undefined): string => {
      if (frame === undefined) return 'null';
      const pipe = pipes[port]!;
      // JSON payloads are JSON text already.
      if (pipe.framing === 'frames' && pipe.encoding !== 'binary') return Buffer.from(frame.payload).toString('utf8');
      return JSON.stringify(toWire(payloadToValue(pipe, frame.payload)));
    };
    const line = (set: AlignedSet): string =>
      `{"seq":${set.seq},"reset":${set.frames.some((f) => f !== undefined && hasFlag(f, FrameFlag.RESET))},"gap":${JSON.stringify(set.frames.map((f) => f === undefined || hasFlag(f, FrameFlag.GAP)))},"in":[${set.frames.map((f, port) => value(port, f)).join(',')}]}\n`;
    // One input: sets go in the compact form (see `js-host.ts`).
    const encode = readers.length === 1 ? (batch: AlignedSet[]) => compactSets(pipes[0]!, batch, line) : (batch: AlignedSet[]) => Buffer.from(batch.map(line).join(''), 'utf8');
    const sets: AsyncIterable<AlignedSet[]> =
      readers.length === 1
        ? (async function* () {
            for (let batch = await readers[0]!.nextBatch(Math.min(FEED_BATCH, await room())); batch !== undefined; batch = await readers[0]!.nextBatch(Math.min(FEED_BATCH, await room()))) {
              yield batch.map((frame) => ({ seq: frame.seq, frames: [frame], gap: false }));
            }
          })()
        : (async function* () {
            const sources: FrameSource[] = readers;
            for await (const set of alignBySeq(sources, { gap: job.align?.gap ?? 'wait', zero: (i) => zeroPayload(pipes[i]!) })) {
              yield [set];
              await room();
            }
          })();
    for await (const batch of sets) {
      const dropped = readers.map((reader) => reader.stats.dropped);
      await stdin.write(encode(batch));
      done.push({ first: total + 1, last: total + batch.length, sets: batch, dropped });
      total += batch.length;
      commit();
      for (const set of batch) for (const frame of set.frames) if (frame !== undefined && frame.index >= 0) counts.framesIn++;
      await new Promise((resolve) => setImmediate(resolve));
    }
    done.push({ first: total, last: total, dropped: [] });
    commit();
    await stdin.end();
  }

  /**
   * A js job's stdout → frames of its output pipes (lines starting {@link FRAME_PREFIX}), until
   * its output closes. A job with inputs has its frames held until the `+N` that closes their set
   * comes: a set's frames are stored together with its commit, so a job lost mid-set (its worker
   * died) has stored nothing of that set, and the set comes whole to the job that takes over —
   * exactly once. What is held when the job ends goes out too (its `finish()` frames), unless the
   * job was lost.
   */
  async #drainFrames(job: NetworkJob, id: string, handled: { upTo?: (sets: number) => Promise<void> }): Promise<void> {
    const counts = this.#counts.get(job.name)!;
    const pipes: NetworkPipe[] = job.outputs.map((name) => this.network.pipes[name]!);
    const writers = pipes.map((pipe) => this.#writers.get(pipe.name)!);
    const follow = followOutput(this.store, id);
    const window = this.#window(job, id);
    this.#stops.push(() => {
      follow.close();
      window?.close();
    });
    const state: JsOutput = { pipes, writers, counts, handled, decoder: new StringDecoder('utf8'), pending: '', holds: job.inputs.length > 0, held: pipes.map(() => []) };
    try {
      for await (const chunk of follow.chunks) {
        if (chunk.channel === 'stdout') await this.#frameJsChunk(chunk, state);
        window?.taken(chunk.pos + chunk.data.byteLength);
      }
    } finally {
      window?.close();
    }
    if (state.held.some((payloads) => payloads.length > 0) && (await this.#final(id)).status !== 'Lost') await this.#storeFrames(state, state.held);
  }

  /** Stores frames (one list per output port) in the job's output pipes. */
  async #storeFrames(state: JsOutput, out: Uint8Array[][]): Promise<void> {
    const stored = await Promise.all(out.map((payloads, port) => (payloads.length > 0 ? state.writers[port]!.writeBatch(payloads) : 0)));
    state.counts.framesOut += stored.reduce((n, k) => n + k, 0);
  }

  /**
   * One chunk of a js job's stdout → frames of its output pipes, and the sets it says it handled.
   * A job with inputs has its frames held until the `+N` that closes their set.
   */
  async #frameJsChunk(chunk: OutputChunk, state: JsOutput): Promise<void> {
    const { pipes } = state;
    const lines = (state.pending + state.decoder.write(Buffer.from(chunk.data))).split('\n');
    state.pending = lines.pop()!;
    // A source's frames (no sets), and the sets this chunk closes, in order.
    const out: Uint8Array[][] = pipes.map(() => []);
    const sets: HandledSet[] = [];
    for (const line of lines) {
      if (!line.startsWith(FRAME_PREFIX)) continue;
      if (line.charCodeAt(FRAME_PREFIX.length) === 0x2b) {
        // `+N`: N sets handled, the last one's frames held until now.
        sets.push({ upTo: Number(line.slice(FRAME_PREFIX.length + 1)), frames: state.held });
        state.held = pipes.map(() => []);
        continue;
      }
      if (line.charCodeAt(FRAME_PREFIX.length) === COMPACT_CODE) {
        // `=PORT PAYLOAD`: the payload as its pipe stores it.
        const space = line.indexOf(' ', FRAME_PREFIX.length + 1);
        const port = Number(line.slice(FRAME_PREFIX.length + 1, space));
        if (space > 0 && Number.isInteger(port) && port >= 0 && port < pipes.length) (state.holds ? state.held : out)[port]!.push(compactPayload(pipes[port]!, line.slice(space + 1)));
        continue;
      }
      const [port, value] = JSON.parse(line.slice(FRAME_PREFIX.length)) as [number, unknown];
      if (port >= 0 && port < pipes.length) (state.holds ? state.held : out)[port]!.push(valueToPayload(pipes[port]!, fromWire(value)));
    }
    await this.#storeFrames(state, out);
    await this.#storeSets(state, sets);
  }

  /**
   * Stores the frames of handled sets and commits the sets, a group at a time: as many whole sets
   * as every output pipe has room for now (at least one, whose frames wait for room), stored,
   * then committed, and the commit stored before the next group. So the frames stored whose sets'
   * commits are not — what a server that dies now leaves to be stored twice — are one group: at
   * most a `block` pipe's bound (at most the sets in the job's hands for the other pipes).
   */
  async #storeSets(state: JsOutput, sets: HandledSet[]): Promise<void> {
    for (let at = 0; at < sets.length; ) {
      // A full pipe: wait for its low-water mark first, so the group is not the one set that fits.
      await Promise.all(state.writers.map((writer, port) => (sets[at]!.frames[port]!.length > 0 ? writer.waitForRoom() : undefined)));
      const room = state.writers.map((writer) => writer.room);
      const group: Uint8Array[][] = state.pipes.map(() => []);
      let end = at;
      while (end < sets.length) {
        const { frames } = sets[end]!;
        if (end > at && frames.some((payloads, port) => group[port]!.length + payloads.length > room[port]!)) break;
        frames.forEach((payloads, port) => group[port]!.push(...payloads));
        end++;
      }
      await this.#storeFrames(state, group);
      await Promise.all(state.writers.map((writer) => writer.flush()));
      await state.handled.upTo?.(sets[end - 1]!.upTo);
      at = end;
    }
  }

  /**
   * The job's stdout (demultiplexed when wrapped) → frames of its output pipes, until its output
   * closes. A port the FIFO wrapper ends ends its pipe at once; the others end when the job
   * succeeded (see {@link #supervise}).
   */
  async #drain(job: NetworkJob, id: string): Promise<void> {
    const counts = this.#counts.get(job.name)!;
    const wrapped = this.#wrapped(job);
    const pipes: NetworkPipe[] = job.outputs.map((name) => this.network.pipes[name]!);
    const deframers = pipes.map((pipe) => new Deframer(pipe));
    const writers = pipes.map((pipe) => this.#writers.get(pipe.name)!);
    const ended = pipes.map(() => false);
    const flushPort = async (port: number): Promise<void> => {
      if (ended[port]) return;
      ended[port] = true;
      counts.framesOut += await writers[port]!.writeBatch(deframers[port]!.end());
    };
    const demux = new Demux();
    const follow = followOutput(this.store, id);
    const window = this.#window(job, id);
    this.#stops.push(() => {
      follow.close();
      window?.close();
    });
    try {
      for await (const chunk of follow.chunks) {
        if (chunk.channel === 'stdout') {
          const records = wrapped ? demux.push(chunk.data) : [{ port: 0, data: Buffer.from(chunk.data) }];
          for (const { port, data } of records) {
            if (port >= pipes.length || ended[port]) continue;
            if (wrapped && data.byteLength === 0) {
              await flushPort(port);
              await this.#end(pipes[port]!.name);
            } else counts.framesOut += await writers[port]!.writeBatch(deframers[port]!.push(data));
          }
        }
        window?.taken(chunk.pos + chunk.data.byteLength);
      }
    } finally {
      window?.close();
    }
    // A lost job (its worker died) may have been cut off mid-frame: what follows its last whole
    // frame is no frame.
    if ((await this.#final(id)).status === 'Lost') return;
    for (let port = 0; port < pipes.length; port++) await flushPort(port);
  }

  /**
   * The output window of a producer with a blocking pipe (see `output-window.ts`): its job host
   * reads its output at most a window beyond what its pipes took. None for other jobs.
   */
  #window(job: NetworkJob, id: string): OutputWindow | undefined {
    return this.#blocks(job) ? new OutputWindow(this.store, id) : undefined;
  }

  /** Whether one of the job's outputs is a pipe that blocks its producer. */
  #blocks(job: NetworkJob): boolean {
    return job.outputs.some((name) => {
      const { queue } = this.network.pipes[name]!;
      return queue.mode !== 'latest' && queue.overflow === 'block';
    });
  }

  async #cancelAll(): Promise<void> {
    this.#endNow();
    for (const id of this.#ids.values()) await this.service.cancel(this.owner, id).catch(() => {});
  }
}

/**
 * Removes the streams of run `run` of `network`: its pipes, its consumers' cursors and its
 * takeover claims. Resolves to how many streams (stored or not) it removed.
 */
async function removeRunStreams(store: Store, network: Network, run: string): Promise<number> {
  const ids = [claimStreamId(network.name, run)];
  for (const pipe of Object.values(network.pipes)) {
    ids.push(pipeStreamId(`${network.name}.${run}`, pipe.name));
    for (const consumer of pipe.consumers) ids.push(cursorStreamId(`${network.name}.${run}`, pipe.name, consumer));
  }
  for (const stream of ids) await store.streams.remove(stream);
  return ids.length;
}

/**
 * Every frame of pipe `pipe` of run `run` of `network`, read from the store from the first, live
 * until the pipe ends, each as one JSON line (`{seq, index, epoch, reset, value}`, bytes as
 * `{"$bytes": base64}`). A tap keeps no cursor and bounds nothing. Throws NotFoundError for a
 * pipe the network does not have.
 *
 * `signal` cuts the tap at once (its run was replaced or removed); `noMore` says the pipe will
 * get no more frames (its network was stopped, or failed, before the pipe ended): the tap then
 * ends after every frame stored. Returns true when the tap ended at the pipe's own end.
 */
function tapPipe(store: Store, network: Network, run: string, pipe: string, signal?: AbortSignal, noMore?: AbortSignal): AsyncGenerator<string, boolean> {
  const spec = Object.hasOwn(network.pipes, pipe) ? network.pipes[pipe] : undefined;
  if (spec === undefined) throw new NotFoundError(`network ${network.name} has no pipe ${JSON.stringify(pipe)}`);
  const { streams } = store;
  const streamNetwork = `${network.name}.${run}`;
  return (async function* () {
    const reader = await PipeReader.open({ streams, network: streamNetwork, pipe, queue: spec.queue });
    // An abort (the tap's run was replaced) closes the reader: a wait for the next frame ends.
    const close = (): void => reader.close();
    const drain = (): void => reader.endAtStored();
    signal?.addEventListener('abort', close, { once: true });
    noMore?.addEventListener('abort', drain, { once: true });
    if (signal?.aborted) reader.close();
    if (noMore?.aborted) reader.endAtStored();
    try {
      for await (const frame of reader) {
        const value = JSON.stringify(toWire(payloadToValue(spec, frame.payload)));
        yield `{"seq":${frame.seq},"index":${frame.index},"epoch":${frame.epoch},"reset":${hasFlag(frame, FrameFlag.RESET)},"value":${value}}\n`;
      }
      return reader.finished;
    } finally {
      signal?.removeEventListener('abort', close);
      noMore?.removeEventListener('abort', drain);
      reader.close();
    }
  })();
}

/**
 * Writes a job's stdin in order, at most {@link STDIN_WINDOW} bytes ahead of what the job read,
 * and tells `onConsumed` how far the job has read.
 */
class JobStdin {
  #offset = 0;
  #consumed = 0;
  #jobEnded = false;
  #wake: (() => void) | undefined;
  #queue: Promise<number> = Promise.resolve(0);
  readonly #unsubscribe: () => void;

  constructor(
    private readonly service: JobService,
    private readonly store: Store,
    private readonly owner: string,
    private readonly id: string,
    private readonly onConsumed: (consumed: number) => void,
  ) {
    this.#unsubscribe = store.streams.subscribe(id, (event: StreamEvent) => {
      if (event.type === 'stdin-ack') this.#ack(event.consumed);
      if (event.type === 'output-closed') this.#jobEnded = true;
      if (event.type === 'stdin-ack' || event.type === 'output-closed') this.#wake?.();
    });
  }

  /** Bytes written so far. */
  get offset(): number {
    return this.#offset;
  }

  /** Appends after waiting for room; several callers are served in call order. Resolves to the stdin length after it. */
  write(bytes: Uint8Array): Promise<number> {
    this.#queue = this.#queue.then(async () => {
      // Input for a job that has ended goes nowhere; its end stops the feed.
      if (this.#jobEnded) throw new ConflictError('the job ended before it read all its input');
      while (this.#offset - this.#consumed > STDIN_WINDOW) {
        const sizes = await this.store.streams.sizes(this.id);
        this.#ack(sizes.stdinConsumed);
        if (sizes.outputClosed) throw new ConflictError('the job ended before it read all its input');
        if (this.#offset - this.#consumed <= STDIN_WINDOW) break;
        await new Promise<void>((resolve) => (this.#wake = resolve));
      }
      // Straight to the stream log (the job service would read the job for each write): this
      // is the server's own job, and the log refuses input after its stdin closed.
      this.#offset = await this.store.streams.appendStdin(this.id, this.#offset, bytes);
      return this.#offset;
    });
    return this.#queue;
  }

  async end(): Promise<void> {
    await this.#queue;
    await this.service.closeStdin(this.owner, this.id).catch(() => {});
    // Acks go on after the end: the job reads what is left, and each read commits frames.
  }

  close(): void {
    this.#unsubscribe();
    this.#wake?.();
  }

  /** Tells `onConsumed` again how far the job has read, for commits queued after that ack came. */
  recheck(): void {
    if (this.#consumed > 0) this.onConsumed(this.#consumed);
  }

  #ack(consumed: number): void {
    if (consumed <= this.#consumed) return;
    this.#consumed = consumed;
    this.onConsumed(consumed);
  }
}

/**
 * Sets of a js job with one input as stdin bytes in the compact form (`=SEQ FLAGS PAYLOAD`, see
 * `js-host.ts`): the payload as stored — the line, or the JSON text — or in base64 for bytes, in
 * one buffer. A set whose payload holds a newline goes as its JSON line (`jsonLine`).
 */
function compactSets(pipe: NetworkPipe, sets: readonly AlignedSet[], jsonLine: (set: AlignedSet) => string): Buffer {
  const raw = pipe.framing === 'lines' || (pipe.framing === 'frames' && pipe.encoding !== 'binary');
  const heads: string[] = [];
  const bodies: Array<Uint8Array | string> = [];
  let length = 0;
  for (const set of sets) {
    const frame = set.frames[0]!;
    const flags = (hasFlag(frame, FrameFlag.RESET) ? SetFlag.RESET : 0) | (set.gap || hasFlag(frame, FrameFlag.GAP) ? SetFlag.GAP : 0);
    if (raw && frame.payload.includes(0x0a)) {
      heads.push('');
      bodies.push(jsonLine(set));
      length += Buffer.byteLength(bodies[bodies.length - 1] as string);
      continue;
    }
    const head = `${COMPACT}${set.seq} ${flags} `;
    const body = raw ? frame.payload : Buffer.from(frame.payload.buffer, frame.payload.byteOffset, frame.payload.byteLength).toString('base64');
    heads.push(head);
    bodies.push(body);
    length += head.length + (typeof body === 'string' ? body.length : body.byteLength) + 1;
  }
  const bytes = Buffer.allocUnsafe(length);
  let at = 0;
  for (let i = 0; i < heads.length; i++) {
    const body = bodies[i]!;
    if (heads[i] === '') {
      at += bytes.write(body as string, at, 'utf8');
      continue;
    }
    at += bytes.write(heads[i]!, at, 'latin1');
    if (typeof body === 'string') at += bytes.write(body, at, 'latin1');
    else {
      bytes.set(body, at);
      at += body.byteLength;
    }
    bytes[at++] = 0x0a;
  }
  return bytes;
}

const COMPACT_CODE = COMPACT.charCodeAt(0);

/** The payload of a compact output frame (`js-host.ts`): its text, checked to be JSON for a pipe of JSON frames. */
function compactPayload(pipe: NetworkPipe, text: string): Uint8Array {
  if (pipe.framing === 'frames' && pipe.encoding !== 'binary') {
    try {
      JSON.parse(text);
    } catch (error) {
      throw new BadRequestError(`not a JSON value: ${text.slice(0, 80)}`, { field: 'frames', cause: error });
    }
  }
  return Buffer.from(text, 'utf8');
}

/** One set a js job handled: its output frames (one list per output port), and the count of sets handled with it. */
interface HandledSet {
  upTo: number;
  frames: Uint8Array[][];
}

/** Where a js job's drain stands: its output pipes, a line cut between two chunks, and frames held until their set's `+N`. */
interface JsOutput {
  pipes: NetworkPipe[];
  writers: PipeWriter[];
  counts: { framesOut: number };
  handled: { upTo?: (sets: number) => Promise<void> };
  decoder: StringDecoder;
  pending: string;
  /** Whether frames wait for their set's `+N` (a job with inputs). */
  holds: boolean;
  held: Uint8Array[][];
}

/**
 * Whether a job placed again after its worker died resumes exactly, so that its consumers see
 * no *reset*: a js or builtin job with inputs. Its inputs are committed a few sets at a time once
 * those sets' output frames are stored (see `#storeSets`), so the job that takes over gets
 * every set whose output is not stored, and no other. A source has no input to resume from (it
 * starts over), and an executable's bytes cannot be tied to the input they came from: their
 * outputs go on in a new epoch, as after a restart.
 */
export function resumesExactly(job: Pick<NetworkJob, 'kind' | 'inputs'>): boolean {
  return (job.kind === 'js' || job.kind === 'builtin') && job.inputs.length > 0;
}

/** Chunks a job's output follower may hold before the drain takes them. */
const FOLLOW_QUEUE = 16;

/**
 * A job's merged output from the start, followed live until it closes, as an async iterable:
 * the job service's {@link OutputFollower} feeding a small queue that the drain pulls from (the
 * follower stops reading while the queue is full, so a blocked pipe holds no output in memory).
 */
function followOutput(store: Store, id: string): { chunks: AsyncIterable<OutputChunk>; close(): void } {
  const queue: OutputChunk[] = [];
  let done = false;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const poke = (): void => {
    wake?.();
    wake = undefined;
  };
  const follower = new OutputFollower(store.streams, id, 0, {
    canTake: () => queue.length < FOLLOW_QUEUE,
    take: (chunk) => {
      queue.push(chunk);
      poke();
    },
    end: async () => {
      done = true;
      poke();
    },
    fail: (error) => {
      failure = error;
      done = true;
      poke();
    },
  });
  const unsubscribe = store.streams.subscribe(id, (event: StreamEvent) => {
    if (event.type === 'output') follower.offer(event.chunk);
    else if (event.type === 'output-closed') follower.pump();
  });
  const close = (): void => {
    unsubscribe();
    done = true;
    poke();
  };
  async function* chunks(): AsyncGenerator<OutputChunk> {
    try {
      follower.pump();
      for (;;) {
        const chunk = queue.shift();
        if (chunk !== undefined) {
          follower.pump();
          yield chunk;
          continue;
        }
        if (failure !== undefined) throw failure;
        if (done) return;
        await new Promise<void>((resolve) => (wake = resolve));
      }
    } finally {
      close();
    }
  }
  return { chunks: chunks(), close };
}
