-- bench/introspect.lua: cost per fork of as.tasks{backtrace=false} over
-- 100,000 forks and of as.dump() over 10,000 forks, next to Lua's own
-- debug.traceback(co) per suspended coroutine (10,000 of them). Medians of
-- ROUNDS runs, all in this process. Issue 4 sets no ratio target: the point
-- is that a full report costs about what tracing each coroutine once does.
--
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' lua5.4 bench/introspect.lua
local as = require "asyncstack"

local ROUNDS = tonumber(arg and arg[1]) or 5
local clock = os.clock
local lua_traceback = debug.traceback

local function median(t)
  table.sort(t)
  return t[(#t + 1) // 2]
end

local function time(fn)
  local t0 = clock()
  fn()
  return clock() - t0
end

-- the root measures without yielding, so every fork stays at its await point
local function per_fork(nforks, measure)
  return as.run(function()
    for _ = 1, nforks do as.fork(function() as.sleep(0.05) end) end
    as.yield()
    return time(measure) / (nforks + 1)
  end)
end

local cos = {}
for i = 1, 10000 do
  cos[i] = coroutine.create(function() coroutine.yield() end)
  coroutine.resume(cos[i])
end

local tasks_t, dump_t, tb_t = {}, {}, {}
for r = 1, ROUNDS do
  tasks_t[r] = per_fork(100000, function() as.tasks { backtrace = false } end)
  dump_t[r] = per_fork(10000, function() as.dump() end)
  tb_t[r] = time(function()
    for i = 1, #cos do lua_traceback(cos[i]) end
  end) / #cos
end

local cpu = io.open("/proc/cpuinfo")
cpu = cpu and cpu:read("a"):match("model name%s*:%s*([^\n]+)") or "unknown CPU"
print(("%s, %s, medians of %d rounds"):format(_VERSION, cpu, ROUNDS))
local base = median(tb_t)
print(("%-48s %8.2f us/fork  (%.2fx)"):format("as.tasks{backtrace=false}, 100,000 forks", median(tasks_t) * 1e6, median(tasks_t) / base))
print(("%-48s %8.2f us/fork  (%.2fx)"):format("as.dump(), 10,000 forks", median(dump_t) * 1e6, median(dump_t) / base))
print(("%-48s %8.2f us/coroutine"):format("debug.traceback(co), 10,000 coroutines", base * 1e6))
