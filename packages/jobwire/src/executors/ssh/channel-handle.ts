/**
 * The stdin side of a job on an SSH exec channel, shared by the ssh executor's interactive jobs
 * and `srun` on a Slurm login node: writes with backpressure, EOF (the terminal's EOF character
 * for a tty), resize of the channel's pty, its output and how it ended.
 * @module
 */
import type { OutputChannel } from '@jobwire/client';
import type { ClientChannel } from 'ssh2';
import type { ProcessResult } from '../types.js';
import { channelEnd, type ChannelEnd } from './connection.js';

/** A job on an exec channel: its stdin and terminal size. */
export abstract class ChannelHandle {
  /** The channel, once open; undefined when it could not be opened. */
  protected abstract readonly channel: Promise<ClientChannel | undefined>;
  /** Whether the channel has a pty. */
  protected abstract readonly tty: boolean;

  /** Writes to the channel; resolves once the channel takes more (backpressure). */
  async writeStdin(data: Uint8Array): Promise<void> {
    const ch = await this.channel;
    if (ch === undefined || !ch.writable) return;
    if (!ch.write(data)) {
      await new Promise<void>((resolve) => {
        ch.once('drain', resolve);
        ch.once('close', resolve);
      });
    }
  }

  /** EOF: the channel's end for pipes, the terminal's EOF character for a tty. */
  closeStdin(): void {
    void this.channel.then((ch) => {
      if (ch === undefined || !ch.writable) return;
      if (this.tty) ch.write('\x04');
      else ch.end();
    });
  }

  /** Changes the pty's size (tty jobs). */
  resize(cols: number, rows: number): void {
    if (!this.tty) return;
    void this.channel.then((ch) => ch?.setWindow(rows, cols, 0, 0));
  }
}

/**
 * Passes a channel's output to `onOutput` (its stderr as stdout on a tty, as a terminal shows
 * it) until the channel closes; resolves to how it ended.
 */
export function pumpChannel(channel: ClientChannel, tty: boolean, onOutput: (channel: OutputChannel, data: Buffer) => void): Promise<ChannelEnd> {
  channel.on('data', (data: Buffer) => onOutput('stdout', data));
  channel.stderr.on('data', (data: Buffer) => onOutput(tty ? 'stdout' : 'stderr', data));
  return channelEnd(channel);
}

/** The result of an interactive job's channel that ended so: Lost when the connection dropped under it. */
export function channelResult(ended: ChannelEnd, where: string): ProcessResult {
  if (ended.code === null && ended.signal === null) {
    return { exitCode: null, signal: null, lost: `the connection to ${where} dropped while the interactive job ran (an interactive job cannot be followed again)` };
  }
  return { exitCode: ended.code, signal: ended.signal };
}
