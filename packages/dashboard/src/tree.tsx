/**
 * The job tree: groups and jobs with status, progress, owner and times, live from the events
 * socket; filter by status and text; a virtualised list so 10,000 jobs scroll smoothly.
 *
 * Keyboard (WAI-ARIA tree pattern): the list is one tab stop; ↑/↓ move, Home/End jump,
 * PageUp/PageDown move a screen, → opens a group (or enters it), ← closes it (or goes to its
 * parent), Enter opens the job or group page, Space opens or closes a group.
 * @module
 */
import type { JSX } from 'preact';
import { useMemo, useRef, useState } from 'preact/hooks';
import type { JobStatus } from '@jobwire/client';
import { Link, StatusBadge, useNow } from './components.js';
import { formatFullTime, formatTime, jobDuration } from './format.js';
import { useStoreVersion, type JobStore } from './job-store.js';
import { groupHref, jobHref, navigate } from './router.js';
import { STATUSES, buildTree, countStatuses, isFilterEmpty, parentPath, type Row, type StatusCounts, type TreeFilter } from './tree-model.js';
import { VirtualList } from './virtual-list.js';

/** Height of a row, px (the list's arithmetic depends on it; the CSS uses the same number). */
export const ROW_HEIGHT = 36;

/** Props of {@link JobTree}. */
export interface JobTreeProps {
  store: JobStore;
  /** Group whose subtree is shown (`''`: everything). */
  root: string;
  filter: TreeFilter;
  onFilter(filter: TreeFilter): void;
  collapsed: ReadonlySet<string>;
  onCollapsed(collapsed: ReadonlySet<string>): void;
}

/** "3 jobs · 1 running · 1 failed". */
function countsText(total: number, counts: StatusCounts): string {
  const parts = [`${total} job${total === 1 ? '' : 's'}`];
  for (const s of ['Queued', 'Running', 'Failed', 'Lost', 'Cancelled'] as const) if (counts[s] > 0) parts.push(`${counts[s]} ${s.toLowerCase()}`);
  return parts.join(' · ');
}

/** Breadcrumb of a group path: All jobs › a › b. */
export function GroupCrumbs({ path, current }: { path: string; current: boolean }) {
  const parts = path ? path.split(':') : [];
  return (
    <nav class="crumbs" aria-label="Group">
      <ol>
        <li>{parts.length === 0 && current ? <span aria-current="page">All jobs</span> : <Link href="/">All jobs</Link>}</li>
        {parts.map((name, i) => {
          const sub = parts.slice(0, i + 1).join(':');
          const last = i === parts.length - 1 && current;
          return <li key={sub}>{last ? <span aria-current="page">{name}</span> : <Link href={groupHref(sub)}>{name}</Link>}</li>;
        })}
      </ol>
    </nav>
  );
}

