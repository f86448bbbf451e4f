/**
 * Networks (docs/networks.md): the list (`/networks`) and one network's page (`/networks/NAME`),
 * which draws its graph — jobs coloured by status, pipes labelled with their rate and queue
 * depth — and keeps it live.
 *
 * Live, two ways: a job's status comes from the page's events subscription (the job store, the
 * same that feeds the tree), so a colour changes as soon as the job does; the counts (frames,
 * queue depth, drops, restarts) come from polling `GET /v1/networks/NAME` every second while the
 * network runs, and a pipe's rate is the frames it gained between two polls over the time
 * between them. The graph's shape comes once from `GET /v1/networks/NAME/graph` (again when a
 * new run starts). Layout: `network-layout.ts`.
 * @module
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { Client, JobStatus, NetworkGraph, NetworkStatus } from '@jobwire/client';
import { Link, StatusBadge } from './components.js';
import { useStoreVersion, type JobStore } from './job-store.js';
import { NODE_H, NODE_W, layoutNetwork } from './network-layout.js';
import { groupHref, jobHref, networkHref, onLinkClick } from './router.js';

/** Width of a label's character, about (11.5 px system-ui), to size the plate under it. */
const LABEL_CHAR_W = 6.3;

/** How often the counts are polled while a network runs. */
const POLL_MS = 1000;

const STATE_TEXT: Record<NetworkStatus['state'], string> = { running: 'Running', done: 'Done', failed: 'Failed', stopped: 'Stopped' };

