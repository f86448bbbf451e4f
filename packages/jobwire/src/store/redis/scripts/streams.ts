/**
 * The stream-log operations of the Redis store, one Lua script each. A job's output is three
 * Redis streams: the merged index (`idx:ID`, entry id `pos-1`, fields c/o/n) and one stream of
 * bytes per channel (`out:ID`, `err:ID`, entry id `offset-1`). Because entry ids are positions,
 * the chunk holding any position is one `XREVRANGE key POS-1 - COUNT 1` away, and a page is one
 * `XRANGE`. Sizes and flags live in the hash `st:ID`.
 *
 * Every change is also published on the job's channel `ev:ID`, so whoever runs or watches the
 * job hears it at once. Messages are one type byte, then fields:
 * `o` channel('1'|'2') pos `|` offset `|` bytes; `c` end [`|` final status as JSON]; `i` offset
 * `|` bytes; `I` offset; `a` consumed; `r` cols `|` rows; `x` (cancel).
 * @module
 */
import { CLOSE_OUTPUT } from './close-output.js';
import type { ScriptDef } from './script-def.js';

/**
 * Appends one output chunk. ARGV: prefix, id, channel ('1' stdout, '2' stderr), bytes, writer
 * id, writer sequence number. Answers {pos, offset}. A chunk this writer appended already (a
 * command resent after a reconnect) is not stored twice: the answer is where it went.
 */
export const appendOutput: ScriptDef = {
  name: 'jwAppendOutput',
  lua: `
local id, ch, data, writer, n = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local st = stKey(id)
local f = redis.call('HMGET', st, 'out', 'err', 'oc', 'w', 'wn')
if f[3] == '1' then return redis.error_reply('CONFLICT the output of job ' .. id .. ' is closed') end
local out, err = num(f[1]), num(f[2])
local pos = out + err
local off = err
if ch == '1' then off = out end
if #data == 0 then return { pos, off } end
if writer ~= '' and f[4] == writer and num(f[5]) >= tonumber(n) then
  for _, e in ipairs(redis.call('XREVRANGE', idxKey(id), '+', '-', 'COUNT', 1000)) do
    if e[2][8] == n then return { idNum(e[1]), tonumber(e[2][4]) } end
  end
  return redis.error_reply('CONFLICT output chunk ' .. n .. ' of writer ' .. writer .. ' is too old to resend')
end
redis.call('XADD', idxKey(id), fmt(pos) .. '-1', 'c', ch, 'o', fmt(off), 'n', fmt(#data), 's', n)
redis.call('XADD', chanKey(id, ch), fmt(off) .. '-1', 'd', data)
local size = 'err'
if ch == '1' then size = 'out' end
redis.call('HSET', st, size, fmt(off + #data), 'w', writer, 'wn', n)
redis.call('PUBLISH', evChannel(id), 'o' .. ch .. fmt(pos) .. '|' .. fmt(off) .. '|' .. data)
return { pos, off }
`,
};

/**
 * Marks a job's output complete, with how the job ended (kept as `fin` in `st:ID` and sent with
 * the message); idempotent. ARGV: prefix, id, final status as JSON ('' when not known).
 */
export const closeOutput: ScriptDef = {
  name: 'jwCloseOutput',
  lua: `
${CLOSE_OUTPUT}
closeOutput(ARGV[2], ARGV[3])
return 1
`,
};

/**
 * A page of merged output. ARGV: prefix, id, from, maxBytes. Answers {end, closed (0/1), final
 * status as JSON ('' when none), then per chunk: channel, pos, offset, bytes}: whole chunks from
 * the one holding `from` (cut to start there) while they fit in maxBytes, at least one.
 */
export const readOutput: ScriptDef = {
  name: 'jwReadOutput',
  lua: `
local id, from, max = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local f = redis.call('HMGET', stKey(id), 'out', 'err', 'oc', 'fin')
local total = num(f[1]) + num(f[2])
local closed = 0
if f[3] == '1' then closed = 1 end
local reply = { total, closed, f[4] or '' }
if from >= total then return reply end
local idx = idxKey(id)
local picked, size = {}, 0
local function take(e)
  local p, len = idNum(e[1]), tonumber(e[2][6])
  local cut = 0
  if p < from then cut = from - p end
  if #picked > 0 and size + len - cut > max then return false end
  picked[#picked + 1] = { e[2][2], p, tonumber(e[2][4]), cut }
  size = size + len - cut
  return true
end
local first = redis.call('XREVRANGE', idx, fmt(from) .. '-1', '-', 'COUNT', 1)[1]
if not first then return reply end
take(first)
local last, more = first[1], true
while more and size < max do
  local batch = redis.call('XRANGE', idx, '(' .. last, '+', 'COUNT', 64)
  if #batch == 0 then break end
  for _, e in ipairs(batch) do
    if not take(e) then more = false break end
    last = e[1]
  end
end
-- Within a page each channel's chunks are consecutive entries of its stream: one XRANGE each.
local spans = {}
for _, c in ipairs(picked) do
  local span = spans[c[1]]
  if span then span[2] = c[3] else spans[c[1]] = { c[3], c[3] } end
end
local bytes, next = {}, { ['1'] = 1, ['2'] = 1 }
for ch, span in pairs(spans) do
  bytes[ch] = redis.call('XRANGE', chanKey(id, ch), fmt(span[1]) .. '-1', fmt(span[2]) .. '-1')
end
for _, c in ipairs(picked) do
  local data = bytes[c[1]][next[c[1]]][2][2]
  next[c[1]] = next[c[1]] + 1
  if c[4] > 0 then data = string.sub(data, c[4] + 1) end
  reply[#reply + 1] = c[1]
  reply[#reply + 1] = c[2] + c[4]
  reply[#reply + 1] = c[3] + c[4]
  reply[#reply + 1] = data
end
return reply
`,
};

