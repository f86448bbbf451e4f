/**
 * How times, durations, commands and statuses read on the page.
 * @module
 */
import type { JobDescription, JobInfo } from '@jobwire/client';

const pad = (n: number): string => String(n).padStart(2, '0');

/** `14:03:27` for today, `2025-11-23 14:03` otherwise (local time). */
export function formatTime(iso: string | null | undefined, now = new Date()): string {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (d.toDateString() === now.toDateString()) return `${time}:${pad(d.getSeconds())}`;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

/** Full local date and time, for tooltips and the job page. */
export function formatFullTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

/** `850 ms`, `12 s`, `3 min 05 s`, `2 h 07 min`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${pad(s % 60)} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${pad(m % 60)} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/** How long a job ran (or has been running, at `now`); '' when it has not started. */
export function jobDuration(job: JobInfo, now: number): string {
  if (!job.startedAt) return '';
  const start = Date.parse(job.startedAt);
  const end = job.endedAt ? Date.parse(job.endedAt) : now;
  return formatDuration(end - start);
}

/** Quotes a word for a POSIX shell when it needs it. */
export function shellQuote(word: string): string {
  if (word !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The command of a description as a shell line (`js` jobs: their code or module). */
export function commandLine(description: JobDescription | undefined): string {
  if (!description) return '';
  if (description.executable) return [description.executable, ...(description.arguments ?? [])].map(shellQuote).join(' ');
  if (description.js?.module) return `js module ${description.js.module}${description.js.export ? ` (${description.js.export})` : ''}`;
  if (description.js?.code) return `js: ${description.js.code}`;
  return '';
}

/** How a final job ended, in words: `exit code 0`, `signal SIGTERM`. */
export function exitText(job: Pick<JobInfo, 'exitCode' | 'signal'>): string {
  if (job.signal) return `signal ${job.signal}`;
  if (job.exitCode !== null && job.exitCode !== undefined) return `exit code ${job.exitCode}`;
  return '';
}
