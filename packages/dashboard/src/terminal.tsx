/**
 * A job's output in an xterm.js terminal, and for interactive jobs its input.
 *
 * - Output: the SDK's `attach(id, { from: 0 })` replays everything the job wrote, then follows
 *   it live. For jobs without a terminal, stderr is written in red (SGR 31 … 39) so the two
 *   streams can be told apart; a tty job has one stream, coloured by the job itself.
 * - Flow control (xterm.js' watermark scheme): each write is counted until xterm reports it
 *   parsed; above {@link HIGH_WATER} pending bytes the attachment is paused (the server stops
 *   sending and later continues from storage), below {@link LOW_WATER} it resumes. A job that
 *   prints a flood cannot freeze the page.
 * - Input: tty jobs get every key as typed (their pty echoes and edits); jobs with a plain
 *   stdin pipe get a local line editor ({@link LineEditor}). "End input" sends end-of-input.
 * - Size: the terminal fills its box; for tty jobs every new size is sent to the job (SIGWINCH).
 * - Leaving the page (or closing the tab) detaches; the job runs on.
 * @module
 */
import { FitAddon } from '@xterm/addon-fit';
import { Terminal, type ITheme } from '@xterm/xterm';
import '@xterm/xterm/css/xterm.css';
import { useEffect, useRef, useState } from 'preact/hooks';
import type { Attachment, Client, OutputChannel } from '@jobwire/client';
import { exitText } from './format.js';
import { LineEditor } from './line-editor.js';
import type { Theme } from './theme.js';

/** Bytes written to xterm but not yet parsed, above which output is paused. */
export const HIGH_WATER = 256 * 1024;
/** Pending bytes below which paused output resumes. */
export const LOW_WATER = 32 * 1024;

const THEMES: Record<Theme, ITheme> = {
  light: {
    background: '#fbfcfd',
    foreground: '#1f2328',
    cursor: '#1f2328',
    selectionBackground: '#b6d7ff',
    black: '#24292f',
    red: '#cf222e',
    green: '#116329',
    yellow: '#7d4e00',
    blue: '#0550ae',
    magenta: '#8250df',
    cyan: '#1b7c83',
    white: '#6e7781',
    brightBlack: '#57606a',
    brightRed: '#a40e26',
    brightGreen: '#1a7f37',
    brightYellow: '#633c01',
    brightBlue: '#218bff',
    brightMagenta: '#a475f9',
    brightCyan: '#3192aa',
    brightWhite: '#8c959f',
  },
  dark: {
    background: '#0d1117',
    foreground: '#e6edf3',
    cursor: '#e6edf3',
    selectionBackground: '#264f78',
    black: '#484f58',
    red: '#ff7b72',
    green: '#3fb950',
    yellow: '#d29922',
    blue: '#58a6ff',
    magenta: '#bc8cff',
    cyan: '#39c5cf',
    white: '#b1bac4',
    brightBlack: '#6e7681',
    brightRed: '#ffa198',
    brightGreen: '#56d364',
    brightYellow: '#e3b341',
    brightBlue: '#79c0ff',
    brightMagenta: '#d2a8ff',
    brightCyan: '#56d4dd',
    brightWhite: '#f0f6fc',
  },
};

/** The job facts the terminal needs. */
export interface TerminalJob {
  id: string;
  interactive: boolean;
  tty: boolean;
}

/** Props of {@link JobTerminal}. */
export interface JobTerminalProps {
  client: Client;
  job: TerminalJob;
  theme: Theme;
  /** Put the keyboard focus in the terminal once attached (interactive jobs). */
  autoFocus?: boolean;
}

type AttachState = 'connecting' | 'attached' | 'ended' | 'failed';

