/**
 * Entry point of the `jobwire` command (bin/jobwire.js imports this): runs the CLI on
 * process.argv, waits until stdout and stderr have been written, and exits with its code.
 * @module
 */
import { runCli } from './program.js';

/** Resolves once everything written to `stream` so far has been handed to the OS. */
function drained(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (stream.destroyed || !stream.writable) return resolve();
    stream.write('', () => resolve());
  });
}

// A closed pipe (`jobwire logs ID | head`) ends the CLI as SIGPIPE would end a shell command.
const SIGPIPE_EXIT = 128 + 13;
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    process.exit(err.code === 'EPIPE' ? SIGPIPE_EXIT : 1);
  });
}

const code = await runCli(process.argv);
await Promise.all([drained(process.stdout), drained(process.stderr)]);
// Exit now: an open attachment, stdin or keep-alive socket must not hold the CLI open.
process.exit(code);