/**
 * Reads bytes of one channel stream (stdout, stderr or stdin). ARGV: prefix, id, stream key
 * kind ('1' stdout, '2' stderr, 'in' stdin), from, to ('' = the end), maxBytes. Answers
 * {bytes, next position, size, closed (stdin only: 0/1)}: at most maxBytes from `from`.
 */
export const readBytes: ScriptDef = {
  name: 'jwReadBytes',
  lua: `
local id, kind, from, max = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[6])
local f = redis.call('HMGET', stKey(id), 'out', 'err', 'in', 'ic')
local size, key = num(f[2]), chanKey(id, '2')
if kind == '1' then size, key = num(f[1]), chanKey(id, '1') end
if kind == 'in' then size, key = num(f[3]), inKey(id) end
local closed = 0
if f[4] == '1' then closed = 1 end
local stop = size
if ARGV[5] ~= '' then stop = math.min(stop, tonumber(ARGV[5])) end
stop = math.min(stop, from + max)
if from >= stop then return { '', from, size, closed } end
local first = redis.call('XREVRANGE', key, fmt(from) .. '-1', '-', 'COUNT', 1)[1]
if not first then return { '', from, size, closed } end
local start = idNum(first[1])
local parts = {}
for i, e in ipairs(redis.call('XRANGE', key, first[1], fmt(stop - 1) .. '-1')) do parts[i] = e[2][2] end
local data = string.sub(table.concat(parts), from - start + 1, stop - start)
return { data, stop, size, closed }
`,
};

/**
 * Appends the part of some stdin bytes that is not stored yet. ARGV: prefix, id, offset (where
 * the bytes start), bytes. Answers the new stdin length. A gap, or stdin already closed, is a
 * conflict.
 */
export const appendStdin: ScriptDef = {
  name: 'jwAppendStdin',
  lua: `
local id, offset, data = ARGV[2], tonumber(ARGV[3]), ARGV[4]
local st = stKey(id)
local f = redis.call('HMGET', st, 'in', 'ic')
if f[2] == '1' then return redis.error_reply('CONFLICT the stdin of job ' .. id .. ' is closed') end
local cur = num(f[1])
if offset > cur then
  return redis.error_reply('CONFLICT stdin of job ' .. id .. ': offset ' .. fmt(offset) .. ' leaves a gap after the ' .. fmt(cur) .. ' bytes accepted')
end
local skip = cur - offset
if skip >= #data then return cur end
local fresh = string.sub(data, skip + 1)
redis.call('XADD', inKey(id), fmt(cur) .. '-1', 'd', fresh)
redis.call('HSET', st, 'in', fmt(cur + #fresh))
redis.call('PUBLISH', evChannel(id), 'i' .. fmt(cur) .. '|' .. fresh)
return cur + #fresh
`,
};

/** Ends stdin; idempotent. ARGV: prefix, id. Answers the stdin length. */
export const closeStdin: ScriptDef = {
  name: 'jwCloseStdin',
  lua: `
local id = ARGV[2]
local st = stKey(id)
local f = redis.call('HMGET', st, 'in', 'ic')
if f[2] ~= '1' then
  redis.call('HSET', st, 'ic', '1')
  redis.call('PUBLISH', evChannel(id), 'I' .. fmt(num(f[1])))
end
return num(f[1])
`,
};

/** Records how much stdin the job has read, never backwards. ARGV: prefix, id, consumed. */
export const ackStdin: ScriptDef = {
  name: 'jwAckStdin',
  lua: `
local id, consumed = ARGV[2], tonumber(ARGV[3])
local st = stKey(id)
local cur = num(redis.call('HGET', st, 'iu'))
if consumed > cur then
  cur = consumed
  redis.call('HSET', st, 'iu', fmt(cur))
end
redis.call('PUBLISH', evChannel(id), 'a' .. fmt(cur))
return cur
`,
};

/**
 * Sends a control message to whoever runs the job. ARGV: prefix, id, 'x' (cancel), 'r'
 * (resize) or 'k' (output taken up to cols), cols, rows. A cancel is also recorded (`cancel` in `st:ID`), so a runner that
 * missed the message (a reconnect) still finds it.
 */
export const sendControl: ScriptDef = {
  name: 'jwSendControl',
  lua: `
local id, kind = ARGV[2], ARGV[3]
if kind == 'x' then
  redis.call('HSET', stKey(id), 'cancel', '1')
  redis.call('PUBLISH', evChannel(id), 'x')
elseif kind == 'k' then
  redis.call('PUBLISH', evChannel(id), 'k' .. ARGV[4])
else
  redis.call('PUBLISH', evChannel(id), 'r' .. ARGV[4] .. '|' .. ARGV[5])
end
return 1
`,
};
