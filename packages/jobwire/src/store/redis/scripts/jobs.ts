/**
 * The job operations of the Redis store, one Lua script each: a state change, the indexes it
 * moves the job between and the event announcing it happen in one atomic step, so every
 * reader (and every event replay) sees them together.
 *
 * ARGV[1] is the key prefix in every script (see `prelude.ts`). A script that finds nothing to
 * do returns nil; refusals are error replies starting with a code (`CONFLICT`, `NOTFOUND`) that
 * `errors.ts` turns into jobwire errors.
 * @module
 */
import type { ScriptDef } from './script-def.js';

/**
 * Creates a Queued job with its missing groups (an `add` event each, then one for the job).
 * ARGV: prefix, id, info JSON, description JSON, job token, lex member, preferred node, pools
 * (comma list), retries. A resend of the very same creation (same info, token and description)
 * answers the stored job, so a command repeated after a reconnect does not fail.
 */
export const createJob: ScriptDef = {
  name: 'jwCreateJob',
  lua: `
local id, infoText, desc, token, lex = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local k = jobKey(id)
if redis.call('EXISTS', k) == 1 then
  local f = redis.call('HMGET', k, 'created', 'token', 'desc')
  if f[1] == infoText and f[2] == token and f[3] == desc then return record({ key = k }) end
  return redis.error_reply('CONFLICT a job with id ' .. id .. ' exists already')
end
local info = cjson.decode(infoText)
local owner, group, createdAt = info.owner, info.group, info.createdAt
local paths = ancestors(group)
for _, path in ipairs(paths) do
  if redis.call('HSETNX', groupsHKey(owner), path, createdAt) == 1 then
    redis.call('ZADD', groupsZKey(owner), 0, createdAt .. '\\0' .. path)
    local parent = string.match(path, '^(.*):[^:]*$')
    emit(owner, path, 'add', cjson.encode({
      id = 'group:' .. path, type = 'group', name = string.match(path, '([^:]*)$'), path = path,
      parent = parent or cjson.null, owner = owner, createdAt = createdAt }))
  end
end
redis.call('HSET', k, 'info', infoText, 'created', infoText, 'desc', desc, 'token', token, 'pid', '',
  'lex', lex, 'node', '', 'queue', info.queue, 'pnode', ARGV[7], 'ppools', ARGV[8], 'retries', ARGV[9],
  'attempt', '1', 'placed', '')
redis.call('ZADD', subtreeKey(owner, ''), 0, lex)
for _, path in ipairs(paths) do redis.call('ZADD', subtreeKey(owner, path), 0, lex) end
redis.call('SADD', K.queues, info.queue)
enqueue({ key = k, id = id, info = info, lex = lex })
emit(owner, group, 'add', withResult(infoText, false))
return record({ key = k })
`,
};

/**
 * Queued → Running on `node`. ARGV: prefix, id, startedAt, pid ('' = none), node ('' = none),
 * process identity JSON ('' = none).
 * Nil when the job is not Queued, or was placed on another worker (distributed mode: a worker
 * taken for dead must not start a job handed on meanwhile); the same call again (a resend)
 * answers the job.
 */
export const markRunning: ScriptDef = {
  name: 'jwMarkRunning',
  lua: `
local job = loadJob(ARGV[2])
if not job then return nil end
local startedAt, pid, node = ARGV[3], ARGV[4], ARGV[5]
if job.info.status == 'Running' and job.info.startedAt == startedAt and job.node == node
  and redis.call('HGET', job.key, 'pid') == pid then
  return record(job)
end
if job.info.status ~= 'Queued' then return nil end
local placed = redis.call('HGET', job.key, 'placed')
if placed and placed ~= '' and placed ~= node then return nil end
leaveStatus(job)
job.info.status = 'Running'
job.info.startedAt = startedAt
if node == '' then job.info.node = cjson.null else job.info.node = node end
-- A job that starts no longer waits.
job.info.reason = cjson.null
redis.call('HSET', job.key, 'pid', pid, 'node', node, 'proc', ARGV[6])
redis.call('SADD', runningQKey(job.info.queue), job.id)
redis.call('SADD', K.running, job.id)
if node ~= '' then redis.call('SADD', runningAtKey(node), job.id) end
saveJob(job)
return record(job)
`,
};

/** Sets the progress message of a job that is not final. ARGV: prefix, id, message. */
export const setProgress: ScriptDef = {
  name: 'jwSetProgress',
  lua: `
local job = loadJob(ARGV[2])
if not job or (job.info.status ~= 'Queued' and job.info.status ~= 'Running') then return nil end
job.info.progress = ARGV[3]
saveJob(job)
return record(job)
`,
};

/**
 * Sets why a Queued job waits. ARGV: prefix, id, reason as JSON (a string or null). Restating
 * the reason it has changes nothing and appends no event, but still answers the job.
 */
export const setReason: ScriptDef = {
  name: 'jwSetReason',
  lua: `
local job = loadJob(ARGV[2])
if not job or (job.info.status ~= 'Queued' and job.info.status ~= 'Running') then return nil end
local reason = cjson.decode(ARGV[3])
if job.info.reason == reason then return record(job) end
job.info.reason = reason
saveJob(job)
return record(job)
`,
};

