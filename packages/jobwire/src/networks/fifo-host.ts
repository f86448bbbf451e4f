/**
 * The wrapper a network runs an executable in when its command names pipes as `{in.NAME}` /
 * `{out.NAME}` (MARVELO's `-i`/`-o`): it makes a named pipe (FIFO) for each, puts their paths
 * into the arguments, and runs the command. Its own stdin carries every input and its stdout
 * every output, multiplexed (`mux.ts`); an input or output not named in the command is the
 * command's stdin or stdout. The command's stderr is the wrapper's. It exits as the command did.
 *
 * Usage (made by `run.ts`, not by hand): `node fifo-host.js CONFIG_JSON -- COMMAND ARGS...`,
 * CONFIG_JSON `{"inputs":[{"name":"a","fifo":true}],"outputs":[...]}`.
 * @module
 */
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, constants, createReadStream, createWriteStream, mkdtempSync, openSync, rmSync } from 'node:fs';
import { constants as osConstants, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { Demux, muxData, muxRecord } from './mux.js';

/** A port of the wrapper: a pipe of the job, as a FIFO or as the command's stdin/stdout. */
export interface FifoPort {
  name: string;
  fifo: boolean;
}

/** What `run.ts` hands the wrapper. */
export interface FifoHostConfig {
  inputs: FifoPort[];
  outputs: FifoPort[];
}

/** Puts the FIFO paths into the arguments. */
export function substitute(args: readonly string[], paths: ReadonlyMap<string, string>): string[] {
  return args.map((arg) => arg.replace(/\{(in|out)\.([A-Za-z0-9][A-Za-z0-9_-]*)\}/g, (whole, dir: string, name: string) => paths.get(`${dir}.${name}`) ?? whole));
}

function main(): void {
  const [configText, dashes, program, ...args] = process.argv.slice(2);
  if (configText === undefined || dashes !== '--' || program === undefined) {
    process.stderr.write('usage: fifo-host CONFIG_JSON -- COMMAND ARGS...\n');
    process.exit(2);
  }
  const config = JSON.parse(configText) as FifoHostConfig;
  const dir = mkdtempSync(join(tmpdir(), 'jobwire-fifos-'));
  const paths = new Map<string, string>();
  for (const [dirName, ports] of [['in', config.inputs], ['out', config.outputs]] as const) {
    ports.forEach((port, i) => {
      if (port.fifo) paths.set(`${dirName}.${port.name}`, join(dir, `${dirName}-${i}`));
    });
  }
  if (paths.size > 0) execFileSync('mkfifo', ['-m', '600', ...paths.values()]);
  const stdinPort = config.inputs.findIndex((p) => !p.fifo);
  const stdoutPort = config.outputs.findIndex((p) => !p.fifo);
  const child = spawn(program, substitute(args, paths), { stdio: [stdinPort >= 0 ? 'pipe' : 'ignore', stdoutPort >= 0 ? 'pipe' : 2, 'inherit'] });
  let exited = false;

  // Inputs: records from our stdin to each port.
  const sinks: Array<Writable | undefined> = config.inputs.map((port, i) => {
    const sink = port.fifo ? createWriteStream(paths.get(`in.${port.name}`)!) : i === stdinPort ? child.stdin! : undefined;
    sink?.on('error', () => {}); // the command closed its end: what it did not read is dropped
    return sink;
  });
  const demux = new Demux();
  process.stdin.on('data', (bytes: Buffer) => {
    for (const { port, data } of demux.push(bytes)) {
      const sink = sinks[port];
      if (sink === undefined) continue;
      if (data.byteLength === 0) {
        sink.end();
        sinks[port] = undefined;
      } else if (!sink.write(data)) {
        process.stdin.pause();
        sink.once('drain', () => process.stdin.resume());
      }
    }
  });
  process.stdin.on('end', () => {
    for (const sink of sinks) sink?.end();
  });

  // Outputs: each port's bytes to our stdout as records; a port's end as an empty record.
  let open = config.outputs.length;
  const opened = new Set<number>();
  const finish = (): void => {
    if (!exited || open > 0) return;
    rmSync(dir, { recursive: true, force: true });
    process.stdout.end(() => process.exit(exitCode));
  };
  config.outputs.forEach((port, i) => {
    const source: Readable = port.fifo ? createReadStream(paths.get(`out.${port.name}`)!) : child.stdout!;
    source.on('open', () => opened.add(i));
    if (!port.fifo) opened.add(i);
    source.on('data', (data: Buffer) => {
      for (const record of muxData(i, data)) {
        if (!process.stdout.write(record)) {
          source.pause();
          process.stdout.once('drain', () => source.resume());
        }
      }
    });
    const close = (): void => {
      if (!opened.has(-1 - i)) {
        opened.add(-1 - i);
        process.stdout.write(muxRecord(i, Buffer.alloc(0)));
        open--;
        finish();
      }
    };
    source.on('end', close);
    source.on('error', close);
  });

  let exitCode = 0;
  child.on('error', (error) => {
    process.stderr.write(`jobwire: cannot run ${program}: ${error.message}\n`);
    exitCode = 127;
  });
  child.on('close', (code, signal) => {
    exited = true;
    exitCode = exitCode || (code ?? 128 + (signal === null ? 0 : (osConstants.signals as Record<string, number>)[signal] ?? 1));
    // FIFOs the command never opened: open the other end, so our pending opens return (and end).
    config.outputs.forEach((port, i) => {
      if (port.fifo && !opened.has(i)) unblock(paths.get(`out.${port.name}`)!, constants.O_WRONLY);
    });
    config.inputs.forEach((port) => {
      if (port.fifo) unblock(paths.get(`in.${port.name}`)!, constants.O_RDONLY);
    });
    finish();
  });
}

function unblock(path: string, flags: number): void {
  try {
    closeSync(openSync(path, flags | constants.O_NONBLOCK));
  } catch {
    // Nobody waits on the other end.
  }
}

// Blocked FIFO opens each hold a libuv thread: leave room for more than the default four.
process.env.UV_THREADPOOL_SIZE ??= '64';
main();
