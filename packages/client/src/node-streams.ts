/**
 * @jobwire/client/node — Node stream adapters for attachments: pipe a job's output into a file
 * or a terminal, pipe a file or `process.stdin` into a job. Node only (imports `node:stream`),
 * hence its own entry point.
 *
 * ```ts
 * import { toReadable, stdinWritable } from '@jobwire/client/node';
 * process.stdin.pipe(stdinWritable(attachment));
 * toReadable(attachment).pipe(process.stdout);
 * ```
 * @module
 */
import { Readable, Writable } from 'node:stream';
import type { Attachment } from './api.js';
import type { OutputChannel } from './types.js';

async function* bytesOf(attachment: Attachment, channel: OutputChannel | undefined): AsyncGenerator<Uint8Array> {
  for await (const chunk of attachment.output) {
    if (channel === undefined || chunk.channel === channel) yield chunk.data;
  }
}

/**
 * A Readable of the attachment's output bytes: both channels in arrival order, or only
 * `channel`. It ends when the job's exit status arrived (or on detach) and errors when the
 * attachment fails. Reading slowly slows the server down (output flow control); destroying the
 * stream stops reading output but does not detach.
 *
 * It consumes `attachment.output`, which has a single consumer.
 */
export function toReadable(attachment: Attachment, channel?: OutputChannel): Readable {
  return Readable.from(bytesOf(attachment, channel), { objectMode: false });
}

/**
 * A Writable into the job's stdin. Each write's callback waits for the server's stdin window,
 * so `pipe()` and `pipeline()` get real backpressure; `end()` sends end-of-input after the last
 * byte. Destroying it does not close stdin or detach.
 */
export function stdinWritable(attachment: Attachment): Writable {
  return new Writable({
    write(chunk: Uint8Array, _encoding, callback) {
      attachment.stdin.write(chunk).then(() => callback(), callback);
    },
    final(callback) {
      attachment.stdin.end().then(() => callback(), callback);
    },
  });
}
