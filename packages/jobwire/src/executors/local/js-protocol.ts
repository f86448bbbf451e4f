/**
 * Messages on the IPC channel between the local executor and the function-job runner
 * (js-runner.ts). Types only: both sides switch over these unions exhaustively.
 * @module
 */
import type { JsFunction } from '@jobwire/client';

/** Executor → runner. */
export type ToRunner =
  /** The function to run; sent once, first. Over IPC rather than argv: code may be large. */
  | { type: 'start'; fn: JsFunction }
  /** Abort the function's AbortSignal (the job is being stopped). */
  | { type: 'abort' };

/** Runner → executor. */
export type FromRunner =
  /** The function called `progress(message)`. */
  | { type: 'progress'; message: string }
  /** The function returned; `json` is its value as JSON text, absent for `undefined`. */
  | { type: 'result'; json?: string }
  /** The function threw (or could not be loaded, or its value is not JSON): message and stack. */
  | { type: 'error'; error: string };

/** True for a well-formed {@link FromRunner} message (the child is not trusted to send one). */
export function isFromRunner(message: unknown): message is FromRunner {
  if (message === null || typeof message !== 'object') return false;
  const m = message as Record<string, unknown>;
  switch (m.type) {
    case 'progress':
      return typeof m.message === 'string';
    case 'result':
      return m.json === undefined || typeof m.json === 'string';
    case 'error':
      return typeof m.error === 'string';
    default:
      return false;
  }
}
