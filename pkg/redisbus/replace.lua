-- Replaces a value only if it is still the one the caller read, keeping
-- its expiry, so of two callers that read the same value only one
-- replaces it. KEYS[1] the key, ARGV[1] the value read, ARGV[2] the new
-- value. Returns 1 if replaced, 0 if the key held something else or
-- nothing.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
  return 1
end
return 0
