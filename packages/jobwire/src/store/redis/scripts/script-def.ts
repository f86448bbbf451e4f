/**
 * The shape of one Lua script of the Redis store. It lives apart from `index.ts` (which gathers
 * every script) so that the script modules do not import the module that imports them.
 * @module
 */

/** One script: its command name and its body (the prelude is put in front). */
export interface ScriptDef {
  name: string;
  lua: string;
}
