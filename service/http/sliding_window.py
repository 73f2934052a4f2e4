"""The sliding-window counter script the rate limiter runs in Valkey (vendored, adapted).

Adapted from `acquire_sliding_window.lua` of the `limits` library 5.8.0
(https://github.com/alisaifee/limits, limits/resources/redis/lua_scripts/), under its
licence:

    Copyright (c) 2023 Ali-Akber Saifee

    Permission is hereby granted, free of charge, to any person obtaining a copy
    of this software and associated documentation files (the "Software"), to deal
    in the Software without restriction, including without limitation the rights to
    use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies
    of the Software, and to permit persons to whom the Software is furnished to do
    so, subject to the following conditions:

    The above copyright notice and this permission notice shall be included in all
    copies or substantial portions of the Software.

    THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
    IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
    FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
    AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
    LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
    OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
    SOFTWARE.

Our changes: all limits of one request are checked in one call, and counted only when every
one of them allows it (all or nothing), so a refused request writes no key at all: the
window shift limits does on read (rename current -> previous) is computed, not written,
until the request is counted. The weight (floor(previous * previous_ttl / expiry) +
current) and the key lifetimes (2 x expiry) are limits' own.
"""

from __future__ import annotations

# KEYS: per limit, its (previous, current) window keys. ARGV: per limit, (limit, expiry in
# seconds, amount). Answer: per limit 5 numbers: 1 counted, 0 refused, -1 not counted
# (another limit refused), then count and TTL (ms) of the previous and current window as
# they stand after this call (what X-RateLimit-* report). TTLs of missing keys are 0.
SCRIPT = """
local n = #KEYS / 2
local state, allowed = {}, true
for i = 1, n do
  local previous_key, current_key = KEYS[2 * i - 1], KEYS[2 * i]
  local limit = tonumber(ARGV[3 * i - 2])
  local expiry = tonumber(ARGV[3 * i - 1]) * 1000
  local amount = tonumber(ARGV[3 * i])
  local current_count = tonumber(redis.call('get', current_key)) or 0
  local current_ttl = tonumber(redis.call('pttl', current_key))
  local previous_count, previous_ttl, shift = 0, 0, false
  if current_ttl > 0 and current_ttl < expiry then
    -- The current window is over: it is the previous one now (written only when counted).
    previous_count, previous_ttl, shift = current_count, current_ttl, true
    current_count, current_ttl = 0, current_ttl + expiry
  else
    previous_count = tonumber(redis.call('get', previous_key)) or 0
    previous_ttl = tonumber(redis.call('pttl', previous_key))
  end
  if previous_ttl < 0 then previous_ttl = 0 end
  if current_ttl < 0 then current_ttl = 0 end
  local weight = math.floor(previous_count * previous_ttl / expiry) + current_count
  local ok = amount <= limit and weight + amount <= limit
  state[i] = {ok, previous_count, previous_ttl, current_count, current_ttl, shift, expiry, amount}
  allowed = allowed and ok
end
local out = {}
for i = 1, n do
  local s = state[i]
  local answer = 0
  if allowed then
    answer = 1
    local previous_key, current_key = KEYS[2 * i - 1], KEYS[2 * i]
    if s[6] then
      redis.call('rename', current_key, previous_key)
      redis.call('set', current_key, s[8], 'PX', s[5])
    elseif s[4] > 0 and s[5] > 0 then
      redis.call('incrby', current_key, s[8])
    else
      s[5] = s[7] * 2
      redis.call('set', current_key, s[8], 'PX', s[5])
    end
    s[4] = s[4] + s[8]
  elseif s[1] then
    answer = -1
  end
  out[#out + 1] = answer
  out[#out + 1] = s[2]
  out[#out + 1] = s[3]
  out[#out + 1] = s[4]
  out[#out + 1] = s[5]
end
return out
"""