/**
 * Moves a job to a final status. ARGV: prefix, id, changed fields as JSON, result JSON text
 * ('' = none), mode: 'finish' (from Queued or Running; sets the result) or 'lose' (from Running,
 * or Queued in a worker's executor's own queue; the result is left alone). Nil when the job was
 * not in a status it may leave.
 */
export const finishJob: ScriptDef = {
  name: 'jwFinishJob',
  lua: `
local job = loadJob(ARGV[2])
if not job then return nil end
local s, mode = job.info.status, ARGV[5]
if mode == 'lose' then
  if s ~= 'Running' and not (s == 'Queued' and handedToExecutor(job)) then return nil end
elseif s ~= 'Queued' and s ~= 'Running' then
  return nil
end
return finish(job, ARGV[3], ARGV[4], mode == 'lose')
`,
};

/**
 * Running (or Queued in a worker's executor's own queue, see `handedToExecutor`) → Queued again,
 * for a job whose worker was lost, when its retry policy allows another attempt (which starts
 * afresh: the executor state of this one is dropped). ARGV: prefix, id, reason (gets `; starting it again (attempt N of M)`). Nil when the
 * job is not Running or has used its attempts. Its output so far stays; the next attempt appends.
 */
export const retryJob: ScriptDef = {
  name: 'jwRetryJob',
  lua: `
local job = loadJob(ARGV[2])
if not job or (job.info.status ~= 'Running' and not (job.info.status == 'Queued' and handedToExecutor(job))) then return nil end
local f = redis.call('HMGET', job.key, 'retries', 'attempt')
local allowed, done = num(f[1]), tonumber(f[2]) or 1
if done > allowed then return nil end
leaveStatus(job)
job.info.status = 'Queued'
job.info.startedAt = cjson.null
job.info.node = cjson.null
job.info.reason = ARGV[3] .. '; starting it again (attempt ' .. fmt(done + 1) .. ' of ' .. fmt(allowed + 1) .. ')'
redis.call('HSET', job.key, 'pid', '', 'proc', '', 'node', '', 'placed', '')
-- The next attempt starts afresh: nothing of this one's executor (a Slurm id) is followed again.
redis.call('HDEL', job.key, 'why', 'executorState')
redis.call('HINCRBY', job.key, 'attempt', 1)
-- A cancel meant for the lost attempt must not stop the next one.
redis.call('HDEL', stKey(job.id), 'cancel')
enqueue(job)
saveJob(job)
return record(job)
`,
};

/**
 * Deletes a final job with its streams and appends a `remove` event. ARGV: prefix, id.
 */
export const deleteJob: ScriptDef = {
  name: 'jwDeleteJob',
  lua: `
local id = ARGV[2]
local job = loadJob(id)
if not job then return redis.error_reply('NOTFOUND no job ' .. id) end
local s = job.info.status
if s == 'Queued' or s == 'Running' then
  return redis.error_reply('CONFLICT job ' .. id .. ' is ' .. s .. '; only a finished job can be deleted')
end
local owner = job.info.owner
redis.call('ZREM', subtreeKey(owner, ''), job.lex)
for _, path in ipairs(ancestors(job.info.group)) do redis.call('ZREM', subtreeKey(owner, path), job.lex) end
redis.call('UNLINK', job.key, stKey(id), idxKey(id), chanKey(id, '1'), chanKey(id, '2'), inKey(id))
emit(owner, job.info.group, 'remove', withResult(cjson.encode(job.info), job.result))
return 1
`,
};

/**
 * One page of an owner's jobs in a subtree, oldest first, filtered by status and name inside
 * Redis. ARGV: prefix, owner, group, after (lex member, '' = from the start), wanted, statuses
 * (comma list, '' = any), name filter on ('1'/'0'), name. Scans at most 2000 members per call:
 * answers {last member scanned ('' when the end was reached), info1, result1, info2, ...}.
 */
export const listJobs: ScriptDef = {
  name: 'jwListJobs',
  lua: `
local key = subtreeKey(ARGV[2], ARGV[3])
local min = '-'
if ARGV[4] ~= '' then min = '(' .. ARGV[4] end
local wanted = tonumber(ARGV[5])
local statuses = nil
if ARGV[6] ~= '' then
  statuses = {}
  for s in string.gmatch(ARGV[6], '[^,]+') do statuses[s] = true end
end
local byName, name = ARGV[7] == '1', ARGV[8]
local reply = { '' }
local found, scanned = 0, 0
while found < wanted and scanned < 2000 do
  local batch = redis.call('ZRANGEBYLEX', key, min, '+', 'LIMIT', 0, 200)
  if #batch == 0 then reply[1] = ''; return reply end
  for _, member in ipairs(batch) do
    scanned = scanned + 1
    reply[1] = member
    min = '(' .. member
    local id = string.match(member, '%z(.*)$')
    local f = redis.call('HMGET', jobKey(id), 'info', 'result')
    if f[1] then
      local keep = true
      if statuses or byName then
        local info = cjson.decode(f[1])
        if statuses and not statuses[info.status] then keep = false end
        if byName and info.name ~= name then keep = false end
      end
      if keep then
        reply[#reply + 1] = f[1]
        reply[#reply + 1] = f[2] or ''
        found = found + 1
        if found >= wanted then break end
      end
    end
  end
  if #batch < 200 and found < wanted then reply[1] = ''; return reply end
end
return reply
`,
};
