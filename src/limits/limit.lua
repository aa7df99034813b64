-- tenantgate: check and charge the limits of a BATCH of requests (the checks
-- one replica made in one event-loop turn), each atomically and in arrival
-- order, after the concurrency slots released before them. Runs below
-- ./wire.lua (decodeBatch, encodeReply); ./wire.ts defines the arguments and
-- the reply; docs/limit-store.md explains the whole store.
--
-- Each request is decided as if alone, after the ones before it: nothing is
-- charged unless every limit of that request admits it, and a later request
-- sees the charges of earlier ones. Requests of one shape (same limits)
-- charge the same amounts, so within a run the admitted ones are a prefix
-- and every refused one sees the same state: a run is decided in O(1).
-- Each key is read once per batch and written once at the end, so N requests
-- of one tenant cost little more than one. Redis's clock decides.
--
-- A shape whose limits are outside BOUNDS, or whose key holds something
-- that is not a limit's state, fails alone: its runs answer an error code
-- and charge nothing; the rest of the batch is decided as usual. Every
-- write at the end is one that cannot fail, so a batch is applied whole.
--
-- Concurrency is counted per replica: a hash per tenant with one field per
-- replica, "<count> <expiresAtMs>", rewritten by every batch that touches it
-- (and a renewal while the replica holds slots), so a crashed replica's
-- slots free themselves after the TTL.
--
-- Local credit: a run admitted whole may also reserve up to `want` more
-- requests' worth of every limit of its shape, only from the upper half of
-- each (after the grant every bucket holds half its burst, every quota is at
-- most half used, at most half the slots are taken), so a limit near its end
-- is decided here, request by request. Slots the replica reserved and has
-- not used are `lent` back to the batch: its own runs take them first, so
-- its unused credit never refuses its own requests.

local floor, ceil, min, max, type = math.floor, math.ceil, math.min, math.max, type
local find, sub, tonumber = string.find, string.sub, tonumber
local SAFE = 9007199254740991

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + floor(tonumber(t[2]) / 1000)
local batch = decodeBatch()
-- Past the deadline the replica has stopped waiting (the command timed out,
-- e.g. while Redis was stalled): charging now would charge what it refused.
if batch.deadlineMs > 0 and now > batch.deadlineMs then return encodeReply({ nowMs = now, expired = 1 }) end
local me = ARGV[1]

local function num(x, lo, hi) return type(x) == 'number' and x >= lo and x <= hi end
local function int(x, lo, hi) return num(x, lo, hi) and x == floor(x) end

local function validLimits(shape)
  for _, b in ipairs(shape.b) do
    if not (num(b.perSecond, BOUNDS.rateMin, BOUNDS.rateMax) and int(b.burst, 1, BOUNDS.burstMax) and b.burst / b.perSecond <= BOUNDS.refillMaxS) then return false end
  end
  for _, q in ipairs(shape.q) do
    if not (int(q.limit, 0, BOUNDS.quotaMax) and int(q.cost, 1, BOUNDS.costMax) and int(q.resetAtS, 1, BOUNDS.resetAtMaxS)) then return false end
  end
  local c = shape.c
  return c == nil or (int(c.limit, 1, BOUNDS.concurrencyMax) and int(c.ttlMs, 1, BOUNDS.leaseTtlMaxMs))
end

-- key -> { tk, ts (nil tk: full), perSecond, burst, dirty, bad }: a bucket is one string "<tokens> <ms>".
local buckets = {}
-- key -> { used, charged, expireAt, bad }
local quotas = {}
-- key -> { others, mine, lent, ttl, touched, bad }
local hashes = {}

