-- Publishes a batch of events. Each event is assigned its position in its
-- topic, appended to the topic's history and published, in one step, so a
-- subscriber that sees seq N live can always find 1..N-1 in history
-- (unless trimmed or expired). One call for a whole batch: in Redis, a
-- script call costs more than the commands of one event.
-- ARGV[1] history max length, ARGV[2] history ttl in ms, ARGV[3] PUBLISH
-- or SPUBLISH. Event i (from 1) has KEYS[2i-1], its topic's meta hash
-- (epoch, seq, link), KEYS[2i], its history stream, and from ARGV[4i]:
--   channel, body "<type> <envelope>",
--   a marker ("id":"<notification id>") of an event that an earlier,
--   failed attempt may have stored, or '': if one of the recent entries
--   holds it, nothing is added and that entry's position is returned,
--   the event's link (8 hex digits). Each entry records the link of the
--   event before it, so readers can tell when history was rewritten (a
--   failover that lost the tail, then new events at the same seq).
-- Returns one reply per event: {epoch, seq}, or the error that stopped
-- that event alone.
local maxlen, ttl, pubcmd = ARGV[1], ARGV[2], ARGV[3]

local function publish(meta_key, hist_key, channel, body, once, link)
  local meta = redis.call('HMGET', meta_key, 'epoch', 'link')
  local epoch, prev = meta[1], meta[2]
  if epoch and once ~= '' then
    for _, e in ipairs(redis.call('XREVRANGE', hist_key, '+', '-', 'COUNT', 64)) do
      local f = e[2]
      for i = 1, #f, 2 do
        if f[i] == 'b' and string.find(f[i + 1], once, 1, true) then
          return {epoch, string.sub(e[1], 3)}
        end
      end
    end
  end
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
  redis.call(pubcmd, channel, epoch .. ' ' .. seq .. ' ' .. link .. ' ' .. prev .. ' ' .. body)
  return {epoch, tostring(seq)}
end

local out = {}
for i = 1, #KEYS / 2 do
  local a = 4 * i
  local ok, res = pcall(publish, KEYS[2 * i - 1], KEYS[2 * i], ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3])
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
