/**
 * A Lua helper shared by the scripts that close a job's output (`jwCloseOutput` in `streams.ts`,
 * `jwFinishRun` in `workers.ts`), placed in their body after the prelude.
 * @module
 */

/**
 * Lua: `closeOutput(id, fin)` marks a job's output complete (`oc`), with `fin` (its final
 * status as JSON, '' when not known) kept in `st:ID` and sent with the close message; once only.
 * Also part of `jwFinishRun` (`workers.ts`), which closes a worker's job's output as it ends it.
 */
export const CLOSE_OUTPUT = `
local function closeOutput(id, fin)
  local st = stKey(id)
  local f = redis.call('HMGET', st, 'out', 'err', 'oc')
  if f[3] == '1' then return end
  local message = 'c' .. fmt(num(f[1]) + num(f[2]))
  redis.call('HSET', st, 'oc', '1')
  if fin ~= '' then
    redis.call('HSET', st, 'fin', fin)
    message = message .. '|' .. fin
  end
  redis.call('PUBLISH', evChannel(id), message)
end
`;