/** See the module comment. */
export function JobTree({ store, root, filter, onFilter, collapsed, onCollapsed }: JobTreeProps) {
  const version = useStoreVersion(store);
  const { rows, matched } = useMemo(() => buildTree(store.jobs.values(), store.groups.values(), root, filter, collapsed), [version, root, filter, collapsed]);
  const counts = useMemo(() => countStatuses(store.jobs.values(), root), [version, root]);
  const indexOf = useMemo(() => new Map(rows.map((r, i) => [r.key, i])), [rows]);
  const [activeKey, setActiveKey] = useState<string | undefined>(undefined);
  const [reveal, setReveal] = useState(0);
  const listRef = useRef<HTMLDivElement | null>(null);
  const now = useNow(1000, counts.Running > 0);

  const found = activeKey === undefined ? undefined : indexOf.get(activeKey);
  const activeIndex = found ?? (rows.length > 0 ? 0 : -1);

  const setCollapsedPath = (path: string, close: boolean): void => {
    const next = new Set(collapsed);
    if (close) next.add(path);
    else next.delete(path);
    onCollapsed(next);
  };
  const open = (row: Row): void => navigate(row.kind === 'job' ? jobHref(row.job.id) : groupHref(row.path));
  const moveTo = (index: number): void => {
    const row = rows[Math.max(0, Math.min(rows.length - 1, index))];
    if (!row) return;
    setActiveKey(row.key);
    setReveal((n) => n + 1);
  };

  const onKeyDown = (e: JSX.TargetedKeyboardEvent<HTMLDivElement>): void => {
    if (rows.length === 0) return;
    const row = rows[activeIndex]!;
    const page = Math.max(1, Math.floor((listRef.current?.clientHeight ?? 400) / ROW_HEIGHT) - 1);
    switch (e.key) {
      case 'ArrowDown':
        moveTo(activeIndex + 1);
        break;
      case 'ArrowUp':
        moveTo(activeIndex - 1);
        break;
      case 'Home':
        moveTo(0);
        break;
      case 'End':
        moveTo(rows.length - 1);
        break;
      case 'PageDown':
        moveTo(activeIndex + page);
        break;
      case 'PageUp':
        moveTo(activeIndex - page);
        break;
      case 'ArrowRight':
        if (row.kind === 'group' && !row.expanded) setCollapsedPath(row.path, false);
        else if (row.kind === 'group') moveTo(activeIndex + 1);
        break;
      case 'ArrowLeft':
        if (row.kind === 'group' && row.expanded) setCollapsedPath(row.path, true);
        else {
          const parent = row.kind === 'group' ? parentPath(row.path) : row.job.group;
          const at = indexOf.get(`g:${parent}`);
          if (at !== undefined) moveTo(at);
        }
        break;
      case 'Enter':
        open(row);
        break;
      case ' ':
        if (row.kind === 'group') setCollapsedPath(row.path, row.expanded);
        else open(row);
        break;
      default:
        return;
    }
    e.preventDefault();
  };

  const renderRow = (index: number, top: number) => {
    const row = rows[index]!;
    const active = index === activeIndex;
    const common = {
      id: `tree-row-${index}`,
      role: 'treeitem' as const,
      'aria-level': row.level,
      'aria-setsize': row.setSize,
      'aria-posinset': row.posInSet,
      'aria-selected': active,
      style: { top: `${top}px`, height: `${ROW_HEIGHT}px` },
    };
    const indent = { paddingLeft: `${(row.level - 1) * 1.25 + 0.5}rem` };
    if (row.kind === 'group') {
      return (
        <div
          key={row.key}
          {...common}
          aria-expanded={row.expanded}
          class={`row row-group${active ? ' active' : ''}`}
          data-group={row.path}
          onClick={(e) => {
            setActiveKey(row.key);
            if (!(e.target as HTMLElement).closest('a')) setCollapsedPath(row.path, row.expanded);
          }}
        >
          <span class="cell cell-main" style={indent}>
            <span class="twisty" aria-hidden="true">
              {row.expanded ? '▾' : '▸'}
            </span>
            <Link href={groupHref(row.path)} class="name group-name" tabIndex={-1} title={`Open group ${row.path}`}>
              {row.name}
            </Link>
          </span>
          <span class="cell cell-progress muted">{countsText(row.total, row.counts)}</span>
          <span class="cell" />
          <span class="cell" />
          <span class="cell" />
        </div>
      );
    }
    const job = row.job;
    return (
      <div
        key={row.key}
        {...common}
        class={`row row-job${active ? ' active' : ''}`}
        data-job-id={job.id}
        data-status={job.status}
        onClick={(e) => {
          setActiveKey(row.key);
          if (!(e.target as HTMLElement).closest('a')) open(row);
        }}
      >
        <span class="cell cell-main" style={indent}>
          <StatusBadge status={job.status} />
          <Link href={jobHref(job.id)} class="name" tabIndex={-1} title={`${job.name} (${job.id})`}>
            {job.name}
          </Link>
          {job.interactive ? (
            <span class="tag" title={job.tty ? 'interactive, with a terminal' : 'interactive'}>
              {job.tty ? 'tty' : 'stdin'}
            </span>
          ) : null}
        </span>
        <span class="cell cell-progress" title={job.progress ?? job.reason ?? undefined}>
          {job.progress ?? (job.status === 'Queued' ? job.reason : job.status === 'Failed' || job.status === 'Lost' ? job.error?.split('\n')[0] : null) ?? ''}
        </span>
        <span class="cell cell-owner">{job.owner}</span>
        <span class="cell cell-time">
          <time dateTime={job.createdAt} title={`created ${formatFullTime(job.createdAt)}`}>
            {formatTime(job.createdAt)}
          </time>
        </span>
        <span class="cell cell-duration">{jobDuration(job, now)}</span>
      </div>
    );
  };

  const toggleStatus = (status: JobStatus): void => {
    const statuses = new Set(filter.statuses);
    if (statuses.has(status)) statuses.delete(status);
    else statuses.add(status);
    onFilter({ ...filter, statuses });
  };

  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  return (
    <section class="tree-page" aria-labelledby="tree-title">
      <div class="page-head">
        <h1 id="tree-title" class="visually-hidden">
          {root ? `Group ${root}` : 'All jobs'}
        </h1>
        <GroupCrumbs path={root} current />
      </div>
      <div class="toolbar" role="search">
        <label class="filter-text">
          <span class="visually-hidden">Filter jobs by text</span>
          <input
            type="search"
            placeholder="Filter: name, id, group, progress, owner…"
            value={filter.text}
            onInput={(e) => onFilter({ ...filter, text: e.currentTarget.value })}
          />
        </label>
        <div class="status-filter" role="group" aria-label="Show statuses">
          {STATUSES.map((s) => (
            <button key={s} type="button" class={`chip chip-${s.toLowerCase()}`} aria-pressed={filter.statuses.has(s)} onClick={() => toggleStatus(s)}>
              {s} <span class="chip-count">{counts[s]}</span>
            </button>
          ))}
          {!isFilterEmpty(filter) ? (
            <button type="button" class="chip chip-clear" onClick={() => onFilter({ text: '', statuses: new Set() })}>
              Clear filter
            </button>
          ) : null}
        </div>
        <span class="muted summary">{isFilterEmpty(filter) ? `${total} job${total === 1 ? '' : 's'}` : `${matched} of ${total} jobs`}</span>
      </div>
      <div class="tree-head" aria-hidden="true">
        <span>Job</span>
        <span>Progress</span>
        <span>Owner</span>
        <span>Created</span>
        <span>Duration</span>
      </div>
      {!store.loaded ? (
        <p class="empty">Loading jobs…</p>
      ) : rows.length === 0 ? (
        <p class="empty">
          {total === 0 ? (
            <>
              No jobs yet. Submit one with <strong>New job</strong>, or from a terminal: <code>jobwire submit -- echo hello</code>
            </>
          ) : (
            'No job matches the filter.'
          )}
        </p>
      ) : (
        <VirtualList
          class="tree"
          role="tree"
          aria-label={root ? `Jobs in group ${root}` : 'Jobs'}
          aria-activedescendant={activeIndex >= 0 ? `tree-row-${activeIndex}` : undefined}
          tabIndex={0}
          count={rows.length}
          rowHeight={ROW_HEIGHT}
          activeIndex={activeIndex}
          revealCount={reveal}
          renderRow={renderRow}
          onKeyDown={onKeyDown}
          elementRef={listRef}
          data-rows={rows.length}
          data-jobs={matched}
        />
      )}
    </section>
  );
}
