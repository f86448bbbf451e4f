/**
 * The worker registry and placement, one Lua script each (distributed mode).
 *
 * A worker is `worker:NAME` (instance id, pools, slots, labels, heartbeat time), kept alive by
 * `alive:NAME` (its instance id with a TTL that heartbeats renew) and loaded by the jobs in
 * `load:NAME:CLASS` (CLASS = the job's queue class: multi, single, unlimited) — placed on it or
 * running there. Load sets rather than counters: releasing twice is harmless, so a crash never
 * leaves a slot counted forever.
 *
 * Placement picks, for each waiting job in arrival order, the worker it goes to (MARVELO's
 * rules): the preferred node if it is alive and has a free slot of the job's class; else the
 * job's pools in priority order, in each the live worker with the most free slots of that class.
 * It reserves the slot in the same step, so two placers never give one slot twice.
 * @module
 */
import { CLOSE_OUTPUT } from './close-output.js';
import type { ScriptDef } from './script-def.js';

/** Classes of load, after the local executor's queues. */
const CLASS_OF = `
local function classOf(queue)
  if queue == 'single' or queue == 'unlimited' then return queue end
  return 'multi'
end
local CLASSES = { 'multi', 'single', 'unlimited' }
`;

/**
 * Registers a worker instance. ARGV: prefix, name, instance, pools (comma list with ALL),
 * slots, labels JSON, host, pid, startedAt, heartbeat time, ttl ms, instance taken over ('' for
 * none), multi jobs it takes ahead of its slots (absent: 0). Answers {'ok'}, or {'reap', old instance} when a dead earlier instance of the same name
 * still holds the entry (its jobs must be reaped first). A live instance of the same name is a
 * conflict — except the one taken over: an instance whose process is known to be gone, within
 * its liveness, whose entry (load, Running jobs) the new one takes as it is. Moves jobs
 * that no live worker could take back to waiting: this worker may take them.
 */
export const registerWorker: ScriptDef = {
  name: 'jwRegisterWorker',
  lua: `
local name, instance, takeover = ARGV[2], ARGV[3], ARGV[12]
local alive = redis.call('GET', aliveKey(name))
if alive and alive ~= instance and (takeover == '' or alive ~= takeover) then
  return redis.error_reply('CONFLICT a worker named ' .. name .. ' is running already; pick another --name')
end
local old = redis.call('HGET', workerKey(name), 'instance')
if old and old ~= instance and old ~= takeover then return { 'reap', old } end
redis.call('HSET', workerKey(name), 'instance', instance, 'pools', ARGV[4], 'slots', ARGV[5], 'labels', ARGV[6],
  'host', ARGV[7], 'pid', ARGV[8], 'startedAt', ARGV[9], 'heartbeatAt', ARGV[10], 'ahead', ARGV[13] or '0')
redis.call('SADD', K.workers, name)
redis.call('SET', aliveKey(name), instance, 'PX', ARGV[11])
local parked = redis.call('ZRANGE', K.parked, 0, -1, 'WITHSCORES')
for i = 1, #parked, 2 do redis.call('ZADD', K.pending, parked[i + 1], parked[i]) end
redis.call('DEL', K.parked)
return { 'ok' }
`,
};

/**
 * Renews a worker's liveness. ARGV: prefix, name, instance, ttl ms, heartbeat time. Answers 0
 * when the registry no longer holds this instance (it was reaped): the worker must stop its
 * jobs, which were marked Lost, and register again.
 */
export const heartbeat: ScriptDef = {
  name: 'jwHeartbeat',
  lua: `
local name, instance = ARGV[2], ARGV[3]
if redis.call('HGET', workerKey(name), 'instance') ~= instance then return 0 end
redis.call('SET', aliveKey(name), instance, 'PX', ARGV[4])
redis.call('HSET', workerKey(name), 'heartbeatAt', ARGV[5])
return 1
`,
};

/**
 * Removes a worker whose liveness key expired (or that is shutting down), in one step so a late
 * heartbeat cannot bring half of it back. ARGV: prefix, name, instance ('' = whichever),
 * 'force' to remove it even while alive (its own clean shutdown). Jobs placed on it that had not
 * started wait again, in their old place — except those it handed to its executor's own queue
 * (Queued with an `executorState`: a Slurm job PENDING), which count as its Running jobs. Answers
 * nil when there was nothing to remove, else {instance, ids of the jobs Running on it (and handed
 * to its executor's queue)}: the caller decides, per job, Lost or retry. The
 * process identities of those jobs go to `orphans@NAME`, for the next instance of the worker.
 */
