-- Assigns the event its position in the topic, appends it to the topic's
-- history and publishes it, atomically, so a subscriber that sees seq N
-- live can always find 1..N-1 in history (unless trimmed or expired).
-- KEYS[1] meta hash (epoch, seq), KEYS[2] history stream
-- ARGV[1] channel, ARGV[2] body "<type> <envelope>", ARGV[3] history max
-- length, ARGV[4] history ttl in ms, ARGV[5] PUBLISH or SPUBLISH,
-- ARGV[6] when not empty, a marker ("id":"<notification id>") of an event
-- that an earlier, failed attempt may have stored: if one of the recent
-- entries holds it, nothing is added and that entry's position is returned.
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if epoch and ARGV[6] ~= '' then
  for _, e in ipairs(redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 64)) do
    if string.find(e[2][2], ARGV[6], 1, true) then
      return {epoch, string.sub(e[1], 3)}
    end
  end
end
if not epoch then
  -- A new epoch: the counter is new (first event, expiry, or data loss).
  -- Old history, if any survived, belongs to no epoch a cursor can name.
  local t = redis.call('TIME')
  epoch = t[1] .. string.format('%06d', tonumber(t[2]))
  redis.call('HSET', KEYS[1], 'epoch', epoch)
  redis.call('DEL', KEYS[2])
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '0-' .. seq, 'b', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call(ARGV[5], ARGV[1], epoch .. ' ' .. seq .. ' ' .. ARGV[2])
return {epoch, tostring(seq)}
