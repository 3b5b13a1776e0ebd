-- Publishes a batch of events. Each event is assigned its position in its
-- topic, appended to the topic's history, applied to the topic's keyed
-- state and published, in one step, so a subscriber that sees seq N live
-- can always find 1..N-1 in history (unless trimmed or expired), and the
-- state always holds exactly what history and live delivery say. One call
-- for a whole batch: in Redis, a script call costs more than the commands
-- of one event.
-- ARGV[1] history max length, ARGV[2] history ttl in ms, ARGV[3] PUBLISH
-- or SPUBLISH, ARGV[4] ttl in ms of a once hash, ARGV[5] the most keys a
-- topic's state holds. Event i (from 1) has KEYS[5i-4], its topic's meta
-- hash (epoch, seq, link, sx: until when the state's keys live),
-- KEYS[5i-3], its history stream, KEYS[5i-2], the once hash of its
-- idempotent publishes (see below), KEYS[5i-1] and KEYS[5i], its state
-- (hash key → body) and the state's order (sorted set key → seq of its
-- last update), and from ARGV[5i+1]:
--   channel, body "<type> <envelope>",
--   once: "<notification id> <topic>" of an idempotent publish, or '',
--   the event's link (8 hex digits). Each entry records the link of the
--   event before it, so readers can tell when history was rewritten (a
--   failover that lost the tail, then new events at the same seq),
--   the state update: '' (none), '+<key>' (set) or '-<key>' (remove).
-- Returns one reply per event: {epoch, seq}, {epoch, seq, 1} when an
-- earlier attempt had stored it, or the error that stopped that event alone.
local maxlen, ttl, pubcmd, once_ttl, maxkeys = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local ttl_ms = tonumber(ttl)

-- At most once per notification id. The once hash (one per partition and
-- hour of the ids' time, under the topic's hash tag) maps once to the
-- position the event was stored at, in the same step that stores it, and
-- outlives the idempotency window. So a retry, or an attempt's call that
-- runs after its retry's, finds the event in O(1) however many events the
-- topic had since, and stores nothing.
local function stored_before(once_key, once)
  if once == '' then
    return nil
  end
  local at = redis.call('HGET', once_key, once)
  if not at then
    return nil
  end
  local sp = string.find(at, ' ', 1, true)
  return {string.sub(at, 1, sp - 1), string.sub(at, sp + 1), 1}
end

local function remember(once_key, once, epoch, seq)
  if once == '' then
    return
  end
  redis.call('HSET', once_key, once, epoch .. ' ' .. seq)
  if redis.call('PTTL', once_key) < 0 then
    redis.call('PEXPIRE', once_key, once_ttl)
  end
end

-- The time in ms, read at most once per call.
local now
local function clock()
  if not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now
end

-- update applies an event to its topic's state: the key now holds body
-- (or is removed); past maxkeys the least recently updated key goes. It
-- returns true when it added a key (the state's keys may be new).
local function update(state_key, order_key, op, body, seq)
  local key = string.sub(op, 2)
  if string.sub(op, 1, 1) == '-' then
    redis.call('HDEL', state_key, key)
    redis.call('ZREM', order_key, key)
    return false
  end
  redis.call('HSET', state_key, key, body)
  if redis.call('ZADD', order_key, seq, key) == 0 then
    return false
  end
  if redis.call('ZCARD', order_key) > maxkeys then
    local old = redis.call('ZPOPMIN', order_key)
    redis.call('HDEL', state_key, old[1])
  end
  return true
end

local function publish(meta_key, hist_key, once_key, state_key, order_key, channel, body, once, link, op)
  local before = stored_before(once_key, once)
  if before then
    return before
  end
  local meta = redis.call('HMGET', meta_key, 'epoch', 'link', 'sx')
  local epoch, prev, sx = meta[1], meta[2], meta[3]
  if not epoch then
    -- A new epoch: the counter is new (first event, expiry, or data loss).
    -- Old history and state, if any survived, belong to no epoch a cursor
    -- can name.
    local t = redis.call('TIME')
    epoch = t[1] .. string.format('%06d', tonumber(t[2]))
    prev, sx = '-', nil
    redis.call('HSET', meta_key, 'epoch', epoch)
    redis.call('DEL', hist_key, state_key, order_key)
  end
  prev = prev or '-'
  local seq = redis.call('HINCRBY', meta_key, 'seq', 1)
  -- The state's keys must outlive the history they go with (readers
  -- ignore a state whose meta is gone, and a new epoch deletes it). Rather
  -- than two PEXPIREs per event, they live until sx, set to twice the ttl
  -- ahead whenever less than one ttl is left.
  local expire = false
  if (op ~= '' or sx) and (not sx or tonumber(sx) < clock() + ttl_ms) then
    sx = string.format('%.0f', clock() + 2 * ttl_ms)
    expire = true
    redis.call('HSET', meta_key, 'link', link, 'sx', sx)
  else
    redis.call('HSET', meta_key, 'link', link)
  end
  redis.call('XADD', hist_key, 'MAXLEN', '~', maxlen, '0-' .. seq, 'b', body, 'l', link, 'p', prev)
  redis.call('PEXPIRE', meta_key, ttl)
  redis.call('PEXPIRE', hist_key, ttl)
  if op ~= '' and update(state_key, order_key, op, body, seq) then
    expire = true -- the state may have been empty: its keys are new
  end
  if expire then
    redis.call('PEXPIREAT', state_key, sx)
    redis.call('PEXPIREAT', order_key, sx)
  end
  remember(once_key, once, epoch, seq)
  redis.call(pubcmd, channel, epoch .. ' ' .. seq .. ' ' .. link .. ' ' .. prev .. ' ' .. body)
  return {epoch, tostring(seq)}
end

local out = {}
for i = 1, #KEYS / 5 do
  local a = 5 * i + 1
  local ok, res = pcall(publish, KEYS[5 * i - 4], KEYS[5 * i - 3], KEYS[5 * i - 2], KEYS[5 * i - 1], KEYS[5 * i],
    ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4])
  if not ok then
    if type(res) == 'table' and res.err then
      res = redis.error_reply(res.err)
    else
      res = redis.error_reply(tostring(res))
    end
  end
  out[i] = res
end
return out
