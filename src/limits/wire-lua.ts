/**
 * The Lua half of the wire protocol (./wire.ts), written from LAYOUT as
 * straight code (the script builds nothing per call to know the layout),
 * and the whole limit script: that half, then ./limit.lua.
 */
import { readFileSync } from 'node:fs';
import { BOUNDS } from './bounds.js';
import { LAYOUT, REJECTED } from './wire.js';

/** A number or a table of them as a Lua literal. */
function luaValue(v: number | Readonly<Record<string, number>>): string {
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : '0/0';
  return `{ ${Object.entries(v).map(([k, x]) => `${k} = ${luaValue(x)}`).join(', ')} }`;
}

/** Lua: the record at n[at] as a table (key fields as key names), then `at` moved past it. */
function luaRead(fields: readonly string[], indent: string): string {
  const values = fields.map((f, i) => `${f} = ${f === 'key' ? `key(n[at + ${i}])` : `n[at + ${i}]`}`);
  return `{ ${values.join(', ')} }\n${indent}at = at + ${fields.length}`;
}

/** Lua: record `r` written after out[k], then `k` moved past it. */
function luaPut(fields: readonly string[]): string {
  return `${fields.map((_f, i) => `out[k + ${i + 1}]`).join(', ')} = ${fields.map((f) => `r.${f}`).join(', ')}\n    k = k + ${fields.length}`;
}

/**
 * The Lua half of the protocol, written from LAYOUT (straight code: the
 * script builds nothing per call to know the layout): BOUNDS, REJECTED,
 *
 * - decodeBatch(): KEYS and ARGV[2] as { deadlineMs, shapes, slots, refunds,
 *   runs }, records keyed by LAYOUT's names, key fields as key names, a
 *   shape's records in shape.b, shape.q and shape.c;
 * - encodeReply(reply): { nowMs, expired, slots = { { lentBack } }, runs =
 *   { { admitted, ..., tokens, used } } } as the reply's integers (Redis
 *   truncates a Lua number; tokens go as thousandths). An expired reply is
 *   its header alone.
 */
function luaWire(): string {
  const [nb, nq, nc] = LAYOUT.shape;
  return `local BOUNDS = ${luaValue(BOUNDS)}
local REJECTED = ${luaValue(REJECTED)}

local function decodeBatch()
  local n = cjson.decode(ARGV[2])
  local function key(i)
    local k = KEYS[i]
    if k == nil then error('limit wire: key index ' .. tostring(i) .. ' is not in KEYS') end
    return k
  end
  local at = 1
  local batch = ${luaRead(LAYOUT.header, '  ')}
  local shapes, slots, refunds, runs = {}, {}, {}, {}
  local count = n[at]
  at = at + 1
  for s = 1, count do
    local shape = ${luaRead(LAYOUT.shape, '    ')}
    local b, q, c = {}, {}, {}
    for i = 1, shape.${nb} do
      b[i] = ${luaRead(LAYOUT.bucket, '      ')}
    end
    for i = 1, shape.${nq} do
      q[i] = ${luaRead(LAYOUT.quota, '      ')}
    end
    for i = 1, shape.${nc} do
      c[i] = ${luaRead(LAYOUT.concurrency, '      ')}
    end
    shape.b, shape.q, shape.c = b, q, c
    shapes[s] = shape
  end
  count = n[at]
  at = at + 1
  for i = 1, count do
    slots[i] = ${luaRead(LAYOUT.slots, '    ')}
  end
  count = n[at]
  at = at + 1
  for i = 1, count do
    refunds[i] = ${luaRead(LAYOUT.refund, '    ')}
  end
  count = n[at]
  at = at + 1
  for i = 1, count do
    runs[i] = ${luaRead(LAYOUT.run, '    ')}
  end
  if at ~= #n + 1 then error('limit wire: ' .. (#n + 1 - at) .. ' numbers left over') end
  batch.shapes, batch.slots, batch.refunds, batch.runs = shapes, slots, refunds, runs
  return batch
end

local function encodeReply(reply)
  local out, k, r = {}, 0, reply
  do
    ${luaPut(LAYOUT.reply)}
  end
  if reply.expired ~= 0 then return out end
  local slots, runs = reply.slots, reply.runs
  for i = 1, #slots do
    r = slots[i]
    ${luaPut(LAYOUT.slotsReply)}
  end
  for i = 1, #runs do
    r = runs[i]
    ${luaPut(LAYOUT.runReply)}
    local tokens, used = r.tokens, r.used
    for j = 1, #tokens do out[k + j] = math.floor(tokens[j] * 1000) end
    k = k + #tokens
    for j = 1, #used do out[k + j] = used[j] end
    k = k + #used
  end
  return out
end

`;
}

/** The Lua half of this protocol (BOUNDS, REJECTED, decodeBatch, encodeReply), without the limit logic. */
export const WIRE_LUA = luaWire();

/** The whole limit script, as the store loads it. */
export const SCRIPT = `${WIRE_LUA}${readFileSync(new URL('./limit.lua', import.meta.url), 'utf8')}`;