/** `12/s`, `1.5/s`, `0/s`. */
function formatRate(perSecond: number | undefined): string {
  if (perSecond === undefined) return '…/s';
  if (perSecond >= 100) return `${Math.round(perSecond)}/s`;
  if (perSecond >= 10) return `${perSecond.toFixed(0)}/s`;
  return `${perSecond.toFixed(1).replace(/\.0$/, '')}/s`;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** `/networks`: the networks this server runs (or ran) for the user. */
export function NetworkList({ client }: { client: Client }) {
  const [items, setItems] = useState<NetworkStatus[] | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  useEffect(() => {
    document.title = 'Networks — jobwire';
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const load = async (): Promise<void> => {
      try {
        const list = await client.networks();
        if (stopped) return;
        setItems(list);
        setError(undefined);
      } catch (err) {
        if (!stopped) setError(errorText(err));
      }
      if (!stopped) timer = setTimeout(() => void load(), POLL_MS * 2);
    };
    void load();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [client]);
  return (
    <section class="network-list">
      <h1>Networks</h1>
      {error ? (
        <p class="notice" role="alert">
          Cannot list the networks: {error}
        </p>
      ) : null}
      {items === undefined ? (
        <p class="muted">Loading…</p>
      ) : items.length === 0 ? (
        <p class="muted">
          No network has run on this server yet. Start one with <code>jobwire network run FILE</code> (see docs/networks.md).
        </p>
      ) : (
        <table class="net-table">
          <thead>
            <tr>
              <th scope="col">Network</th>
              <th scope="col">State</th>
              <th scope="col">Jobs</th>
              <th scope="col">Pipes</th>
              <th scope="col">Run</th>
            </tr>
          </thead>
          <tbody>
            {items.map((n) => (
              <tr key={n.name} data-network={n.name}>
                <td>
                  <Link href={networkHref(n.name)}>{n.name}</Link>
                </td>
                <td>
                  <span class={`net-state net-state-${n.state}`}>{STATE_TEXT[n.state]}</span>
                </td>
                <td>
                  {n.jobs.length} ({n.jobs.filter((j) => j.status === 'Running').length} running)
                </td>
                <td>{n.pipes.length}</td>
                <td>
                  <code>{n.run}</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

/** Props of {@link NetworkPage}. */
export interface NetworkPageProps {
  name: string;
  client: Client;
  store: JobStore;
}

/** `/networks/NAME`: see the module comment. */
export function NetworkPage({ name, client, store }: NetworkPageProps) {
  useStoreVersion(store);
  const [status, setStatus] = useState<NetworkStatus | undefined>(undefined);
  const [graph, setGraph] = useState<NetworkGraph | undefined>(undefined);
  const [rates, setRates] = useState<Map<string, number>>(() => new Map());
  const [error, setError] = useState<string | undefined>(undefined);
  const last = useRef<{ at: number; run: string; frames: Map<string, number> } | undefined>(undefined);

  useEffect(() => {
    document.title = `${name} — network — jobwire`;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let shapeOf: string | undefined;
    const poll = async (): Promise<void> => {
      let running = true;
      try {
        const now = await client.networkStatus(name);
        if (stopped) return;
        if (shapeOf !== now.run) {
          const shape = await client.networkGraph(name);
          if (stopped) return;
          shapeOf = shape.run;
          setGraph(shape);
        }
        const at = performance.now();
        const frames = new Map(now.pipes.map((p) => [p.name, p.frames]));
        const before = last.current;
        if (before !== undefined && before.run === now.run && at > before.at) {
          const seconds = (at - before.at) / 1000;
          setRates(new Map(now.pipes.map((p) => [p.name, Math.max(0, (p.frames - (before.frames.get(p.name) ?? 0)) / seconds)])));
        } else if (before?.run !== now.run) setRates(new Map());
        last.current = { at, run: now.run, frames };
        setStatus(now);
        setError(undefined);
        running = now.state === 'running';
      } catch (err) {
        if (!stopped) setError(errorText(err));
      }
      // Once over, nothing moves: poll slowly, in case the network is started again.
      if (!stopped) timer = setTimeout(() => void poll(), running ? POLL_MS : POLL_MS * 5);
    };
    void poll();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [client, name]);

  const layout = useMemo(() => (graph === undefined ? undefined : layoutNetwork(graph)), [graph]);

  if (status === undefined || graph === undefined || layout === undefined) {
    return (
      <section class="network-page">
        <Crumbs name={name} />
        <h1>{name}</h1>
        {error ? (
          <p class="notice" role="alert">
            {error}
          </p>
        ) : (
          <p class="muted">Loading…</p>
        )}
      </section>
    );
  }

  const jobs = new Map(status.jobs.map((j) => [j.name, j]));
  const pipes = new Map(status.pipes.map((p) => [p.name, p]));
  // The live store knows a job's status as soon as it changes; the poll may be a second behind.
  const statusOf = (job: string): JobStatus => {
    const j = jobs.get(job);
    if (j === undefined) return 'Queued';
    return store.jobs.get(j.id)?.status ?? j.status;
  };
  const kindOf = new Map(graph.jobs.map((j) => [j.name, j.builtin ?? j.kind]));
  const rateText = (pipe: string): string => {
    const p = pipes.get(pipe);
    const spec = graph.pipes.find((g) => g.name === pipe);
    const parts = [pipe, status.state === 'running' ? formatRate(rates.get(pipe)) : `${p?.frames ?? 0} frames`, `queue ${p?.lag ?? 0}/${spec?.queue.max ?? '?'}`];
    if ((p?.dropped ?? 0) > 0) parts.push(`${p!.dropped} dropped`);
    return parts.join(' · ');
  };

  return (
    <section class="network-page">
      <Crumbs name={name} />
      <div class="net-title">
        <h1>{name}</h1>
        <span class={`net-state net-state-${status.state}`} data-state={status.state}>
          {STATE_TEXT[status.state]}
        </span>
        <span class="muted">
          run <code>{status.run}</code> · jobs in <Link href={groupHref(status.group)}>{status.group}</Link>
        </span>
      </div>
      {error ? (
        <p class="notice" role="alert">
          {error}
        </p>
      ) : null}
      {status.errors.length > 0 ? (
        <ul class="notice net-errors">
          {status.errors.map((e) => (
            <li key={e}>{e}</li>
          ))}
        </ul>
      ) : null}
      <div class="net-graph-box">
        <svg class="net-graph" width={layout.width} height={layout.height} viewBox={`0 0 ${layout.width} ${layout.height}`} role="group" aria-label={`Graph of network ${name}`}>
          <defs>
            <marker id="net-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
              <path d="M 0 0 L 10 5 L 0 10 z" class="net-arrowhead" />
            </marker>
          </defs>
          {layout.edges.map((edge) => (
            <path key={`${edge.pipe}\n${edge.to ?? ''}`} class="net-edge" data-pipe={edge.pipe} data-to={edge.to ?? ''} d={edge.d} marker-end={edge.to === null ? undefined : 'url(#net-arrow)'} />
          ))}
          {/* Labels after every edge, each on a plate, so that no line runs through one. */}
          {layout.edges.map((edge) => {
            const text = rateText(edge.pipe);
            const width = text.length * LABEL_CHAR_W + 12;
            return (
              <g key={`${edge.pipe}\n${edge.to ?? ''}`} class="net-label" data-pipe={edge.pipe} data-to={edge.to ?? ''}>
                <rect x={edge.label.x - width / 2} y={edge.label.y - 9} width={width} height={18} rx={4} class="net-label-plate" />
                <text x={edge.label.x} y={edge.label.y + 4} class="net-label-text" text-anchor="middle">
                  {text}
                </text>
              </g>
            );
          })}
          {layout.ends.map((end) => (
            <circle key={end.pipe} cx={end.x} cy={end.y} r={5} class="net-end">
              <title>{`${end.pipe}: nobody reads it`}</title>
            </circle>
          ))}
          {[...layout.nodes.values()].map((node) => {
            const job = jobs.get(node.name);
            const st = statusOf(node.name);
            const href = job === undefined ? undefined : jobHref(job.id);
            const label = `${node.name}: ${st}${job !== undefined ? `, ${job.framesIn} frames in, ${job.framesOut} out${job.restarts > 0 ? `, ${job.restarts} restarts` : ''}` : ''}. Open its page`;
            return (
              <a
                key={node.name}
                class={`net-node net-node-${st.toLowerCase()}`}
                data-job={node.name}
                data-status={st}
                href={href}
                aria-label={label}
                onClick={(e) => href !== undefined && onLinkClick(e as unknown as MouseEvent, href)}
              >
                <rect x={node.x} y={node.y} width={NODE_W} height={NODE_H} rx={8} class="net-node-box" />
                <text x={node.x + 12} y={node.y + 21} class="net-node-name">
                  {node.name}
                </text>
                <text x={node.x + NODE_W - 10} y={node.y + 21} class="net-node-kind" text-anchor="end">
                  {kindOf.get(node.name)}
                </text>
                <text x={node.x + 12} y={node.y + 38} class="net-node-status">
                  {st}
                  {job !== undefined && job.restarts > 0 ? ` · ↻${job.restarts}` : ''}
                </text>
                <text x={node.x + 12} y={node.y + 53} class="net-node-counts">
                  {job !== undefined ? `in ${job.framesIn} · out ${job.framesOut}` : ''}
                </text>
              </a>
            );
          })}
        </svg>
      </div>
      <div class="net-tables">
        <table class="net-table">
          <caption>Jobs</caption>
          <thead>
            <tr>
              <th scope="col">Job</th>
              <th scope="col">Status</th>
              <th scope="col">Node</th>
              <th scope="col">Frames in</th>
              <th scope="col">Frames out</th>
              <th scope="col">Restarts</th>
            </tr>
          </thead>
          <tbody>
            {status.jobs.map((j) => (
              <tr key={j.name} data-job={j.name}>
                <td>
                  <Link href={jobHref(j.id)}>{j.name}</Link>
                </td>
                <td>
                  <StatusBadge status={statusOf(j.name)} />
                </td>
                <td>{j.node ?? '—'}</td>
                <td>{j.framesIn}</td>
                <td>{j.framesOut}</td>
                <td>{j.restarts}</td>
              </tr>
            ))}
          </tbody>
        </table>
        <table class="net-table">
          <caption>Pipes</caption>
          <thead>
            <tr>
              <th scope="col">Pipe</th>
              <th scope="col">From → to</th>
              <th scope="col">Frames</th>
              <th scope="col">Rate</th>
              <th scope="col">Queue</th>
              <th scope="col">Dropped</th>
            </tr>
          </thead>
          <tbody>
            {graph.pipes.map((g) => {
              const p = pipes.get(g.name);
              return (
                <tr key={g.name} data-pipe={g.name}>
                  <td>{g.name}</td>
                  <td>
                    {g.producer} → {g.consumers.length > 0 ? g.consumers.join(', ') : '—'}
                  </td>
                  <td>{p?.frames ?? 0}</td>
                  <td>{status.state === 'running' ? formatRate(rates.get(g.name)) : '—'}</td>
                  <td>
                    {p?.lag ?? 0} / {g.queue.max} ({g.queue.mode === 'latest' ? 'latest' : g.queue.overflow})
                  </td>
                  <td>{p?.dropped ?? 0}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </section>
  );
}

function Crumbs({ name }: { name: string }) {
  return (
    <nav class="crumbs" aria-label="Breadcrumb">
      <ol>
        <li>
          <Link href="/networks">Networks</Link>
        </li>
        <li>
          <span aria-current="page">{name}</span>
        </li>
      </ol>
    </nav>
  );
}
