/**
 * Where the CLI gets its SDK instance. Every command that talks to a server goes through
 * {@link connect}, the one place that constructs the client.
 * @module
 */
import { Option, type Command } from 'commander';
import { createConnection } from 'node:net';
import type { JobwireApi } from '@jobwire/client';
import { readAdminToken, readCaFile, readServerRecord, resolveHome } from '@jobwire/client/home';
import { CliError, noServerMessage, UsageError, type ServerTarget } from './errors.js';
import { ExitCode } from './exit-codes.js';

/** `--url`, `--token`, `--home`, `--ca` as commander parsed them (flag, else environment). */
export interface ConnectionOptions {
  url?: string;
  token?: string;
  home?: string;
  /** Path of a PEM CA file. */
  ca?: string;
}

/** Adds `--url`, `--token`, `--home` and `--ca` (with their environment variables) to a command. */
export function addConnectionOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--url <url>', 'server URL (default: the one the server recorded in the home)').env('JOBWIRE_URL').helpGroup('Connection:'))
    .addOption(new Option('--token <token>', "access token (default: the home's admin token)").env('JOBWIRE_TOKEN').helpGroup('Connection:'))
    .addOption(homeOption().helpGroup('Connection:'))
    .addOption(
      new Option('--ca <file>', "PEM CA certificate(s) to trust for an https:// server instead of the system's (default: the file the server recorded in the home, for its URL)")
        .env('JOBWIRE_CA')
        .helpGroup('Connection:'),
    );
}

/** `--home DIR`, also for commands that only read the home. */
export function homeOption(): Option {
  return new Option('--home <dir>', 'jobwire home (default: $XDG_DATA_HOME/jobwire or ~/.local/share/jobwire)').env('JOBWIRE_HOME');
}

/** Server URL, token and home, from options, environment and home in that order. */
export interface Target extends ServerTarget {
  token?: string;
  /** CA file given with --ca or JOBWIRE_CA (the one recorded in the home is the SDK's to find). */
  ca?: string;
}

/** `JOBWIRE_URL=` (set but empty) means "not set", as it does for most tools. */
function given(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

/**
 * Works out where to connect without connecting: option (or its environment variable), then the
 * URL and admin token the server recorded in the home.
 */
export async function resolveTarget(options: ConnectionOptions): Promise<Target> {
  const home = resolveHome(given(options.home) ?? given(process.env.JOBWIRE_HOME));
  const url = given(options.url) ?? given(process.env.JOBWIRE_URL) ?? (await readServerRecord(home))?.url;
  const token = given(options.token) ?? given(process.env.JOBWIRE_TOKEN) ?? (await readAdminToken(home));
  const ca = given(options.ca) ?? given(process.env.JOBWIRE_CA);
  const target: Target = { home };
  if (url) target.url = url.replace(/\/+$/, '');
  if (token) target.token = token;
  if (ca) target.ca = ca;
  return target;
}

/**
 * Where {@link connect} last pointed this process's SDK. An error on that connection is about
 * this URL, even when the home records another by the time it is reported (a server started
 * again on another port while `jobwire attach` waited to reconnect).
 */
let connected: Target | undefined;

/** The target of the last {@link connect} of this process, if any. */
export function connectedTarget(): Target | undefined {
  return connected;
}

/**
 * The SDK instance for a command. Fails with exit code 3 when no server URL is known at all;
 * a URL where nothing listens is reported by the first request (ConnectionError `no_server`).
 */
export async function connect(options: ConnectionOptions): Promise<JobwireApi> {
  const target = await resolveTarget(options);
  if (!target.url) throw new CliError(noServerMessage(target), ExitCode.NO_SERVER);
  let parsed: URL;
  try {
    parsed = new URL(target.url);
  } catch {
    throw new UsageError(`not a URL: ${target.url} (a server URL starts with http:// or https://, e.g. http://127.0.0.1:7700)`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new UsageError(`the server URL must start with http:// or https:// (got ${target.url})`);
  const ca = target.ca === undefined ? undefined : await readCaFile(target.ca, '--ca / JOBWIRE_CA');
  connected = target;
  // Loaded lazily: commands that never talk to a server (token, server) do not pay for the SDK.
  const { Client } = await import('@jobwire/client');
  return new Client({ url: target.url, token: target.token, home: target.home, ...(ca !== undefined ? { ca } : {}) });
}

/** How long {@link serverListening} waits for a TCP connection. */
const PROBE_TIMEOUT_MS = 2_000;

/**
 * Whether anything accepts TCP connections at the URL's host and port. Used after a failed
 * request to tell "no server there" from other connection trouble (fetch, for one, reports some
 * refusals without an errno).
 */
export function serverListening(url: string): Promise<boolean> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return Promise.resolve(false);
  }
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = Number(parsed.port || (parsed.protocol === 'https:' ? 443 : 80));
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    const done = (up: boolean): void => {
      socket.destroy();
      resolve(up);
    };
    socket.setTimeout(PROBE_TIMEOUT_MS, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}
