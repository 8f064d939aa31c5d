-- bench/exception.lua: cost of constructing an asyncstack Exception 32 frames
-- deep inside a fork, next to Lua's own debug.traceback() at the same depth.
-- Both run in this process, interleaved, ROUNDS times; the medians and their
-- ratio are printed. Target (issue 3): ratio <= 0.10.
--
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' lua5.4 bench/exception.lua
local as = require "asyncstack"

local DEPTH, ITER, ROUNDS = 32, tonumber(arg and arg[1]) or 2000, 15
local lua_traceback = debug.traceback      -- Lua's own, taken before run()
local clock = os.clock

local function median(t)
  table.sort(t)
  return t[(#t + 1) // 2]
end

-- Calls fn at `depth` Lua frames below the caller (no tail calls).
local function at_depth(depth, fn)
  if depth <= 1 then
    local r = fn()
    return r
  end
  local r = at_depth(depth - 1, fn)
  return r
end

local function per_op(fn)
  return at_depth(DEPTH, function()
    local t0 = clock()
    for _ = 1, ITER do fn() end
    return (clock() - t0) / ITER
  end)
end

local construct = function() return as.Exception("x") end
local traceback = function() return lua_traceback() end

local ours, theirs = {}, {}
as.run(function()
  for r = 1, ROUNDS do
    ours[r] = per_op(construct)
    theirs[r] = per_op(traceback)
  end
end)

local a, b = median(ours), median(theirs)
print(("%s, %s"):format(_VERSION, (io.open("/proc/cpuinfo") and
  (io.open("/proc/cpuinfo"):read("a"):match("model name%s*:%s*([^\n]+)")) or "unknown CPU")))
print(("%-44s %10.2f us"):format("Exception() 32 frames deep, in a fork", a * 1e6))
print(("%-44s %10.2f us"):format("debug.traceback() 32 frames deep", b * 1e6))
print(("ratio %.3f (target <= 0.10): %s"):format(a / b, a / b <= 0.10 and "met" or "NOT MET"))
