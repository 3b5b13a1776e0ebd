-- A page of a topic's history: the entries after ARGV[1] (a sequence
-- number), at most ARGV[2] of them and at most ARGV[3] bytes of field
-- values. Entries are read in small batches, so the page's size is known
-- before a reader holds it. Returns {entries, need}: need is 0, or, when
-- the first entry alone is larger than ARGV[3], its size (and no entries).
-- KEYS[1]: the topic's history stream.
local start = '(0-' .. ARGV[1]
local left = tonumber(ARGV[2])
local budget = tonumber(ARGV[3])
local out, bytes = {}, 0
while left > 0 do
  local batch = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', math.min(left, 16))
  for _, e in ipairs(batch) do
    local size = 0
    for i = 2, #e[2], 2 do
      size = size + #e[2][i]
    end
    if bytes + size > budget then
      if #out == 0 then
        return {out, size}
      end
      return {out, 0}
    end
    out[#out + 1] = e
    bytes = bytes + size
    left = left - 1
    start = '(' .. e[1]
  end
  if #batch < 16 then
    break
  end
end
return {out, 0}
