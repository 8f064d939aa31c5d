-- stuck.lua: a program that hangs, to look at from outside with the
-- `asyncstack` command or gdb (README, "Debugging a live process or a
-- core"): a fetcher waits for a reply that never comes (an fd), a consumer
-- for a channel nobody sends on, workers sleep, a gatherer waits for them
-- all, and main waits for the gatherer.
--
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' lua5.4 examples/stuck.lua &
--   build/bin/asyncstack ps $!
local as = require "asyncstack"
local socket = require "socket"

local server = assert(socket.bind("127.0.0.1", 0))
local _, port = server:getsockname()

local function fetch()
  local conn = assert(socket.connect("127.0.0.1", port))
  return as.wait_fd(conn:getfd(), "r")      -- the reply never comes
end

local function work(seconds)
  as.sleep(seconds)
  return seconds
end

local function gather(jobs)
  return as.wait_all(jobs)
end

as.run(function()
  local jobs = {}
  for i = 1, 2 do
    jobs[i] = as.fork(work, 600 * i)
    jobs[i]:name("worker " .. i)
  end
  as.fork(fetch):name("fetcher")
  local updates = as.channel()
  as.fork(function() for u in updates do print(u) end end):name("consumer")
  local gatherer = as.fork(gather, jobs)
  gatherer:name("gatherer")
  as.wait(gatherer)
end)
