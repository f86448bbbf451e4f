/**
 * Environments sent as differences: a job's environment is mostly its server's (about 40
 * variables, 2 KB of JSON), the same for every job. The job host's protocol (version 4) and the
 * warm function runners send it once, then per job only what differs.
 * @module
 */

/** How an environment differs from a base: variables `set` (added or changed) and `unset` (removed). Both absent: the base itself. */
export interface EnvDiff {
  set?: Record<string, string>;
  unset?: string[];
}

/** What `env` changes of `base`; empty parts left out. */
export function envDiff(base: Record<string, string>, env: Record<string, string>): EnvDiff {
  let set: Record<string, string> | undefined;
  let unset: string[] | undefined;
  for (const key of Object.keys(env)) {
    const value = env[key]!;
    if (base[key] !== value || !Object.hasOwn(base, key)) (set ??= Object.create(null) as Record<string, string>)[key] = value;
  }
  for (const key of Object.keys(base)) if (!Object.hasOwn(env, key)) (unset ??= []).push(key);
  return { ...(set !== undefined ? { set } : {}), ...(unset !== undefined ? { unset } : {}) };
}

/** `base` changed by `diff`; `base` itself (the same object) when the diff changes nothing. */
export function applyEnvDiff(base: Record<string, string>, diff: EnvDiff): Record<string, string> {
  const set = diff.set ?? {};
  const unset = diff.unset ?? [];
  const keys = Object.keys(set);
  if (unset.length === 0 && keys.length === 0) return base;
  const env: Record<string, string> = Object.assign(Object.create(null) as Record<string, string>, base);
  for (const key of keys) env[key] = set[key]!;
  for (const key of unset) delete env[key];
  return env;
}
