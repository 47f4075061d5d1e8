"""The Lua scripts of the LLM routers' shared state (state/llm_redis.py). Each runs whole
inside Redis' single thread, so replicas never read-modify-write; each purges what has
expired before it counts, so a lost completion or an idle window never leaks.

Time: ARGV[1] is the caller's clock, or -1 for Redis' own TIME (what every replica
shares: the server's default). Numbers that may be fractional come back as strings
(Redis truncates a Lua number to an integer).
"""

NOW = """
local now = tonumber(ARGV[1])
if now < 0 then local t = redis.call('TIME'); now = tonumber(t[1]) + tonumber(t[2]) / 1e6 end
"""

# In flight. KEYS[1]: entries (puid -> "started tokens pod"), KEYS[2]: stats hash,
# KEYS[3..]: one ZSET per pod (puid -> started). ARGV[2]: the TTL. A count is a ZCARD,
# so it can never go negative.
_PURGE = NOW + """
local cutoff = now - tonumber(ARGV[2])
for i = 3, #KEYS do
  local old = redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', cutoff)
  if #old > 0 then
    for _, puid in ipairs(old) do redis.call('HDEL', KEYS[1], puid) end
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', cutoff)
    redis.call('HINCRBY', KEYS[2], 'expired', #old)
  end
end
local function release(puid)
  local entry = redis.call('HGET', KEYS[1], puid)
  if not entry then return false end
  redis.call('HDEL', KEYS[1], puid)
  for i = 3, #KEYS do redis.call('ZREM', KEYS[i], puid) end
  return {entry, tostring(now)}
end
"""

COUNTS = _PURGE + """
local out = {}
for i = 3, #KEYS do out[#out + 1] = redis.call('ZCARD', KEYS[i]) end
return out
"""

# ARGV[3]: puid, ARGV[4]: the pod's position in KEYS, ARGV[5]: tokens, ARGV[6]: pod name.
# The same puid again moves the request (a retried route), as the memory ledger does.
ACQUIRE = _PURGE + """
release(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[3], string.format('%.6f', now) .. ' ' .. ARGV[5] .. ' ' .. ARGV[6])
redis.call('ZADD', KEYS[tonumber(ARGV[4])], now, ARGV[3])
return 1
"""

RELEASE = _PURGE + """
return release(ARGV[3])
"""

# ARGV[3]: the pod's position in KEYS: its oldest request ends.
RELEASE_OLDEST = _PURGE + """
local oldest = redis.call('ZRANGE', KEYS[tonumber(ARGV[3])], 0, 0)
if #oldest == 0 then return false end
return release(oldest[1])
"""

# ARGV[3]: the pod's position in KEYS: a pod that left takes its requests with it.
DROP_POD = _PURGE + """
local key = KEYS[tonumber(ARGV[3])]
local members = redis.call('ZRANGE', key, 0, -1)
for _, puid in ipairs(members) do redis.call('HDEL', KEYS[1], puid) end
redis.call('DEL', key)
return #members
"""

# Rate limits: a sliding log per window. KEYS[1]: the window's ZSET (member -> admitted at),
# KEYS[2]: its HASH (member -> tokens, '#total', '#seq'), KEYS[3]: the index (puid ->
# "window\nmember", for settle), KEYS[4]: the index's ZSET (puid -> admitted at).
# ARGV[2]: window seconds, [3] rpm, [4] tpm (-1: none), [5] cost, [6] puid, [7] window id.
# Refused: {0, over (1 rpm, 2 tpm), count, used, first_reset, tokens_reset}, nothing changed;
# admitted: {1, 0, count, used, reset, reset} (this request included).
ADMIT = NOW + """
local W = tonumber(ARGV[2])
local cutoff = now - W
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff)
if #old > 0 then
  local freed = 0
  for _, m in ipairs(old) do
    freed = freed + tonumber(redis.call('HGET', KEYS[2], m) or '0')
    redis.call('HDEL', KEYS[2], m)
  end
  if freed ~= 0 then redis.call('HINCRBY', KEYS[2], '#total', 0 - freed) end  -- (Lua formats -0 as "-0")
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', cutoff)
end
local gone = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', cutoff)
if #gone > 0 then
  for _, p in ipairs(gone) do redis.call('HDEL', KEYS[3], p) end
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', cutoff)
end
local count = redis.call('ZCARD', KEYS[1])
local used = tonumber(redis.call('HGET', KEYS[2], '#total') or '0')
local rpm, tpm, cost = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local first_reset = 0
if #first > 0 then first_reset = tonumber(first[2]) + W - now end
local over = 0
if rpm >= 0 and count + 1 > rpm then over = 1 elseif tpm >= 0 and used + cost > tpm then over = 2 end
if over > 0 then
  local tokens_at = 0
  local needed = used + cost - tpm
  if tpm >= 0 and needed > 0 then
    tokens_at = W
    local freed = 0
    local all = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
    for i = 1, #all, 2 do
      freed = freed + tonumber(redis.call('HGET', KEYS[2], all[i]) or '0')
      if freed >= needed then tokens_at = tonumber(all[i + 1]) + W - now; break end
    end
  end
  return {0, over, count, used, tostring(first_reset), tostring(tokens_at)}
end
local member = redis.call('HINCRBY', KEYS[2], '#seq', 1) .. '|' .. ARGV[6]
redis.call('ZADD', KEYS[1], now, member)
redis.call('HSET', KEYS[2], member, cost)
redis.call('HINCRBY', KEYS[2], '#total', cost)
redis.call('HSET', KEYS[3], ARGV[6], ARGV[7] .. '\\n' .. member)
redis.call('ZADD', KEYS[4], now, ARGV[6])
local ms = math.ceil(W * 1000) + 1000  -- an idle window goes with its last entry
redis.call('PEXPIRE', KEYS[1], ms)
redis.call('PEXPIRE', KEYS[2], ms)
if #first == 0 then first_reset = W end
return {1, 0, count + 1, used + cost, tostring(first_reset), tostring(first_reset)}
"""

# KEYS[1], KEYS[2]: the window's ZSET and HASH; ARGV[2]: window seconds, [3]: member,
# [4]: the actual tokens. Reconciles a charge still within the window; 1 if it did.
SETTLE = NOW + """
local score = redis.call('ZSCORE', KEYS[1], ARGV[3])
if not score or tonumber(score) <= now - tonumber(ARGV[2]) then return 0 end
local old = tonumber(redis.call('HGET', KEYS[2], ARGV[3]) or '0')
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
redis.call('HINCRBY', KEYS[2], '#total', tonumber(ARGV[4]) - old)
return 1
"""
