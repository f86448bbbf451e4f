/**
 * Small pieces shared by the pages and the widget.
 * @module
 */
import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { JobStatus } from '@jobwire/client';
import { onLinkClick } from './router.js';

const GLYPHS: Record<JobStatus, string> = {
  Queued: '◷',
  Running: '▶',
  Success: '✓',
  Failed: '✕',
  Cancelled: '⊘',
  Lost: '?',
};

/** A status as a badge: a glyph and the word, so colour is never the only cue. */
export function StatusBadge({ status }: { status: JobStatus }) {
  return (
    <span class={`badge badge-${status.toLowerCase()}`} data-status={status}>
      <span class="badge-glyph" aria-hidden="true">
        {GLYPHS[status]}
      </span>
      {status}
    </span>
  );
}

/** An in-app link: navigates without a reload, still opens in a new tab with a modifier. */
export function Link({ href, children, ...rest }: { href: string; children: ComponentChildren; class?: string; tabIndex?: number; title?: string; 'aria-label'?: string; 'aria-current'?: 'page' }) {
  return (
    <a href={href} onClick={(e) => onLinkClick(e, href)} {...rest}>
      {children}
    </a>
  );
}

/** The current time, refreshed every `ms` while `active`. */
export function useNow(ms: number, active = true): number {
  const [now, setNow] = useState(Date.now);
  useEffect(() => {
    if (!active) return;
    setNow(Date.now());
    const timer = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(timer);
  }, [ms, active]);
  return now;
}
