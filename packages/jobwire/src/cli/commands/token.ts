/**
 * `jobwire token create` and `jobwire token list`: the tokens file of a jobwire home
 * (`tokens.json`, mode 0600). They need no server; a running server re-reads the file when it
 * changes.
 * @module
 */
import { Option, type Command } from 'commander';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { resolveHome } from '@jobwire/client/home';
import { newToken, type TokenEntry } from '../../server/tokens.js';
import { homeOption } from '../connect.js';
import { CliError, UsageError } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { formatJson, formatTable } from '../format.js';
import { act, examples, print } from './common.js';

/** The whole of `tokens.json`; fields this CLI does not know are kept as they are. */
export interface TokensFile {
  tokens: TokenEntry[];
  [other: string]: unknown;
}

/** User names: a letter or digit, then letters, digits, `.`, `_`, `@`, `-`; at most 100. */
const USER_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$/;

/** Path of the tokens file of a home. */
export function tokensPath(home: string): string {
  return join(home, 'tokens.json');
}

/** A token shortened for listings: enough to tell tokens apart, not enough to use one. */
export function maskToken(token: string): string {
  return token.length <= 8 ? '…' : `${token.slice(0, 6)}…`;
}

/** Reads the tokens file; an empty one when it does not exist. */
export async function readTokens(path: string): Promise<TokensFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { tokens: [] };
    throw new CliError(`cannot read ${path}: ${(err as Error).message}`, ExitCode.FAILED, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new CliError(`${path} is not valid JSON; fix or remove it`, ExitCode.FAILED, { cause: err });
  }
  const file = parsed as Partial<TokensFile> | null;
  if (!file || typeof file !== 'object' || !Array.isArray(file.tokens)) {
    throw new CliError(`${path} has no "tokens" list; fix or remove it`, ExitCode.FAILED);
  }
  return file as TokensFile;
}

/**
 * Writes the tokens file whole: to a private temporary file, then renamed over the old one, so
 * a server re-reading it never sees half a file and the tokens are never readable by others.
 */
export async function writeTokens(path: string, file: TokensFile): Promise<void> {
  const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(temp, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    await chmod(temp, 0o600);
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw new CliError(`cannot write ${path}: ${(err as Error).message}`, ExitCode.FAILED, { cause: err });
  }
}

interface CreateOptions {
  home?: string;
  admin?: boolean;
  json?: boolean;
  redis?: string;
  redisPrefix: string;
}

interface ListOptions {
  home?: string;
  json?: boolean;
  reveal?: boolean;
}

/** Adds `jobwire token create` and `jobwire token list`. */
export function registerToken(program: Command): void {
  const token = program
    .command('token')
    .summary('create and list access tokens')
    .description(`Create and list the access tokens in the jobwire home's tokens.json. No server needed; a running server picks up changes by itself.`);

  token
    .command('create')
    .description('Create a token for USER and print it. Each user sees and touches only their own jobs.')
    .argument('<user>', 'user name (letters, digits, . _ @ -)')
    .option('--admin', 'an admin token')
    .option('--json', 'print {token, user, admin} as JSON')
    .addOption(new Option('--redis <url>', 'distributed mode: also add it to the token book every server on this Redis shares').env('JOBWIRE_REDIS'))
    .addOption(new Option('--redis-prefix <prefix>', 'distributed mode: prefix of every Redis key').env('JOBWIRE_REDIS_PREFIX').default('jobwire:'))
    .addOption(homeOption())
    .addHelpText(
      'after',
      examples(
        ['jobwire token create alice', 'prints the new token'],
        ['JOBWIRE_TOKEN=$(jobwire token create ci) jobwire jobs', 'use it right away'],
      ),
    )
    .action(
      act(async (user: string, opts: CreateOptions) => {
        if (!USER_NAME.test(user)) throw new UsageError(`bad user name "${user}": letters, digits, ".", "_", "@", "-", starting with a letter or digit, at most 100`);
        const home = resolveHome(opts.home);
        await mkdir(home, { recursive: true, mode: 0o700 });
        const path = tokensPath(home);
        const file = await readTokens(path);
        const entry: TokenEntry = { token: newToken(), user, admin: Boolean(opts.admin) };
        file.tokens.push(entry);
        await writeTokens(path, file);
        if (opts.redis !== undefined) await shareInRedis(opts.redis, opts.redisPrefix, entry);
        print(opts.json ? formatJson(entry) : entry.token);
      }),
    );

  token
    .command('list')
    .description('List the tokens: user, admin or not, and the start of each token.')
    .option('--json', 'a JSON array')
    .option('--reveal', 'show whole tokens')
    .addOption(homeOption())
    .addHelpText('after', examples(['jobwire token list', 'USER  ADMIN  TOKEN, one row per token']))
    .action(
      act(async (opts: ListOptions) => {
        const file = await readTokens(tokensPath(resolveHome(opts.home)));
        const entries = file.tokens.map((t) => ({
          user: String(t.user),
          admin: t.admin === true,
          token: opts.reveal ? String(t.token) : maskToken(String(t.token)),
        }));
        if (opts.json) print(formatJson(entries));
        else if (entries.length > 0) print(formatTable(['USER', 'ADMIN', 'TOKEN'], entries.map((e) => [e.user, e.admin ? 'yes' : 'no', e.token])));
      }),
    );
}

/** Adds a token to the shared token book in Redis (loaded on demand: only this option needs Redis). */
async function shareInRedis(url: string, prefix: string, entry: TokenEntry): Promise<void> {
  const { openRedisStore } = await import('../../store/redis/index.js');
  const { shareTokens } = await import('../../server/shared-tokens.js');
  const store = await openRedisStore({ url, prefix, connectionName: 'jobwire:cli' });
  try {
    await shareTokens(store, [entry]);
  } finally {
    await store.close();
  }
}
