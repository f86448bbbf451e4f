/**
 * `jobwire token create|list|map|revoke`: the token book of a jobwire home (`tokens.json`, mode
 * 0600), which holds digests only — a token is printed once, by `create`, and never again.
 * They need no server; a running server re-reads the file when it changes.
 * @module
 */
import { Option, type Command } from 'commander';
import { mkdir, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { resolveHome } from '@jobwire/client/home';
import { findAccount, OS_USER_NAME } from '../../executors/local/os-account.js';
import {
  adminTokenPath,
  fingerprint,
  newToken,
  readTokenFile,
  tokenDigest,
  TokenFileError,
  validEntries,
  writeTokenFile,
  type TokenEntry,
  type TokensFile,
} from '../../auth/tokens.js';
import { homeOption } from '../connect.js';
import { CliError, UsageError } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { formatJson, formatTable } from '../format.js';
import { act, examples, print } from './common.js';

/** User names: a letter or digit, then letters, digits, `.`, `_`, `@`, `-`; at most 100. */
const USER_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$/;

interface RedisOptions {
  redis?: string;
  redisPrefix: string;
}

interface CreateOptions extends RedisOptions {
  home?: string;
  admin?: boolean;
  osUser?: string;
  json?: boolean;
}

interface ListOptions {
  home?: string;
  json?: boolean;
  reveal?: boolean;
}

interface MapOptions extends RedisOptions {
  home?: string;
  unset?: boolean;
}

interface RevokeOptions extends RedisOptions {
  home?: string;
  json?: boolean;
}

/** Runs `fn` on the home's tokens file (read, migrated from plain text if need be); CLI errors for file trouble. */
function withTokenFile<T>(home: string, fn: (file: TokensFile) => T): T {
  try {
    return fn(readTokenFile(home));
  } catch (err) {
    if (err instanceof TokenFileError) throw new CliError(err.message, ExitCode.FAILED, { cause: err });
    throw err;
  }
}

/** Writes the tokens file; CLI errors for file trouble. */
function save(home: string, file: TokensFile): void {
  try {
    writeTokenFile(home, file);
  } catch (err) {
    if (err instanceof TokenFileError) throw new CliError(err.message, ExitCode.FAILED, { cause: err });
    throw err;
  }
}

function checkUser(user: string): void {
  if (!USER_NAME.test(user)) throw new UsageError(`bad user name "${user}": letters, digits, ".", "_", "@", "-", starting with a letter or digit, at most 100`);
}

/** Refuses an OS account name this machine does not know. */
async function checkOsUser(name: string): Promise<void> {
  if (!OS_USER_NAME.test(name)) throw new UsageError(`bad OS account name "${name}": a letter or "_", then letters, digits, ".", "_", "-", at most 32`);
  if ((await findAccount(name)) === undefined) throw new UsageError(`there is no OS account "${name}" on this machine (create it first, e.g. useradd -m ${name})`);
}

/** `--redis URL` and `--redis-prefix P` for the commands that change the book. */
function redisOptions(cmd: Command, what: string): Command {
  return cmd
    .addOption(new Option('--redis <url>', `distributed mode: also ${what} the token book every server on this Redis shares`).env('JOBWIRE_REDIS'))
    .addOption(new Option('--redis-prefix <prefix>', 'distributed mode: prefix of every Redis key').env('JOBWIRE_REDIS_PREFIX').default('jobwire:'));
}

/** Adds `jobwire token create|list|map|revoke`. */
export function registerToken(program: Command): void {
  const token = program
    .command('token')
    .summary('create, list, map and revoke access tokens')
    .description(
      "Manage the access tokens in the jobwire home's tokens.json, which keeps only a digest of each token: " +
        'a token is shown once, when it is created. No server needed; a running server picks up changes by itself.',
    );

  redisOptions(
    token
      .command('create')
      .summary('create a token for USER and print it (shown only now)')
      .description(
        'Create a token for USER and print it — the only time it is shown. Each user sees and touches only their own jobs. ' +
          "When the server runs as root, USER's jobs run as the OS account given with --os-user (needed for every user but the admin).",
      )
      .argument('<user>', 'user name (letters, digits, . _ @ -)')
      .option('--admin', 'an admin token (jobs run as the server\'s own OS account)')
      .option('--os-user <name>', "OS account USER's jobs run as when the server runs as root (for all of USER's tokens)")
      .option('--json', 'print {token, user, admin, osUser, fingerprint} as JSON'),
    'add it to',
  )
    .addOption(homeOption())
    .addHelpText(
      'after',
      examples(
        ['jobwire token create alice', 'prints the new token'],
        ['jobwire token create bob --os-user bob', "a root server runs bob's jobs as the OS account bob"],
        ['JOBWIRE_TOKEN=$(jobwire token create ci) jobwire jobs', 'use it right away'],
      ),
    )
    .action(
      act(async (user: string, opts: CreateOptions) => {
        checkUser(user);
        if (opts.admin && opts.osUser !== undefined) throw new UsageError("--admin and --os-user do not go together: the admin's jobs run as the server's own OS account");
        if (opts.osUser !== undefined) await checkOsUser(opts.osUser);
        const home = resolveHome(opts.home);
        await mkdir(home, { recursive: true, mode: 0o700 });
        const secret = newToken();
        const { created, changed } = withTokenFile(home, (file) => {
          const mine = validEntries(file).filter((t) => t.user === user);
          // One mapping per user: a new one applies to all the user's tokens, else the new token takes theirs.
          const osUser = opts.osUser ?? mine.find((t) => t.osUser !== undefined)?.osUser;
          if (opts.osUser !== undefined) for (const t of mine) t.osUser = opts.osUser;
          const created: TokenEntry = {
            sha256: tokenDigest(secret),
            user,
            admin: Boolean(opts.admin),
            ...(osUser !== undefined && !opts.admin ? { osUser } : {}),
            createdAt: new Date().toISOString(),
          };
          file.tokens.push(created);
          save(home, file);
          return { created, changed: opts.osUser !== undefined ? [...mine, created] : [created] };
        });
        if (opts.redis !== undefined) await shareInRedis(opts.redis, opts.redisPrefix, changed, []);
        print(
          opts.json
            ? formatJson({ token: secret, user, admin: created.admin, ...(created.osUser ? { osUser: created.osUser } : {}), fingerprint: fingerprint(created.sha256) })
            : secret,
        );
      }),
    );

  token
    .command('list')
    .summary('list users, OS accounts and token fingerprints')
    .description('List the tokens: user, admin or not, OS account, and a fingerprint of each (never the token, which is not stored).')
    .option('--json', 'a JSON array')
    .addOption(new Option('--reveal').hideHelp())
    .addOption(homeOption())
    .addHelpText('after', examples(['jobwire token list', 'USER  ADMIN  OS USER  FINGERPRINT  CREATED, one row per token']))
    .action(
      act(async (opts: ListOptions) => {
        if (opts.reveal) throw new UsageError('tokens cannot be shown again: tokens.json keeps only their digests; create a new token (jobwire token create) and revoke the old one');
        const home = resolveHome(opts.home);
        const entries = withTokenFile(home, (file) =>
          validEntries(file).map((t) => ({
            user: t.user,
            admin: t.admin === true,
            osUser: t.osUser ?? null,
            fingerprint: fingerprint(t.sha256),
            createdAt: t.createdAt ?? null,
          })),
        );
        if (opts.json) print(formatJson(entries));
        else if (entries.length > 0) {
          print(formatTable(['USER', 'ADMIN', 'OS USER', 'FINGERPRINT', 'CREATED'], entries.map((e) => [e.user, e.admin ? 'yes' : 'no', e.osUser ?? '-', e.fingerprint, e.createdAt ?? '-'])));
        }
      }),
    );

  redisOptions(
    token
      .command('map')
      .summary("set or remove the OS account USER's jobs run as under root")
      .description("Set the OS account USER's jobs run as when the server runs as root (all of USER's tokens), or remove it with --unset.")
      .argument('<user>', 'a user with at least one token')
      .argument('[os-user]', 'an OS account of this machine')
      .option('--unset', "remove the mapping: a root server then refuses USER's jobs"),
    'change it in',
  )
    .addOption(homeOption())
    .addHelpText('after', examples(['jobwire token map alice alice', "alice's jobs run as the OS account alice"], ['jobwire token map alice --unset', 'no account: a root server refuses her jobs']))
    .action(
      act(async (user: string, osUser: string | undefined, opts: MapOptions) => {
        checkUser(user);
        if ((osUser === undefined) === !opts.unset) throw new UsageError('give either an OS account or --unset');
        if (osUser !== undefined) await checkOsUser(osUser);
        const home = resolveHome(opts.home);
        const changed = withTokenFile(home, (file) => {
          const mine = validEntries(file).filter((t) => t.user === user);
          if (mine.length === 0) throw new CliError(`no tokens for user "${user}" in ${home} (create one: jobwire token create ${user} --os-user NAME)`, ExitCode.FAILED);
          if (osUser !== undefined && mine.some((t) => t.admin)) throw new UsageError(`"${user}" is an admin: the admin's jobs run as the server's own OS account`);
          for (const t of mine) {
            if (osUser === undefined) delete t.osUser;
            else t.osUser = osUser;
          }
          save(home, file);
          return mine;
        });
        if (opts.redis !== undefined) await shareInRedis(opts.redis, opts.redisPrefix, changed, []);
      }),
    );

  redisOptions(
    token
      .command('revoke')
      .summary("revoke a user's tokens, or one token by fingerprint")
      .description("Revoke USER's tokens, or the one token with this FINGERPRINT (as `token list` shows it, or its start). Servers stop accepting them within seconds.")
      .argument('<user-or-fingerprint>', 'a user name, or a token fingerprint')
      .option('--json', 'print the revoked tokens as JSON'),
    'remove them from',
  )
    .addOption(homeOption())
    .addHelpText('after', examples(['jobwire token revoke alice', "all of alice's tokens"], ['jobwire token revoke Xk3f9QaZ1b', 'one token, by fingerprint']))
    .action(
      act(async (target: string, opts: RevokeOptions) => {
        const home = resolveHome(opts.home);
        const revoked = withTokenFile(home, (file) => {
          const entries = validEntries(file);
          const byUser = entries.filter((t) => t.user === target);
          const byPrint = target.length >= 6 ? entries.filter((t) => t.sha256.startsWith(target)) : [];
          if (byUser.length > 0 && byPrint.length > 0) throw new UsageError(`"${target}" is both a user and the start of a token fingerprint; give a longer fingerprint`);
          if (byPrint.length > 1) throw new UsageError(`"${target}" starts ${byPrint.length} fingerprints; give more of it`);
          const gone = byUser.length > 0 ? byUser : byPrint;
          if (gone.length === 0) throw new CliError(`no user and no token fingerprint "${target}" in ${home} (see jobwire token list)`, ExitCode.FAILED);
          const now = new Date().toISOString();
          file.tokens = file.tokens.filter((t) => !gone.includes(t));
          file.revoked = [...(Array.isArray(file.revoked) ? file.revoked : []), ...gone.map((t) => ({ sha256: t.sha256, user: t.user, revokedAt: now }))];
          save(home, file);
          return gone;
        });
        const adminGone = await dropRevokedAdminToken(home, revoked);
        if (opts.redis !== undefined) await shareInRedis(opts.redis, opts.redisPrefix, [], revoked.map((t) => t.sha256));
        if (opts.json) print(formatJson(revoked.map((t) => ({ user: t.user, admin: t.admin === true, fingerprint: fingerprint(t.sha256) }))));
        else print(`revoked ${revoked.length} token(s): ${revoked.map((t) => `${t.user} ${fingerprint(t.sha256)}`).join(', ')}`);
        if (adminGone) process.stderr.write(`jobwire: removed ${adminTokenPath(home)}, the admin token this machine used; the next server start creates a new one\n`);
      }),
    );
}

/** Removes the home's `token` file when its token was revoked; true when it did. */
async function dropRevokedAdminToken(home: string, revoked: readonly TokenEntry[]): Promise<boolean> {
  let local: string;
  try {
    local = readFileSync(adminTokenPath(home), 'utf8').trim();
  } catch {
    return false;
  }
  if (!revoked.some((t) => t.sha256 === tokenDigest(local))) return false;
  await rm(adminTokenPath(home), { force: true });
  return true;
}

/** Changes the shared token book in Redis (loaded on demand: only these options need Redis). */
async function shareInRedis(url: string, prefix: string, entries: readonly TokenEntry[], revoked: readonly string[]): Promise<void> {
  const { openRedisStore } = await import('../../store/index.js');
  const { shareTokens } = await import('../../auth/shared-tokens.js');
  const store = await openRedisStore({ url, prefix, connectionName: 'jobwire:cli' });
  try {
    await shareTokens(store, entries, revoked);
  } finally {
    await store.close();
  }
}