export const dropWorker: ScriptDef = {
  name: 'jwDropWorker',
  lua: `
${CLASS_OF}
local name, want = ARGV[2], ARGV[3]
if ARGV[4] ~= 'force' and redis.call('EXISTS', aliveKey(name)) == 1 then return nil end
local instance = redis.call('HGET', workerKey(name), 'instance')
if not instance then
  redis.call('SREM', K.workers, name)
  return nil
end
if want ~= '' and instance ~= want then return nil end
local handed = {}
for _, cls in ipairs(CLASSES) do
  for _, id in ipairs(redis.call('SMEMBERS', loadKey(name, cls))) do
    local f = redis.call('HMGET', jobKey(id), 'info', 'placed', 'pseq', 'executorState')
    local info = f[1] and f[2] == name and cjson.decode(f[1])
    if info and info.status == 'Queued' and f[4] and f[4] ~= '' then
      -- Handed to the worker's executor's own queue (a Slurm job PENDING): it was started
      -- there, so it is settled as a Running job of the worker is, not placed again.
      handed[#handed + 1] = id
    elseif info and info.status == 'Queued' then
      redis.call('HSET', jobKey(id), 'placed', '')
      redis.call('ZADD', K.pending, f[3] or redis.call('INCR', K.seq), id)
      redis.call('HSET', K.pqueue, id, info.queue)
    end
  end
  redis.call('DEL', loadKey(name, cls))
end
redis.call('DEL', workerKey(name))
redis.call('SREM', K.workers, name)
if ARGV[4] == 'force' then redis.call('DEL', aliveKey(name)) end
local reply = { instance }
for _, id in ipairs(redis.call('SMEMBERS', runningAtKey(name))) do
  reply[#reply + 1] = id
  -- Its processes may outlive the worker: the next instance of this name stops them.
  local proc = redis.call('HGET', jobKey(id), 'proc')
  if proc and proc ~= '' then redis.call('HSET', orphansKey(name), id, proc) end
end
for _, id in ipairs(handed) do reply[#reply + 1] = id end
return reply
`,
};

/**
 * Lua: `placeJobs(maxScan, patience, UNLIMITED, quick)`, a placement pass as `jwPlaceJobs`
 * describes (which runs it alone); `jwFinishRun` runs a quick one after it freed a slot.
 * Needs CLASS_OF before it.
 */
