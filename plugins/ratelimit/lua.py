"""The Redis side of the sliding-window log: three Lua scripts, each one atomic round-trip.

They follow the rules in ``window.py`` line by line, on these keys per scope (``P`` the prefix,
``S`` the scope name):

- ``P S:r`` sorted set, a request's lease id scored by its time;
- ``P S:t`` sorted set, ``"<lease>:<tokens>"`` scored by its time, and ``P S:ts`` their sum
  (kept so that a check is O(expired entries), not O(window));
- ``P S:c`` sorted set, the lease of each call in flight scored by its expiry: a gateway that
  dies cannot hold a slot longer than its lease, which live gateways renew while a call runs.

Time is Redis's own ``TIME`` (one clock for every gateway), in microseconds, unless ARGV[1]
carries one (the tests inject a clock). Every key expires after its content would, so idle scopes
leave nothing behind. ``redis.replicate_commands()`` lets Redis < 5 accept writes after ``TIME``;
later versions always replicate a script's effects and treat the call as a no-op.
"""

from __future__ import annotations

_COMMON = """
if redis.replicate_commands then redis.replicate_commands() end
local NEVER = -1
local function clock()
  if ARGV[1] ~= '' then return tonumber(ARGV[1]) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function tokens_of(member) return tonumber(string.match(member, ':(%d+)$')) end
"""

# KEYS: 4 per scope (r, t, ts, c). ARGV: now, window_us, lease_us, lease, tokens, then per scope
# rpm, tpm, concurrent (-1: no such limit). Returns allowed, now, reason (0 or 1..3 as in
# window.REASONS), scope index (1-based), retry-after µs, then per scope: requests, oldest
# request, tokens, oldest token, in flight (-1: none).
ACQUIRE = _COMMON + """
local now, window, lease_us = clock(), tonumber(ARGV[2]), tonumber(ARGV[3])
local lease, need = ARGV[4], tonumber(ARGV[5])
local cutoff, scopes = now - window, #KEYS / 4
local reason, blocked, retry = 0, 0, nil

local function refuse(code, i, wait)
  if retry == nil or (retry ~= NEVER and (wait == NEVER or wait > retry)) then
    reason, blocked, retry = code, i, wait
  end
end

local function token_sum(tkey, skey)
  local old = redis.call('ZRANGEBYSCORE', tkey, '-inf', cutoff)
  local freed = 0
  for _, member in ipairs(old) do freed = freed + tokens_of(member) end
  if #old > 0 then redis.call('ZREMRANGEBYSCORE', tkey, '-inf', cutoff) end
  if redis.call('ZCARD', tkey) == 0 then redis.call('DEL', skey) return 0 end
  if freed > 0 then return redis.call('DECRBY', skey, freed) end
  return tonumber(redis.call('GET', skey) or '0')
end

local function token_wait(tkey, excess)
  local entries = redis.call('ZRANGE', tkey, 0, -1, 'WITHSCORES')
  local freed = 0
  for j = 1, #entries, 2 do
    freed = freed + tokens_of(entries[j])
    if freed >= excess then return tonumber(entries[j + 1]) + window - now end
  end
  return NEVER
end

local function oldest(key)
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if first[2] then return tonumber(first[2]) end
  return NEVER
end

local function limits(i)
  local at = 6 + (i - 1) * 3
  return tonumber(ARGV[at]), tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])
end

local sums = {}
for i = 1, scopes do
  local r, t, s, c = KEYS[i * 4 - 3], KEYS[i * 4 - 2], KEYS[i * 4 - 1], KEYS[i * 4]
  local rpm, tpm, concurrent = limits(i)
  if rpm >= 0 then
    redis.call('ZREMRANGEBYSCORE', r, '-inf', cutoff)
    local count = redis.call('ZCARD', r)
    if count >= rpm then
      local entry = redis.call('ZRANGE', r, count - rpm, count - rpm, 'WITHSCORES')
      refuse(1, i, entry[2] and (tonumber(entry[2]) + window - now) or NEVER)
    end
  end
  if tpm >= 0 then
    sums[i] = token_sum(t, s)
    if need > tpm then refuse(2, i, NEVER)
    elseif sums[i] + need > tpm then refuse(2, i, token_wait(t, sums[i] + need - tpm)) end
  end
  if concurrent >= 0 then
    redis.call('ZREMRANGEBYSCORE', c, '-inf', now)
    if redis.call('ZCARD', c) >= concurrent then
      refuse(3, i, concurrent > 0 and 1000000 or NEVER)
    end
  end
end

local ttl = math.floor(window / 1000) + 1000
if reason == 0 then
  for i = 1, scopes do
    local r, t, s, c = KEYS[i * 4 - 3], KEYS[i * 4 - 2], KEYS[i * 4 - 1], KEYS[i * 4]
    local rpm, tpm, concurrent = limits(i)
    if rpm >= 0 then
      redis.call('ZADD', r, now, lease)
      redis.call('PEXPIRE', r, ttl)
    end
    if tpm >= 0 then
      redis.call('ZADD', t, now, lease .. ':' .. need)
      sums[i] = redis.call('INCRBY', s, need)
      redis.call('PEXPIRE', t, ttl)
      redis.call('PEXPIRE', s, ttl)
    end
    if concurrent >= 0 then
      redis.call('ZADD', c, now + lease_us, lease)
      redis.call('PEXPIRE', c, math.floor(lease_us / 1000) + 1000)
    end
  end
end

local out = {reason == 0 and 1 or 0, now, reason, blocked, retry or 0}
for i = 1, scopes do
  local r, t, c = KEYS[i * 4 - 3], KEYS[i * 4 - 2], KEYS[i * 4]
  local rpm, tpm, concurrent = limits(i)
  table.insert(out, rpm >= 0 and redis.call('ZCARD', r) or 0)
  table.insert(out, rpm >= 0 and oldest(r) or NEVER)
  table.insert(out, tpm >= 0 and sums[i] or 0)
  table.insert(out, tpm >= 0 and oldest(t) or NEVER)
  table.insert(out, concurrent >= 0 and redis.call('ZCARD', c) or 0)
end
return out
"""

