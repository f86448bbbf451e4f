/**
 * Lua shared by the store's scripts: key names (from `keys.ts`), number formatting, events,
 * and moving a job between the indexes of its status. Every script starts with it; ARGV[1] is
 * always the key prefix.
 *
 * Scripts build their keys from the prefix (as BullMQ's do from its own), so they run on a
 * standalone Redis (or a primary with replicas), not on Redis Cluster.
 * @module
 */
import { luaKeyFunctions } from '../keys.js';

/** Options baked into the prelude. */
export interface PreludeOptions {
  /** Approximate length the all-owners event stream is trimmed to. */
  eventsMaxLen: number;
}

/** The prelude's Lua text. */
export function prelude(options: PreludeOptions): string {
  return `
local P = ARGV[1]
${luaKeyFunctions()}
local EVENTS_MAXLEN = ${Math.floor(options.eventsMaxLen)}

-- A stored number (or nothing) as a Lua number.
local function num(v) if v == false or v == nil or v == '' then return 0 end return tonumber(v) end
-- An integer as text without an exponent (positions go far beyond 1e14 only in theory).
local function fmt(n) return string.format('%.0f', n) end
-- The integer part of a stream entry id 'N-1'.
local function idNum(id) return tonumber(string.match(id, '^(%d+)')) end

-- 'a:b:c' -> {'a', 'a:b', 'a:b:c'}; '' -> {}
local function ancestors(path)
  local out = {}
  if path == '' then return out end
  local at = 1
  while true do
    local i = string.find(path, ':', at, true)
    if not i then break end
    out[#out + 1] = string.sub(path, 1, i - 1)
    at = i + 1
  end
  out[#out + 1] = path
  return out
end

-- Appends an event to the owner's stream (kept) and the all-owners stream (trimmed). Event ids
-- are an INCR counter; both streams use 'N-1' as the entry id, so XRANGE finds an event by id.
local function emit(owner, group, verb, info)
  local id = redis.call('INCR', K.eventId)
  local sid = fmt(id) .. '-1'
  redis.call('XADD', ownerEventsKey(owner), sid, 'v', verb, 'g', group, 'i', info)
  redis.call('XADD', K.events, 'MAXLEN', '~', EVENTS_MAXLEN, sid, 'o', owner, 'v', verb, 'g', group, 'i', info)
  return id
end

-- A job's info JSON with its result (raw JSON text, or nothing) spliced in.
local function withResult(infoText, result)
  if not result or result == '' then result = 'null' end
  return string.sub(infoText, 1, -2) .. ',"result":' .. result .. '}'
end

-- Loads a job: nil when there is none.
local function loadJob(id)
  local k = jobKey(id)
  local f = redis.call('HMGET', k, 'info', 'result', 'lex', 'node')
  if not f[1] then return nil end
  return { key = k, id = id, info = cjson.decode(f[1]), result = f[2], lex = f[3], node = f[4] or '' }
end

-- Whether a Queued job was placed on a worker that handed it to its executor's own queue (a
-- Slurm job PENDING): it has a recorded executor state, so it was started there already.
local function handedToExecutor(job)
  local f = redis.call('HMGET', job.key, 'placed', 'executorState')
  return f[1] ~= false and f[1] ~= '' and f[2] ~= false and f[2] ~= ''
end

-- Stores a changed job's info and announces it.
local function saveJob(job, verb)
  local text = cjson.encode(job.info)
  redis.call('HSET', job.key, 'info', text)
  emit(job.info.owner, job.info.group, verb or 'update', withResult(text, job.result))
  return text
end

-- What the store hands back for a job: info, result, description, token, pid, process identity.
local function record(job)
  return redis.call('HMGET', job.key, 'info', 'result', 'desc', 'token', 'pid', 'proc')
end

-- Takes a job out of the indexes of its current status (before the status changes).
local function leaveStatus(job)
  local s = job.info.status
  if s == 'Queued' then
    redis.call('ZREM', queuedKey(job.info.queue), job.lex)
    redis.call('ZREM', K.pending, job.id)
    redis.call('ZREM', K.parked, job.id)
    redis.call('HDEL', K.pqueue, job.id)
  elseif s == 'Running' then
    redis.call('SREM', runningQKey(job.info.queue), job.id)
    redis.call('SREM', K.running, job.id)
    if job.node ~= '' then redis.call('SREM', runningAtKey(job.node), job.id) end
  end
end

-- Moves a job to a final status (the caller checked it may): the changed info fields (JSON), and
-- the result JSON text ('' = none) unless keepResult. The pid and process identity mean "while
-- running"; a finished job has none.
local function finish(job, changes, result, keepResult)
  leaveStatus(job)
  for key, value in pairs(cjson.decode(changes)) do job.info[key] = value end
  if not keepResult then
    if result == '' then
      job.result = false
      redis.call('HDEL', job.key, 'result')
    else
      job.result = result
      redis.call('HSET', job.key, 'result', result)
    end
  end
  redis.call('HSET', job.key, 'pid', '', 'proc', '')
  saveJob(job)
  return record(job)
end

-- This time in milliseconds (Redis's clock, the same for every server and worker).
local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Puts a job (back) into the queue of jobs waiting for placement, in its first place in line.
local function enqueue(job)
  redis.call('ZADD', queuedKey(job.info.queue), 0, job.lex)
  local score = redis.call('HGET', job.key, 'pseq')
  if not score then
    score = redis.call('INCR', K.seq)
    redis.call('HSET', job.key, 'pseq', score)
  end
  redis.call('HSET', job.key, 'pat', fmt(nowMs()))
  redis.call('ZADD', K.pending, score, job.id)
  redis.call('HSET', K.pqueue, job.id, job.info.queue)
end
`;
}