local reads = {}
for _, shape in ipairs(batch.shapes) do
  if validLimits(shape) then
    shape.err = REJECTED.none
    for _, b in ipairs(shape.b) do
      if buckets[b.key] == nil then
        buckets[b.key] = { dirty = false }
        reads[#reads + 1] = b.key
      end
    end
    for _, q in ipairs(shape.q) do
      if quotas[q.key] == nil then
        quotas[q.key] = { charged = 0 }
        reads[#reads + 1] = q.key
      end
    end
  else
    shape.err = REJECTED.invalid_limits
  end
end

-- Every bucket and quota in one read. A missing one is full (bucket) or 0
-- (quota); one of another type, or unparsable, is `bad`.
if #reads > 0 then
  local values = redis.call('MGET', unpack(reads))
  for i = 1, #reads do
    local key, v = reads[i], values[i]
    local b, q = buckets[key], quotas[key]
    if not v then
      if redis.call('EXISTS', key) == 1 then (b or q).bad = true elseif q then q.used = 0 end
    elseif b then
      local sep = find(v, ' ', 1, true)
      local tk, ts = sep and tonumber(sub(v, 1, sep - 1)), sep and tonumber(sub(v, sep + 1))
      if tk and ts then b.tk, b.ts = tk, ts else b.bad = true end
    else
      local used = tonumber(v)
      if int(used, 0, SAFE) then q.used = used else q.bad = true end
    end
  end
end

-- A concurrency hash: the live replicas' counts (expired or unparsable fields are dropped).
local function hashOf(key)
  local h = hashes[key]
  if h then return h end
  h = { others = 0, mine = 0, lent = 0, ttl = 0, touched = false, bad = false }
  hashes[key] = h
  local fields = redis.pcall('HGETALL', key)
  if fields.err then
    h.bad = true
    return h
  end
  local drop = nil
  for i = 1, #fields, 2 do
    local v = fields[i + 1]
    local sep = find(v, ' ', 1, true)
    local n, exp = sep and tonumber(sub(v, 1, sep - 1)), sep and tonumber(sub(v, sep + 1))
    if not (n and exp) or exp <= now then
      drop = drop or {}
      drop[#drop + 1] = fields[i]
    elseif fields[i] == me then
      h.mine = n
    else
      h.others = h.others + n
    end
  end
  if drop then redis.call('HDEL', key, unpack(drop)) end
  return h
end

for _, shape in ipairs(batch.shapes) do
  if shape.err == REJECTED.none then
    local bad = shape.c ~= nil and hashOf(shape.c.key).bad
    for _, b in ipairs(shape.b) do bad = bad or buckets[b.key].bad end
    for _, q in ipairs(shape.q) do bad = bad or quotas[q.key].bad end
    if bad then shape.err = REJECTED.unreadable_key end
  end
end

-- Releases (or this replica's exact count) first: they happened before this batch's checks.
for _, s in ipairs(batch.slots) do
  local h = hashOf(s.key)
  if not h.bad then
    if s.exact >= 0 then h.mine = s.exact else h.mine = max(0, h.mine - s.released) end
    -- Lent slots are part of this replica's count; any that Redis lost (its field expired) are gone.
    h.lent = min(s.lent, h.mine)
    h.ttl, h.touched = max(h.ttl, s.ttlMs), true
  end
end

-- Unused credit comes back (it was reserved before this batch's checks); its slots came back above.
for _, r in ipairs(batch.refunds) do
  local shape, back = batch.shapes[r.shape], r.n
  if shape.err == REJECTED.none then
    for _, spec in ipairs(shape.b) do
      local b = buckets[spec.key]
      -- A missing bucket is full: nothing to give back.
      if b.tk then
        b.tk = min(spec.burst, b.tk + max(0, now - b.ts) * spec.perSecond / 1000 + back)
        b.ts, b.perSecond, b.burst, b.dirty = now, spec.perSecond, spec.burst, true
      end
    end
    for _, spec in ipairs(shape.q) do
      local q = quotas[spec.key]
      -- A counter that expired (its period ended) has nothing to give back.
      local d = min(q.used, spec.cost * back)
      q.used, q.charged = q.used - d, q.charged - d
    end
  end
end

local function decide(shape, count, want, reply)
  -- How many of the run fit: each request takes one token per bucket, `cost` per quota and one slot.
  local admit = count
  local tokens, used = reply.tokens, reply.used
  for i, spec in ipairs(shape.b) do
    local b = buckets[spec.key]
    local tk = spec.burst
    if b.tk then tk = min(spec.burst, b.tk + max(0, now - b.ts) * spec.perSecond / 1000) end
    tokens[i] = tk
    admit = min(admit, max(0, floor(tk)))
  end
  for i, spec in ipairs(shape.q) do
    used[i] = quotas[spec.key].used
    admit = min(admit, max(0, floor((spec.limit - used[i]) / spec.cost)))
  end
  local c, h = shape.c, nil
  if c then
    h = hashOf(c.key)
    admit = min(admit, max(0, c.limit - h.others - h.mine + h.lent))
  end

  -- The first refused request (if any) sees the state after `admit` charges:
  -- the first limit out of room refuses it, and every later one of the run.
  if admit < count then
    for i, spec in ipairs(shape.b) do
      local left = tokens[i] - admit
      if left < 1 then
        reply.rejected, reply.index, reply.retryAfterMs = REJECTED.rate, i, ceil((1 - left) * 1000 / spec.perSecond)
        break
      end
    end
    if reply.rejected == REJECTED.none then
      for i, spec in ipairs(shape.q) do
        if used[i] + spec.cost * (admit + 1) > spec.limit then
          reply.rejected, reply.index, reply.retryAfterMs = REJECTED.quota, i, max(0, spec.resetAtS * 1000 - now)
          break
        end
      end
    end
    if reply.rejected == REJECTED.none then reply.rejected, reply.index, reply.retryAfterMs = REJECTED.concurrency, 1, 1000 end
  end

  -- Slots this run takes from what was lent first; only the rest are new.
  local fromLent = h and min(h.lent, admit) or 0
  local granted = 0
  if want > 0 and admit == count then
    granted = want
    for i, spec in ipairs(shape.b) do granted = min(granted, floor(tokens[i] - admit - spec.burst / 2)) end
    for i, spec in ipairs(shape.q) do granted = min(granted, floor((spec.limit / 2 - used[i]) / spec.cost) - admit) end
    if c then granted = min(granted, floor(c.limit / 2) - h.others - (h.mine + admit - fromLent)) end
    if granted < 2 then granted = 0 end
  end
  reply.admitted, reply.granted = admit, granted

  -- Credit is charged like admitted requests.
  local charge = admit + granted
  if charge > 0 then
    for i, spec in ipairs(shape.b) do
      local b = buckets[spec.key]
      b.tk, b.ts, b.perSecond, b.burst, b.dirty = tokens[i] - charge, now, spec.perSecond, spec.burst, true
    end
    for _, spec in ipairs(shape.q) do
      local q = quotas[spec.key]
      -- The first charge of the period creates the counter: it gets the period's end.
      if q.used == 0 and q.expireAt == nil then q.expireAt = spec.resetAtS end
      q.used, q.charged = q.used + spec.cost * charge, q.charged + spec.cost * charge
    end
    if h then h.lent, h.mine, h.ttl, h.touched = h.lent - fromLent, h.mine + charge - fromLent, max(h.ttl, c.ttlMs), true end
  end
end

local runs = {}
for i, run in ipairs(batch.runs) do
  local shape = batch.shapes[run.shape]
  local reply = { admitted = 0, rejected = shape.err, index = 0, retryAfterMs = 0, granted = 0, tokens = {}, used = {} }
  if shape.err == REJECTED.none then
    decide(shape, run.count, run.want, reply)
  else
    for j = 1, #shape.b do reply.tokens[j] = 0 end
    for j = 1, #shape.q do reply.used[j] = 0 end
  end
  runs[i] = reply
end

-- Write back what the batch charged, once per key.
for key, b in pairs(buckets) do
  if b.dirty then
    -- Expires when full again: a missing bucket means a full one.
    redis.call('SET', key, string.format('%.6f %d', b.tk, b.ts), 'PX', ceil((b.burst - b.tk) * 1000 / b.perSecond) + 1000)
  end
end
for key, q in pairs(quotas) do
  if q.charged ~= 0 then
    redis.call('INCRBY', key, q.charged)
    if q.expireAt then redis.call('EXPIREAT', key, q.expireAt) end
  end
end
for key, h in pairs(hashes) do
  if h.touched then
    if h.mine > 0 then
      redis.call('HSET', key, me, h.mine .. ' ' .. (now + h.ttl))
      redis.call('PEXPIRE', key, h.ttl * 2)
    else
      redis.call('HDEL', key, me)
    end
  end
end

local slots = {}
for i, s in ipairs(batch.slots) do
  local h = hashes[s.key]
  slots[i] = { lentBack = h.bad and s.lent or h.lent }
end
return encodeReply({ nowMs = now, expired = 0, slots = slots, runs = runs })