const PLACE_JOBS = `
local function placeJobs(maxScan, patience, UNLIMITED, quick)
  local now = nowMs()
  local workers, pools = {}, {}
  for _, name in ipairs(redis.call('SMEMBERS', K.workers)) do
    if redis.call('EXISTS', aliveKey(name)) == 1 then
      local f = redis.call('HMGET', workerKey(name), 'pools', 'slots', 'ahead')
      if f[1] then
        -- Room is counted from the load (jobs placed or running there): 'free' slots, and 'ahead'
        -- = slots plus the multi jobs it holds ahead of a free slot (prefetch), used only for a job
        -- that finds no free slot on any worker it may go to.
        local slots = { multi = tonumber(f[2]), single = 1, unlimited = UNLIMITED }
        local ahead = { multi = tonumber(f[3] or '0') or 0, single = 0, unlimited = 0 }
        local load = {}
        for _, cls in ipairs(CLASSES) do load[cls] = redis.call('SCARD', loadKey(name, cls)) end
        workers[name] = { name = name, slots = slots, ahead = ahead, load = load }
        for pool in string.gmatch(f[1], '[^,]+') do
          pools[pool] = pools[pool] or {}
          table.insert(pools[pool], name)
        end
      end
    end
  end
  for _, members in pairs(pools) do table.sort(members) end

  -- Room of a class on a worker: free slots ('free'), or slots and room ahead ('ahead').
  local function roomOf(w, cls, room)
    local n = w.slots[cls] - w.load[cls]
    if room == 'ahead' then n = n + w.ahead[cls] end
    return n
  end

  -- The member of a pool with the most room of a class (ties: by name).
  local function roomiest(members, cls, room)
    local best, bestRoom = nil, nil
    for _, name in ipairs(members) do
      local n = roomOf(workers[name], cls, room)
      if not best or n > bestRoom then best, bestRoom = workers[name], n end
    end
    return best
  end

  -- Room of each class over all live workers: with none, a job of that class is not placed there.
  local total = { free = { multi = 0, single = 0, unlimited = 0 }, ahead = { multi = 0, single = 0, unlimited = 0 } }
  for _, w in pairs(workers) do
    for _, room in ipairs({ 'free', 'ahead' }) do
      for _, cls in ipairs(CLASSES) do total[room][cls] = total[room][cls] + math.max(0, roomOf(w, cls, room)) end
    end
  end

  -- Where a job goes by MARVELO's rules, counting room of one kind: its preferred node, else its
  -- pools in order, in each the roomiest member. Also answers whether any live worker may take it.
  local function choose(cls, node, ppools, room)
    local known = false
    if node ~= '' and workers[node] then
      known = true
      if roomOf(workers[node], cls, room) > 0 then return workers[node], true end
    end
    for pool in string.gmatch(ppools, '[^,]+') do
      local members = pools[pool]
      if members then
        known = true
        if total[room][cls] <= 0 then return nil, true end
        local w = roomiest(members, cls, room)
        if roomOf(w, cls, room) > 0 then return w, true end
      end
    end
    return nil, known
  end

  -- Whether a worker has room (free or ahead) for a job of some class.
  local function anyRoom()
    for _, cls in ipairs(CLASSES) do
      if total.ahead[cls] > 0 then return true end
    end
    return false
  end

  -- placed[1]: whether jobs past the scanned ones may wait for room there is (filled in at the end).
  local placed = { '0' }
  if quick and not anyRoom() then return placed end
  local waiting = redis.call('ZRANGE', K.pending, 0, maxScan - 1, 'WITHSCORES')
  -- A quick pass reads the waiting jobs' queues at once (nil for a job enqueued before pqueue).
  local queues = {}
  if quick and #waiting > 0 then
    local ids = {}
    for i = 1, #waiting, 2 do ids[#ids + 1] = waiting[i] end
    queues = redis.call('HMGET', K.pqueue, unpack(ids))
  end
  for i = 1, #waiting, 2 do
    local id = waiting[i]
    local key = jobKey(id)
    local q = queues[(i + 1) / 2]
    if quick and q and total.ahead[classOf(q)] <= 0 then
      -- No room for its class anywhere: the full pass gives it its reason.
    elseif quick and not anyRoom() then
      break
    else
      -- Only small fields: the info is decoded only when the job's wait reason changes.
      local f = redis.call('HMGET', key, 'queue', 'pnode', 'ppools', 'attempt', 'pat', 'why')
      if not f[1] then
        redis.call('ZREM', K.pending, id)
        redis.call('HDEL', K.pqueue, id)
      elseif quick and total.ahead[classOf(f[1])] <= 0 then
        -- As above, for a job whose queue was not in pqueue.
      else
        local cls = classOf(f[1])
        local node = f[2]
        local room = 'free'
        local target, known = choose(cls, node, f[3], 'free')
        if not target and known then
          room = 'ahead'
          target = choose(cls, node, f[3], 'ahead')
        end
        if target then
          for _, r in ipairs({ 'free', 'ahead' }) do
            if roomOf(target, cls, r) > 0 then total[r][cls] = total[r][cls] - 1 end
          end
          target.load[cls] = target.load[cls] + 1
          redis.call('SADD', loadKey(target.name, cls), id)
          redis.call('HSET', key, 'placed', target.name, 'placedAt', fmt(now))
          redis.call('ZREM', K.pending, id)
          redis.call('HDEL', K.pqueue, id)
          placed[#placed + 1] = id
          placed[#placed + 1] = target.name
          placed[#placed + 1] = f[4] or '1'
          placed[#placed + 1] = cls
          placed[#placed + 1] = f[3]
        elseif not quick then
          local reason
          if not known then
            reason = 'no live worker can take this job (pools: ' .. f[3]
            if node ~= '' then reason = reason .. '; preferred node: ' .. node end
            reason = reason .. '); it waits until one registers'
            redis.call('ZREM', K.pending, id)
            redis.call('ZADD', K.parked, waiting[i + 1], id)
          elseif now - num(f[5]) >= patience then
            reason = 'waiting for a free ' .. cls .. ' slot (pools: ' .. f[3]
            if node ~= '' then reason = reason .. '; preferred node: ' .. node end
            reason = reason .. ')'
          end
          if reason and f[6] ~= reason then
            redis.call('HSET', key, 'why', reason)
            local job = loadJob(id)
            if job.info.status == 'Queued' and job.info.reason ~= reason then
              job.info.reason = reason
              saveJob(job)
            end
          end
        end
      end
    end
  end
  if #waiting >= 2 * maxScan and anyRoom() then placed[1] = '1' end
  return placed
end
`;

