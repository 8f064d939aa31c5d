-- examples/hot.lua: a program with one hot function, for `asyncstack
-- record` (README "Profiling"): the fork "cruncher" spends its time in
-- crunch(), a fork "ticker" wakes up every 10 ms, and main waits for both.
-- Runs for SECONDS (default 30), then exits.
--
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' \
--     lua5.4 examples/hot.lua [SECONDS] &
--   build/bin/asyncstack record $! --duration 3 -o hot.svg
local as = require "asyncstack"

local seconds = tonumber(arg[1]) or 30

local function crunch(n)            -- the hot function
  local h = 0
  for i = 1, n do h = (h * 31 + i) % 1000003 end
  return h
end

local function cruncher(deadline)
  local total = 0
  while as.now() < deadline do
    total = total + crunch(20000)
    as.yield()                       -- let the ticker run
  end
  return total
end

local function ticker(deadline)
  local ticks = 0
  while as.now() < deadline do
    as.sleep(0.01)
    ticks = ticks + 1
  end
  return ticks
end

as.run(function()
  local deadline = as.now() + seconds
  local c = as.fork(cruncher, deadline)
  c:name("cruncher")
  local t = as.fork(ticker, deadline)
  t:name("ticker")
  local stat = assert(io.open("/proc/self/stat"))
  local pid = stat:read("l"):match("^%d+")
  stat:close()
  print(("hot.lua: process %s running for %g s"):format(pid, seconds))
  io.stdout:flush()
  as.wait(c)
  as.wait(t)
end)
