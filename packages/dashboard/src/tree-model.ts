/**
 * Turns groups and jobs into the rows of the job tree: a depth-first list (groups first, by
 * name; then jobs, newest first) that the virtualised list shows a window of. Pure functions,
 * so the tree and the widget share them.
 * @module
 */
import { inSubtree, type GroupInfo, type JobInfo, type JobStatus } from '@jobwire/client';

/** Every status, in life-cycle order. */
export const STATUSES: readonly JobStatus[] = ['Queued', 'Running', 'Success', 'Failed', 'Cancelled', 'Lost'];

/** Jobs per status. */
export type StatusCounts = Record<JobStatus, number>;

/** What the tree shows. */
export interface TreeFilter {
  /** Words that must all appear in a job's name, id, group, progress, owner or status. */
  text: string;
  /** Statuses to show; empty = all. */
  statuses: ReadonlySet<JobStatus>;
}

/** A row of the tree. `setSize`/`posInSet` place it among its siblings (for screen readers). */
export type Row =
  | { kind: 'group'; key: string; path: string; name: string; level: number; expanded: boolean; counts: StatusCounts; total: number; setSize: number; posInSet: number }
  | { kind: 'job'; key: string; job: JobInfo; level: number; setSize: number; posInSet: number };

/** Parent path of a group path (`''` for a top-level group). */
export function parentPath(path: string): string {
  const i = path.lastIndexOf(':');
  return i < 0 ? '' : path.slice(0, i);
}

/** Zero counts. */
export function emptyCounts(): StatusCounts {
  return { Queued: 0, Running: 0, Success: 0, Failed: 0, Cancelled: 0, Lost: 0 };
}

interface Node {
  path: string;
  name: string;
  groups: Node[];
  jobs: JobInfo[];
  counts: StatusCounts;
  total: number;
}

/** A job filter from {@link TreeFilter}. */
export function jobMatcher(filter: TreeFilter): (job: JobInfo) => boolean {
  const words = filter.text.toLowerCase().split(/\s+/).filter(Boolean);
  const statuses = filter.statuses;
  return (job) => {
    if (statuses.size > 0 && !statuses.has(job.status)) return false;
    if (words.length === 0) return true;
    const hay = `${job.name}\n${job.id}\n${job.group}\n${job.progress ?? ''}\n${job.owner}\n${job.status}`.toLowerCase();
    return words.every((w) => hay.includes(w));
  };
}

/** True when the filter hides nothing. */
export function isFilterEmpty(filter: TreeFilter): boolean {
  return filter.statuses.size === 0 && filter.text.trim() === '';
}

/** Newest first; ties by id so the order is stable. */
function newestFirst(a: JobInfo, b: JobInfo): number {
  return a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : a.id < b.id ? 1 : -1;
}

const byName = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });

/** The rows of a tree, and how many jobs passed the filter (shown or inside closed groups). */
export interface Tree {
  rows: Row[];
  matched: number;
}

/**
 * The rows under `root`. Without a filter every group shows, empty or not; with one, only
 * groups holding a matching job. Groups in `collapsed` show without their children.
 */
export function buildTree(jobs: Iterable<JobInfo>, groups: Iterable<GroupInfo>, root: string, filter: TreeFilter, collapsed: ReadonlySet<string>): Tree {
  const top: Node = { path: root, name: root, groups: [], jobs: [], counts: emptyCounts(), total: 0 };
  const nodes = new Map<string, Node>([[root, top]]);
  const ensure = (path: string): Node => {
    let node = nodes.get(path);
    if (node) return node;
    const i = path.lastIndexOf(':');
    node = { path, name: i < 0 ? path : path.slice(i + 1), groups: [], jobs: [], counts: emptyCounts(), total: 0 };
    nodes.set(path, node);
    ensure(parentPath(path)).groups.push(node);
    return node;
  };
  if (isFilterEmpty(filter)) {
    for (const group of groups) if (group.path !== root && inSubtree(group.path, root)) ensure(group.path);
  }
  const matches = jobMatcher(filter);
  for (const job of jobs) {
    if (inSubtree(job.group, root) && matches(job)) ensure(job.group).jobs.push(job);
  }

  const total = (node: Node): void => {
    for (const job of node.jobs) node.counts[job.status]++;
    node.total = node.jobs.length;
    for (const child of node.groups) {
      total(child);
      node.total += child.total;
      for (const s of STATUSES) node.counts[s] += child.counts[s];
    }
  };
  total(top);

  const rows: Row[] = [];
  const emit = (node: Node, level: number): void => {
    node.groups.sort((a, b) => byName.compare(a.name, b.name));
    node.jobs.sort(newestFirst);
    const setSize = node.groups.length + node.jobs.length;
    let pos = 0;
    for (const child of node.groups) {
      const expanded = !collapsed.has(child.path);
      rows.push({ kind: 'group', key: `g:${child.path}`, path: child.path, name: child.name, level, expanded, counts: child.counts, total: child.total, setSize, posInSet: ++pos });
      if (expanded) emit(child, level + 1);
    }
    for (const job of node.jobs) rows.push({ kind: 'job', key: `j:${job.id}`, job, level, setSize, posInSet: ++pos });
  };
  emit(top, 1);
  return { rows, matched: top.total };
}

/** Jobs per status over all jobs under `root` (for the filter buttons). */
export function countStatuses(jobs: Iterable<JobInfo>, root: string): StatusCounts {
  const counts = emptyCounts();
  for (const job of jobs) if (inSubtree(job.group, root)) counts[job.status]++;
  return counts;
}