/**
 * Places waiting jobs on workers with free slots, oldest first. ARGV: prefix, most jobs to look
 * at, milliseconds a job waits before it is told why, `unlimited` jobs one worker runs at once,
 * 'quick' for a pass that only places (absent: a full pass). Times are Redis's clock (the same for every
 * machine), as is the job's `placedAt`. A quick pass (after a submission or a freed slot) passes
 * over, unread, the jobs of a class that no live worker has room for (their queue is in
 * `pqueue`), and stops once no class has room: it neither parks jobs nor gives wait reasons,
 * which the full pass (once a second) does — so a burst of waiting jobs does not make every
 * pass read each of them. Answers {more, then id, worker, attempt, class, pools, ...}: `more` '1'
 * when it looked at as many jobs as it may and room is left (a next pass may place more), else
 * '0'; then the jobs placed (their slot is reserved: the caller hands them
 * to the worker's BullMQ queue). A job that waits gets a reason (once it waited a moment, so
 * quick placements add no events); a job that no live worker may ever take is parked until
 * the set of workers changes.
 */
export const placeJobs: ScriptDef = {
  name: 'jwPlaceJobs',
  lua: `
${CLASS_OF}
${PLACE_JOBS}
return placeJobs(tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5] == 'quick')
`,
};

/**
 * A worker's end of a run, in one step: only while the job is Running on that worker in that
 * attempt (or Queued and placed there: it ended in the executor's own queue without running),
 * frees its slot, moves it to a final status and closes its output with that status (as
 * `jwCloseOutput`: the run has stored all its output by then). ARGV: prefix, id, changed fields as
 * JSON, result JSON text ('' = none), worker name, attempt; then, optionally, the most jobs to
 * look at, the patience and the `unlimited` slots of a quick placement pass (as `jwPlaceJobs`'s)
 * to run after it, which gives the slot it freed to a waiting job in the same step. Answers the
 * job's record, or with the pass {record, the pass's answer}. Nil when the job is not the run's any
 * more (and no pass runs): a reaper that took the worker for dead queued it again (or lost it)
 * meanwhile, and a check made before this script could not see that.
 */
export const finishRun: ScriptDef = {
  name: 'jwFinishRun',
  lua: `
${CLASS_OF}
${CLOSE_OUTPUT}
${PLACE_JOBS}
local job = loadJob(ARGV[2])
local node = ARGV[5]
if not job then return nil end
if job.info.status == 'Queued' then
  -- A job that ended in its executor's own queue without running (refused, cancelled there).
  if redis.call('HGET', job.key, 'placed') ~= node then return nil end
elseif job.info.status ~= 'Running' or job.node ~= node then
  return nil
end
if redis.call('HGET', job.key, 'attempt') ~= ARGV[6] then return nil end
for _, cls in ipairs(CLASSES) do redis.call('SREM', loadKey(node, cls), job.id) end
local reply = finish(job, ARGV[3], ARGV[4], false)
-- The run stored all its output before it ended: its output closes with the job, in the same step.
local i = job.info
local function orNull(v) if v == nil then return cjson.null end return v end
closeOutput(job.id, cjson.encode({ status = i.status, exitCode = orNull(i.exitCode), signal = orNull(i.signal), error = orNull(i.error), progress = orNull(i.progress) }))
if ARGV[7] == nil then return reply end
-- The slot it freed goes to a waiting job at once: a quick pass, as jwPlaceJobs's.
return { reply, placeJobs(tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]), true) }
`,
};

/** Frees the slot a job held on a worker. ARGV: prefix, worker name, job id. */
export const releaseJob: ScriptDef = {
  name: 'jwReleaseJob',
  lua: `
${CLASS_OF}
for _, cls in ipairs(CLASSES) do redis.call('SREM', loadKey(ARGV[2], cls), ARGV[3]) end
return 1
`,
};

/**
 * Hand-overs to a worker that never arrived (a placer died between reserving the slot and handing
 * the job over). ARGV: prefix, worker name, milliseconds (Redis's clock, which stamped
 * `placedAt`), then ids to skip (the jobs the worker has in hand). Answers {id, attempt, ...} of
 * the jobs placed on the worker longer ago than that; frees the slots the worker holds for jobs
 * placed elsewhere now.
 */
export const staleHandOvers: ScriptDef = {
  name: 'jwStaleHandOvers',
  lua: `
${CLASS_OF}
local node, olderThan, now = ARGV[2], tonumber(ARGV[3]), nowMs()
local skip = {}
for i = 4, #ARGV do skip[ARGV[i]] = true end
local stale = {}
for _, cls in ipairs(CLASSES) do
  for _, id in ipairs(redis.call('SMEMBERS', loadKey(node, cls))) do
    if not skip[id] then
      local f = redis.call('HMGET', jobKey(id), 'placed', 'placedAt', 'attempt')
      if f[1] == node then
        if now - num(f[2]) > olderThan then
          stale[#stale + 1] = id
          stale[#stale + 1] = f[3] or '1'
        end
      else
        for _, c in ipairs(CLASSES) do redis.call('SREM', loadKey(node, c), id) end
      end
    end
  end
end
return stale
`,
};
