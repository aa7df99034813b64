-- The Lua half of the limit store's wire protocol (./wire.ts). LAYOUT, BOUNDS
-- and REJECTED are written above this file by wire.ts: records are read and
-- written by LAYOUT's field names, so the field order is defined only there.

-- KEYS and ARGV[2] as a table: { deadlineMs, shapes, slots, refunds, runs },
-- each list's records keyed by LAYOUT's names, key fields turned into key
-- names, and a shape's records in shape.b (buckets), shape.q (quotas) and
-- shape.c (concurrency, or nil).
local function decodeBatch()
  local nums = cjson.decode(ARGV[2])
  local at = 1
  local function record(fields)
    local r = {}
    for i = 1, #fields do r[fields[i]] = nums[at + i - 1] end
    at = at + #fields
    return r
  end
  local function keyed(fields)
    local r = record(fields)
    local key = KEYS[r.key]
    if key == nil then error('limit wire: key index ' .. tostring(r.key) .. ' is not in KEYS') end
    r.key = key
    return r
  end
  local function list(read, fields)
    local n = nums[at]
    at = at + 1
    local out = {}
    for i = 1, n do out[i] = read(fields) end
    return out
  end
  local batch = record(LAYOUT.header)
  batch.shapes = list(function()
    local shape = record(LAYOUT.shape)
    shape.b, shape.q = {}, {}
    for i = 1, shape.buckets do shape.b[i] = keyed(LAYOUT.bucket) end
    for i = 1, shape.quotas do shape.q[i] = keyed(LAYOUT.quota) end
    if shape.concurrency == 1 then shape.c = keyed(LAYOUT.concurrency) end
    return shape
  end)
  batch.slots = list(keyed, LAYOUT.slots)
  batch.refunds = list(record, LAYOUT.refund)
  batch.runs = list(record, LAYOUT.run)
  if at ~= #nums + 1 then error('limit wire: ' .. (#nums + 1 - at) .. ' numbers left over') end
  return batch
end

-- { nowMs, expired, slots = { { lentBack } }, runs = { { admitted, ..., tokens = {}, used = {} } } }
-- as the reply's integers (Redis truncates a Lua number to an integer; tokens
-- go as thousandths). An expired reply is its header alone.
local function encodeReply(reply)
  local out, n = {}, 0
  local function put(fields, r)
    for i = 1, #fields do
      local v = r[fields[i]]
      if type(v) ~= 'number' then error('limit wire: reply field ' .. fields[i] .. ' is not a number') end
      n = n + 1
      out[n] = v
    end
  end
  put(LAYOUT.reply, reply)
  if reply.expired ~= 0 then return out end
  for i = 1, #reply.slots do put(LAYOUT.slotsReply, reply.slots[i]) end
  for i = 1, #reply.runs do
    local r = reply.runs[i]
    put(LAYOUT.runReply, r)
    for j = 1, #r.tokens do
      n = n + 1
      out[n] = math.floor(r.tokens[j] * 1000)
    end
    for j = 1, #r.used do
      n = n + 1
      out[n] = r.used[j]
    end
  end
  return out
end

