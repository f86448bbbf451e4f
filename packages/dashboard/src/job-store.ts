/**
 * What the page knows of the user's groups and jobs, kept up to date by the events socket
 * (moi's add / update / remove). Views subscribe and re-render once per batch of events.
 * @module
 */
import { useEffect, useState } from 'preact/hooks';
import type { GroupInfo, JobEvent, JobInfo } from '@jobwire/client';

/** Groups (by path) and jobs (by id), with a version that grows on every change. */
export class JobStore {
  readonly jobs = new Map<string, JobInfo>();
  readonly groups = new Map<string, GroupInfo>();
  /** False until the first snapshot arrived. */
  loaded = false;
  version = 0;
  private readonly listeners = new Set<() => void>();

  /** Replaces everything with a snapshot. */
  reset(events: JobEvent[]): void {
    this.jobs.clear();
    this.groups.clear();
    for (const event of events) this.one(event);
    this.loaded = true;
    this.changed();
  }

  /** Applies events in order. */
  apply(events: JobEvent[]): void {
    for (const event of events) this.one(event);
    this.changed();
  }

  /** Calls `listener` after every change; returns the unsubscribe function. */
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private one({ verb, info }: JobEvent): void {
    if (info.type === 'job') {
      if (verb === 'remove') this.jobs.delete(info.id);
      else this.jobs.set(info.id, info);
    } else if (verb === 'remove') {
      this.groups.delete(info.path);
    } else {
      this.groups.set(info.path, info);
    }
  }

  private changed(): void {
    this.version++;
    for (const listener of this.listeners) listener();
  }
}

/** Re-renders the calling component whenever `store` changes; returns its version. */
export function useStoreVersion(store: JobStore): number {
  const [version, setVersion] = useState(store.version);
  useEffect(() => {
    setVersion(store.version);
    return store.subscribe(() => setVersion(store.version));
  }, [store]);
  return version;
}
