/**
 * Progress on long waits: a one-line spinner on stderr, drawn only when stderr is a terminal, so
 * scripts and pipes see nothing of it and stdout is never touched.
 * @module
 */
import { printable } from './format.js';

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const INTERVAL_MS = 80;

/** A spinner line; every method is a no-op when it is not drawn. */
export interface Spinner {
  /** Whether anything is drawn (stderr is a TTY). */
  readonly active: boolean;
  /** Replaces the text after the spinner. */
  update(text: string): void;
  /** Clears the line and stops. */
  stop(): void;
}

/** Starts a spinner on `stream` (stderr) when it is a TTY; otherwise a silent one. */
export function startSpinner(text: string, stream: NodeJS.WriteStream = process.stderr): Spinner {
  if (!stream.isTTY) return { active: false, update() {}, stop() {} };
  let frame = 0;
  const clean = (t: string): string => printable(t).replace(/\n/g, ' ');
  let current = clean(text);
  let stopped = false;
  const draw = (): void => {
    const width = Math.max(10, (stream.columns || 80) - 3);
    const line = current.length > width ? `${current.slice(0, width - 1)}…` : current;
    stream.write(`\r\x1b[K${FRAMES[frame]} ${line}`);
    frame = (frame + 1) % FRAMES.length;
  };
  const timer = setInterval(draw, INTERVAL_MS);
  // A spinner must never be what keeps the process alive.
  timer.unref();
  draw();
  return {
    active: true,
    update(next) {
      current = clean(next);
    },
    stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      stream.write('\r\x1b[K');
    },
  };
}
