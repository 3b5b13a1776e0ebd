-- Assigns the event its position in the topic, appends it to the topic's
-- history and publishes it, atomically, so a subscriber that sees seq N
-- live can always find 1..N-1 in history (unless trimmed or expired).
-- KEYS[1] meta hash (epoch, seq, link), KEYS[2] history stream
-- ARGV[1] channel, ARGV[2] body "<type> <envelope>", ARGV[3] history max
-- length, ARGV[4] history ttl in ms, ARGV[5] PUBLISH or SPUBLISH,
-- ARGV[6] when not empty, a marker ("id":"<notification id>") of an event
-- that an earlier, failed attempt may have stored: if one of the recent
-- entries holds it, nothing is added and that entry's position is returned,
-- ARGV[7] the event's link (8 hex digits). Each entry records the link of
-- the event before it, so readers can tell when history was rewritten
-- (a failover that lost the tail, then new events at the same seq).
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'link')
local epoch, prev = meta[1], meta[2]
if epoch and ARGV[6] ~= '' then
  for _, e in ipairs(redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 64)) do
    local f = e[2]
    for i = 1, #f, 2 do
      if f[i] == 'b' and string.find(f[i + 1], ARGV[6], 1, true) then
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
  redis.call('HSET', KEYS[1], 'epoch', epoch)
  redis.call('DEL', KEYS[2])
end
prev = prev or '-'
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HSET', KEYS[1], 'link', ARGV[7])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '0-' .. seq, 'b', ARGV[2], 'l', ARGV[7], 'p', prev)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call(ARGV[5], ARGV[1], epoch .. ' ' .. seq .. ' ' .. ARGV[7] .. ' ' .. prev .. ' ' .. ARGV[2])
return {epoch, tostring(seq)}
