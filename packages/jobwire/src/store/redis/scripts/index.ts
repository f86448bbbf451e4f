/**
 * The Lua scripts of the Redis store and the distributed layer, registered on an ioredis
 * connection as commands (EVALSHA, falling back to EVAL after a Redis restart emptied the
 * script cache). Each script is one atomic operation with one name; see `jobs.ts`,
 * `streams.ts` and `workers.ts`.
 * @module
 */
import type { Redis } from 'ioredis';
import * as jobs from './jobs.js';
import { prelude, type PreludeOptions } from './prelude.js';
import * as streams from './streams.js';
import type { ScriptDef } from './script-def.js';
import * as workers from './workers.js';

export type { ScriptDef } from './script-def.js';

/** Every script, by command name. */
export const SCRIPTS: readonly ScriptDef[] = [...Object.values(jobs), ...Object.values(streams), ...Object.values(workers)];

/** Arguments of a script call: ARGV after the prefix. */
export type ScriptArg = string | number | Buffer;

/** Calls scripts by name on one connection. */
export interface ScriptRunner {
  /** Runs a script; bulk replies come back as strings. */
  run<T = unknown>(name: string, ...args: ScriptArg[]): Promise<T>;
  /** Runs a script; bulk replies come back as Buffers (for binary data). */
  runBuffer<T = unknown>(name: string, ...args: ScriptArg[]): Promise<T>;
}

type Command = (...args: ScriptArg[]) => Promise<unknown>;

/** Registers every script on `redis` and returns a runner that passes `prefix` as ARGV[1]. */
export function defineScripts(redis: Redis, prefix: string, options: PreludeOptions): ScriptRunner {
  const head = prelude(options);
  for (const script of SCRIPTS) {
    if (typeof (redis as unknown as Record<string, unknown>)[script.name] !== 'function') {
      redis.defineCommand(script.name, { numberOfKeys: 0, lua: head + script.lua });
    }
  }
  const commands = redis as unknown as Record<string, Command>;
  return {
    run: <T>(name: string, ...args: ScriptArg[]) => commands[name]!.call(redis, prefix, ...args) as Promise<T>,
    runBuffer: <T>(name: string, ...args: ScriptArg[]) => commands[`${name}Buffer`]!.call(redis, prefix, ...args) as Promise<T>,
  };
}
