/**
 * The lease allocator of allocate.ts as one atomic Redis Lua script, timed by
 * Redis's own clock (TIME), so instances with skewed clocks agree.
 *
 * Keys: KEYS[1] the cap-config hash (policy key → value); KEYS[2..] one hash per
 * pool: a field per member, "limit|held|grant|expiresAt|demand" where demand is
 * "priority:count:weighted;..." and bookkeeping fields `~born` (warm-up start),
 * `~seen` (members renewers knew of) and `~last` (last renewal by anyone).
 *
 * ARGV: member id, ttl ms, seen, n config entries, then n (key, value) pairs,
 * then per pool: cap, limit, held, demand.
 * Returns {'ok', grant1, members1, grant2, members2, ...} or
 * {'mismatch', policyKey, clusterValue, ownValue}.
 */
export const RENEW_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = ARGV[1]
local ttl = tonumber(ARGV[2])
local seen = tonumber(ARGV[3])
local ncfg = tonumber(ARGV[4])
local a = 5
local cur = redis.call('HGETALL', KEYS[1])
if #cur > 0 then
  local theirs = {}
  for i = 1, #cur, 2 do theirs[cur[i]] = cur[i + 1] end
  local mine = {}
  for i = 0, ncfg - 1 do
    local f = ARGV[a + 2 * i]
    local v = ARGV[a + 2 * i + 1]
    mine[f] = true
    if theirs[f] ~= v then return {'mismatch', f, theirs[f] or 'absent', v} end
  end
  for f, v in pairs(theirs) do
    if not mine[f] then return {'mismatch', f, v, 'absent'} end
  end
else
  for i = 0, ncfg - 1 do redis.call('HSET', KEYS[1], ARGV[a + 2 * i], ARGV[a + 2 * i + 1]) end
end
if ncfg > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
a = a + 2 * ncfg

local function parseDemand(s)
  local d = {}
  for item in string.gmatch(s, '[^;]+') do
    local p, c, w = string.match(item, '^([^:]+):([^:]+):([^:]+)$')
    d[#d + 1] = {tonumber(p), tonumber(c), tonumber(w)}
  end
  return d
end

local function targets(cap, ms)
  local tg = {}
  for i = 1, #ms do tg[i] = 0 end
  local remaining = cap
  local prios, has = {}, {}
  for i = 1, #ms do
    for _, d in ipairs(ms[i].d) do
      if not has[d[1]] then has[d[1]] = true; prios[#prios + 1] = d[1] end
    end
  end
  table.sort(prios)
  for _, p in ipairs(prios) do
    if remaining <= 0 then break end
    local want, w = {}, {}
    for i = 1, #ms do
      want[i] = 0; w[i] = 0
      for _, d in ipairs(ms[i].d) do
        if d[1] == p then want[i] = want[i] + d[2]; w[i] = w[i] + d[3] end
      end
    end
    while remaining > 0 do
      local tw, n = 0, 0
      for i = 1, #ms do if want[i] > 0 then tw = tw + w[i]; n = n + 1 end end
      if n == 0 then break end
      local round = remaining
      local gave = 0
      for i = 1, #ms do
        if want[i] > 0 then
          local x = math.floor(round * w[i] / tw)
          if x > want[i] then x = want[i] end
          want[i] = want[i] - x; tg[i] = tg[i] + x; remaining = remaining - x; gave = gave + x
        end
      end
      if gave == 0 then
        local best = 0
        for i = 1, #ms do
          if want[i] > 0 and (best == 0 or w[i] > w[best]) then best = i end
        end
        want[best] = want[best] - 1; tg[best] = tg[best] + 1; remaining = remaining - 1
      end
    end
  end
  if remaining > 0 and #ms > 0 then
    local each = math.floor(remaining / #ms)
    local extra = remaining - each * #ms
    for i = 1, #ms do
      tg[i] = tg[i] + each
      if i <= extra then tg[i] = tg[i] + 1 end
    end
  end
  return tg
end

local out = {'ok'}
for k = 2, #KEYS do
  local key = KEYS[k]
  local cap = tonumber(ARGV[a])
  local limit = tonumber(ARGV[a + 1])
  local held = tonumber(ARGV[a + 2])
  local dem = ARGV[a + 3]
  a = a + 4
  local raw = redis.call('HGETALL', key)
  local others = {}
  local born, tseen, last = nil, 0, nil
  for i = 1, #raw, 2 do
    local f, v = raw[i], raw[i + 1]
    if f == '~born' then born = tonumber(v)
    elseif f == '~seen' then tseen = tonumber(v)
    elseif f == '~last' then last = tonumber(v)
    elseif f ~= id then
      local l2, h2, g2, e2, d2 = string.match(v, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|(.*)$')
      if tonumber(e2) > now then
        others[#others + 1] = {id = f, l = tonumber(l2), h = tonumber(h2), g = tonumber(g2), d = parseDemand(d2)}
      else
        redis.call('HDEL', key, f)
      end
    end
  end
  if born == nil or last == nil or now - last >= ttl then
    born = now; tseen = 0
    redis.call('HSET', key, '~born', tostring(now), '~seen', '0')
  end
  redis.call('HSET', key, '~last', tostring(now))
  local warm = (now - born) < ttl
  if warm and seen > tseen then tseen = seen; redis.call('HSET', key, '~seen', tostring(seen)) end
  local all = {}
  for i = 1, #others do all[i] = others[i] end
  all[#all + 1] = {id = id, d = parseDemand(dem)}
  table.sort(all, function(x, y) return x.id < y.id end)
  local tg = targets(cap, all)
  local mine = 0
  for i = 1, #all do if all[i].id == id then mine = tg[i] end end
  local used = 0
  for i = 1, #others do
    local o = others[i]
    local r = o.l
    if o.g > r then r = o.g end
    if o.h > r then r = o.h end
    used = used + r
  end
  local ghostShare = 0
  if warm and tseen > #all then
    local s = math.floor(cap / tseen)
    if s < 1 then s = 1 end
    ghostShare = (tseen - #all) * s
  end
  local grant = cap - used - ghostShare
  if mine < grant then grant = mine end
  if grant < 0 then grant = 0 end
  redis.call('HSET', key, id, limit .. '|' .. held .. '|' .. grant .. '|' .. (now + ttl) .. '|' .. dem)
  redis.call('PEXPIRE', key, ttl * 2)
  out[#out + 1] = grant
  out[#out + 1] = #all
end
return out
`;

/** Drops a member from every pool at once (graceful stop). KEYS: pool hashes; ARGV[1]: member id. */
export const RELEASE_SCRIPT = `
for k = 1, #KEYS do redis.call('HDEL', KEYS[k], ARGV[1]) end
return #KEYS
`;
