-- Reads one page of a topic's keyed state, with the topic's position, in
-- one atomic step. KEYS[1] meta hash, KEYS[2] state hash, KEYS[3] state
-- order. ARGV[1] only keys last updated after this seq, ARGV[2] and at or
-- before this seq ('+' for the topic's position now), ARGV[3] at most this
-- many keys, ARGV[4] stop after the entry that passes this many bytes.
-- Returns {epoch, seq, link, next, seq1, body1, seq2, body2, ...} in the
-- order the keys were last updated, where next is the seq to read on
-- after or 0 when the state is read to its end; epoch '' for a topic
-- without events (its state, if any survived, belongs to no epoch).
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'seq', 'link')
if not meta[1] then
  return {'', '0', '-', '0'}
end
local upto = ARGV[2]
if upto == '+' then
  upto = meta[2]
end
local page = redis.call('ZRANGEBYSCORE', KEYS[3], '(' .. ARGV[1], upto, 'WITHSCORES', 'LIMIT', 0, ARGV[3])
local out = {meta[1], meta[2], meta[3] or '-', '0'}
if #page == 0 then
  return out
end
local keys = {}
for i = 1, #page, 2 do
  keys[#keys + 1] = page[i]
end
local bodies = redis.call('HMGET', KEYS[2], unpack(keys))
local budget, n = tonumber(ARGV[4]), 0
for i, body in ipairs(bodies) do
  if body then
    out[#out + 1] = page[2 * i]
    out[#out + 1] = body
    budget = budget - #body
  end
  n = i
  if budget <= 0 then
    break
  end
end
if n < #bodies or #keys == tonumber(ARGV[3]) then
  out[4] = page[2 * n]
end
return out
