-- Publishes a batch of events. Each event is assigned its position in its
-- topic, appended to the topic's history and published, in one step, so a
-- subscriber that sees seq N live can always find 1..N-1 in history
-- (unless trimmed or expired). One call for a whole batch: in Redis, a
-- script call costs more than the commands of one event.
-- ARGV[1] history max length, ARGV[2] history ttl in ms, ARGV[3] PUBLISH
-- or SPUBLISH, ARGV[4] ttl in ms of a once hash. Event i (from 1) has
-- KEYS[3i-2], its topic's meta hash (epoch, seq, link), KEYS[3i-1], its
-- history stream, KEYS[3i], the once hash of its idempotent publishes (see
-- below), and from ARGV[4i+1]:
--   channel, body "<type> <envelope>",
--   once: "<notification id> <topic>" of an idempotent publish, or '',
--   the event's link (8 hex digits). Each entry records the link of the
--   event before it, so readers can tell when history was rewritten (a
--   failover that lost the tail, then new events at the same seq).
-- Returns one reply per event: {epoch, seq}, {epoch, seq, 1} when an
-- earlier attempt had stored it, or the error that stopped that event alone.
local maxlen, ttl, pubcmd, once_ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

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

local function publish(meta_key, hist_key, once_key, channel, body, once, link)
  local before = stored_before(once_key, once)
  if before then
    return before
  end
  local meta = redis.call('HMGET', meta_key, 'epoch', 'link')
  local epoch, prev = meta[1], meta[2]
  if not epoch then
    -- A new epoch: the counter is new (first event, expiry, or data loss).
    -- Old history, if any survived, belongs to no epoch a cursor can name.
    local t = redis.call('TIME')
    epoch = t[1] .. string.format('%06d', tonumber(t[2]))
    prev = '-'
    redis.call('HSET', meta_key, 'epoch', epoch)
    redis.call('DEL', hist_key)
  end
  prev = prev or '-'
  local seq = redis.call('HINCRBY', meta_key, 'seq', 1)
  redis.call('HSET', meta_key, 'link', link)
  redis.call('XADD', hist_key, 'MAXLEN', '~', maxlen, '0-' .. seq, 'b', body, 'l', link, 'p', prev)
  redis.call('PEXPIRE', meta_key, ttl)
  redis.call('PEXPIRE', hist_key, ttl)
  remember(once_key, once, epoch, seq)
  redis.call(pubcmd, channel, epoch .. ' ' .. seq .. ' ' .. link .. ' ' .. prev .. ' ' .. body)
  return {epoch, tostring(seq)}
end

local out = {}
for i = 1, #KEYS / 3 do
  local a = 4 * i + 1
  local ok, res = pcall(publish, KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i], ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3])
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