/** See the module comment. */
export function JobTerminal({ client, job, theme, autoFocus }: JobTerminalProps) {
  const hostRef = useRef<HTMLDivElement>(null);
  const termRef = useRef<Terminal | undefined>(undefined);
  const endInputRef = useRef<(() => void) | undefined>(undefined);
  const [state, setState] = useState<AttachState>('connecting');
  const [message, setMessage] = useState<string | undefined>(undefined);
  const [size, setSize] = useState<{ cols: number; rows: number } | undefined>(undefined);
  const [stdinOpen, setStdinOpen] = useState(job.interactive);
  const [attempt, setAttempt] = useState(0);
  const [reader, setReader] = useState(false);

  useEffect(() => {
    if (termRef.current) termRef.current.options.theme = THEMES[theme];
  }, [theme]);

  // xterm.js' screen reader mode mirrors the screen into an accessible live region; it costs
  // time on every write, so it is the user's choice.
  useEffect(() => {
    if (termRef.current) termRef.current.options.screenReaderMode = reader;
  }, [reader]);

  useEffect(() => {
    const host = hostRef.current!;
    const term = new Terminal({
      convertEol: !job.tty,
      scrollback: 10_000,
      cursorBlink: job.interactive,
      cursorInactiveStyle: job.interactive ? 'outline' : 'none',
      disableStdin: !job.interactive,
      fontFamily: 'ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, Consolas, monospace',
      fontSize: 13,
      theme: THEMES[theme],
      screenReaderMode: reader,
    });
    termRef.current = term;
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(host);
    if (!job.interactive) term.write('\x1b[?25l'); // no cursor where nobody types

    let attachment: Attachment | undefined;
    let disposed = false;
    let inputOpen = job.interactive;
    let pending = 0;
    let paused = false;
    let pauses = 0;
    host.dataset.pauses = '0';
    setState('connecting');
    setMessage(undefined);
    setStdinOpen(job.interactive);

    const closeInput = (why?: string): void => {
      if (!inputOpen) return;
      inputOpen = false;
      term.options.disableStdin = true;
      setStdinOpen(false);
      if (why) setMessage(why);
    };
    const send = (data: string | Uint8Array): void => {
      if (!attachment || !inputOpen) return;
      attachment.stdin.write(data).catch((err: unknown) => {
        if (!disposed) closeInput(`Input is closed: ${(err as Error).message}`);
      });
    };
    const editor = job.interactive && !job.tty ? new LineEditor({ echo: (t) => term.write(t), send, end: () => endInputRef.current?.() }) : undefined;
    endInputRef.current = () => {
      if (!attachment || !inputOpen) return;
      editor?.flush();
      const a = attachment;
      closeInput();
      a.stdin.end().catch((err: unknown) => {
        if (!disposed) setMessage(`Could not end the input: ${(err as Error).message}`);
      });
    };
    term.onData((data) => {
      if (!inputOpen) return;
      if (editor) editor.input(data);
      else send(data);
    });
    term.onBinary((data) => {
      // Mouse reports of tty programs: one byte per char.
      if (!editor) send(Uint8Array.from(data, (c) => c.charCodeAt(0) & 0xff));
    });
    // Shift+Tab leaves the terminal (Tab too for line-edited jobs): no keyboard trap.
    term.attachCustomKeyEventHandler((e) => !(e.key === 'Tab' && (e.shiftKey || !job.tty)));
    term.onResize(({ cols, rows }) => {
      setSize({ cols, rows });
      if (job.tty) attachment?.resize(cols, rows);
    });

    let fitFrame = 0;
    const refit = (): void => {
      cancelAnimationFrame(fitFrame);
      fitFrame = requestAnimationFrame(() => {
        if (disposed || host.clientWidth === 0) return;
        try {
          fit.fit();
        } catch {
          // Not laid out yet; the next resize fits.
        }
      });
    };
    try {
      fit.fit();
    } catch {
      refit();
    }
    setSize({ cols: term.cols, rows: term.rows });
    const ro = new ResizeObserver(refit);
    ro.observe(host);

    const decoders: Record<OutputChannel, TextDecoder> = { stdout: new TextDecoder(), stderr: new TextDecoder() };
    const pump = async (a: Attachment): Promise<void> => {
      for await (const chunk of a.output) {
        if (disposed) return;
        const text = decoders[chunk.channel].decode(chunk.data, { stream: true });
        const n = chunk.data.byteLength;
        pending += n;
        const coloured = chunk.channel === 'stderr' && !job.tty ? `\x1b[31m${text}\x1b[39m` : text;
        term.write(editor ? editor.aroundOutput(coloured) : coloured, () => {
          pending -= n;
          if (paused && pending < LOW_WATER) {
            paused = false;
            a.resume();
          }
        });
        if (!paused && pending > HIGH_WATER) {
          paused = true;
          host.dataset.pauses = String(++pauses);
          a.pause();
        }
      }
    };

    client
      .attach(job.id, { from: 0 })
      .then(async (a) => {
        if (disposed) {
          a.detach();
          return;
        }
        attachment = a;
        setState('attached');
        if (job.tty) a.resize(term.cols, term.rows);
        if (autoFocus && job.interactive) term.focus();
        try {
          await pump(a);
          const exit = await a.exit;
          if (disposed) return;
          closeInput();
          const how = exitText(exit);
          // After everything written so far is parsed: start on a fresh line only if needed.
          term.write('', () => {
            if (disposed) return;
            const fresh = term.buffer.active.cursorX === 0 ? '' : '\r\n';
            term.write(`${fresh}\x1b[2m[${exit.status}${how ? `, ${how}` : ''}]\x1b[22m\r\n`);
          });
          setState('ended');
        } catch (err) {
          if (disposed) return;
          closeInput();
          setState('failed');
          setMessage(`Lost the connection to the job: ${(err as Error).message}`);
        }
      })
      .catch((err: unknown) => {
        if (disposed) return;
        setState('failed');
        setMessage(`Cannot attach: ${(err as Error).message}`);
      });

    return () => {
      disposed = true;
      endInputRef.current = undefined;
      cancelAnimationFrame(fitFrame);
      ro.disconnect();
      // Detaching closes the socket; the job keeps running.
      attachment?.detach();
      term.dispose();
      termRef.current = undefined;
    };
  }, [client, job.id, job.tty, job.interactive, attempt]);

  const stateText: Record<AttachState, string> = {
    connecting: 'Attaching…',
    attached: 'Attached: following live',
    ended: 'The job has ended',
    failed: 'Not attached',
  };

  return (
    <section class="terminal-panel" aria-labelledby="output-title">
      <div class="terminal-bar">
        <h2 id="output-title">Output</h2>
        <span class={`attach-state attach-${state}`} role="status">
          {stateText[state]}
        </span>
        {!job.tty ? (
          <span class="legend muted">
            stdout · <span class="legend-stderr">stderr in red</span>
          </span>
        ) : null}
        {size ? (
          <span class="muted term-size" data-cols={size.cols} data-rows={size.rows} title={job.tty ? 'terminal size sent to the job' : 'terminal size'}>
            {size.cols}×{size.rows}
          </span>
        ) : null}
        <span class="spacer" />
        <button type="button" aria-pressed={reader} onClick={() => setReader((r) => !r)} title="Mirror the terminal for screen readers (slower with much output)">
          Screen reader mode
        </button>
        {state === 'failed' ? (
          <button type="button" onClick={() => setAttempt((n) => n + 1)}>
            Reattach
          </button>
        ) : null}
        {job.interactive ? (
          <button type="button" class="end-input" disabled={!stdinOpen || state !== 'attached'} onClick={() => endInputRef.current?.()} title="Send end-of-input (like Ctrl-D)">
            {stdinOpen ? 'End input' : 'Input ended'}
          </button>
        ) : null}
      </div>
      {message ? (
        <p class="notice" role="alert">
          {message}
        </p>
      ) : null}
      <div
        ref={hostRef}
        class="terminal-host"
        role="group"
        aria-label={job.interactive ? 'Job terminal: type here to send input; Shift+Tab leaves' : 'Job output'}
        data-state={state}
      />
      {job.interactive ? (
        <p class="hint muted">
          {job.tty
            ? 'Keys go to the job as typed. Shift+Tab moves the focus out of the terminal.'
            : 'Lines are sent when you press Enter; Ctrl-D on an empty line ends the input. Tab moves the focus out.'}
        </p>
      ) : null}
    </section>
  );
}