# KEYS: 4 per scope as in ACQUIRE. ARGV: now, window_us, lease, reserved tokens, used tokens,
# then per scope "1"/"0": has a token limit, has a concurrency limit.
FINISH = _COMMON + """
local now, window, lease = clock(), tonumber(ARGV[2]), ARGV[3]
local reserved, used = tonumber(ARGV[4]), tonumber(ARGV[5])
local ttl = math.floor(window / 1000) + 1000
for i = 1, #KEYS / 4 do
  local t, s, c = KEYS[i * 4 - 2], KEYS[i * 4 - 1], KEYS[i * 4]
  if ARGV[4 + i * 2] == '1' and used ~= reserved then
    local old = lease .. ':' .. reserved
    local at = redis.call('ZSCORE', t, old)
    if at and tonumber(at) > now - window then
      redis.call('ZREM', t, old)
      redis.call('ZADD', t, at, lease .. ':' .. used)
      redis.call('INCRBY', s, used - reserved)
    elseif used > reserved then
      -- the reservation already left the window: the usage learned now counts from now
      redis.call('ZADD', t, now, lease .. '+:' .. (used - reserved))
      redis.call('INCRBY', s, used - reserved)
      redis.call('PEXPIRE', t, ttl)
      redis.call('PEXPIRE', s, ttl)
    end
  end
  if ARGV[5 + i * 2] == '1' then redis.call('ZREM', c, lease) end
end
return 1
"""

# KEYS: lease sets. ARGV: now, lease_us, then the lease held in each of KEYS, in order.
# XX: a lease released (or expired) in the meantime is not brought back.
RENEW = _COMMON + """
local now, lease_us = clock(), tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', now + lease_us, ARGV[i + 2])
  redis.call('PEXPIRE', key, math.floor(lease_us / 1000) + 1000)
end
return #KEYS
"""
