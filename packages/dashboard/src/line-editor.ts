/**
 * A small line discipline for interactive jobs without a terminal (`interactive: true`, no
 * `tty`). Such a job reads a pipe: nothing echoes what is typed and Enter sends a carriage
 * return a program does not expect. Like a terminal in cooked mode, this echoes keys locally,
 * lets Backspace and Ctrl-U edit the line, and sends it with a newline on Enter; Ctrl-D on an
 * empty line ends the input. Tty jobs get every key as it is; their pty does all of this.
 * @module
 */

/** Where a {@link LineEditor} sends things. */
export interface LineEditorSink {
  /** Shows text in the terminal (local echo). */
  echo(text: string): void;
  /** Sends text to the job's stdin. */
  send(text: string): void;
  /** Ends the job's stdin. */
  end(): void;
}

/** Length of an escape sequence at `i` (CSI, SS3 or a two-byte one), so arrow keys are ignored. */
function escapeLength(data: string, i: number): number {
  const next = data[i + 1];
  if (next === '[') {
    let j = i + 2;
    while (j < data.length && !/[\x40-\x7e]/.test(data[j]!)) j++;
    return j + 1 - i;
  }
  if (next === 'O') return 3;
  return next === undefined ? 1 : 2;
}

/** See the module comment. */
export class LineEditor {
  private line: string[] = [];

  constructor(private readonly sink: LineEditorSink) {}

  /** Handles what the terminal reports: typed keys and pasted text. */
  input(data: string): void {
    for (let i = 0; i < data.length; ) {
      const c = data[i]!;
      if (c === '\x1b') {
        i += escapeLength(data, i);
        continue;
      }
      if (c === '\r' || c === '\n') {
        this.sink.echo('\r\n');
        this.sink.send(this.line.join('') + '\n');
        this.line = [];
        i += c === '\r' && data[i + 1] === '\n' ? 2 : 1;
        continue;
      }
      if (c === '\x7f' || c === '\b') {
        if (this.line.length > 0) {
          this.line.pop();
          this.sink.echo('\b \b');
        }
      } else if (c === '\x15') {
        this.sink.echo('\b \b'.repeat(this.line.length));
        this.line = [];
      } else if (c === '\x04') {
        // As in a terminal: on an empty line end of input, else send the line without a newline.
        if (this.line.length === 0) this.sink.end();
        else this.flush();
      } else if (c === '\x03') {
        this.sink.echo('^C\r\n');
        this.line = [];
      } else if (c >= ' ' || c === '\t') {
        const ch = String.fromCodePoint(data.codePointAt(i)!);
        this.line.push(ch);
        this.sink.echo(ch);
        i += ch.length;
        continue;
      }
      i++;
    }
  }

  /** What is typed on the current line and not sent yet. */
  get typed(): string {
    return this.line.join('');
  }

  /**
   * Wraps job output that arrives while a line is half typed, the way shells do: the typed
   * text is taken off the screen, the output written, and the typed text drawn again after it,
   * so the two never mix on one line.
   */
  aroundOutput(output: string): string {
    if (this.line.length === 0) return output;
    return `\x1b[${this.line.length}D\x1b[K${output}${this.typed}`;
  }

  /** Sends what was typed on the current line, without a newline (before end of input). */
  flush(): void {
    if (this.line.length === 0) return;
    this.sink.send(this.line.join(''));
    this.line = [];
  }
}
