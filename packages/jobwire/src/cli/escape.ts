/**
 * ssh's escape for raw terminals: in raw mode every key goes to the job, Ctrl-C included, so the
 * only way to detach without killing anything is a sequence the job never sees: `~.` typed at
 * the start of a line. `~~` sends one `~`; a `~` followed by anything else is sent as typed.
 * @module
 */

const TILDE = 0x7e;
const DOT = 0x2e;
const CR = 0x0d;
const LF = 0x0a;

/** What to do with a chunk of keyboard input. */
export interface EscapeResult {
  /** Bytes to send to the job. */
  forward: Uint8Array;
  /** True when `~.` was typed: detach (bytes after it are dropped). */
  detach: boolean;
}

/** Scans keyboard input for `~.` at the start of a line. Keeps its state across chunks. */
export class EscapeScanner {
  private atLineStart = true;
  private heldTilde = false;

  /** Feeds one chunk of input. */
  push(input: Uint8Array): EscapeResult {
    const out: number[] = [];
    for (const byte of input) {
      if (this.heldTilde) {
        this.heldTilde = false;
        if (byte === DOT) return { forward: Uint8Array.from(out), detach: true };
        out.push(TILDE);
        if (byte === TILDE) {
          this.atLineStart = false;
          continue;
        }
      } else if (this.atLineStart && byte === TILDE) {
        // Held back until the next key says whether it is an escape.
        this.heldTilde = true;
        continue;
      }
      out.push(byte);
      this.atLineStart = byte === CR || byte === LF;
    }
    return { forward: Uint8Array.from(out), detach: false };
  }
}
