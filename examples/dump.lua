-- dump.lua: "async backtrace all" for Lua, in the spirit of BugStalker's
-- tokio example: a few forks sleep for different times, one waits for
-- another, one blocks on a wait that nobody will satisfy soon; the dump shows
-- each with its state, how long, where it is suspended and who spawned it.
--
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' lua5.4 examples/dump.lua
local as = require "asyncstack"

local function nap(seconds)
  as.sleep(seconds)                         -- each sleeper's await point
end

local function slow_job()
  nap(0.3)
  return "slow result"
end

local function supervisor(job)
  return as.wait(job)                       -- waits for the slow job
end

as.run(function()
  for i, seconds in ipairs({ 0.2, 0.5, 1.0 }) do
    as.fork(nap, seconds):name("sleeper " .. i)
  end
  local job = as.fork(slow_job)
  job:name("slow job")
  as.fork(supervisor, job):name("supervisor")
  as.sleep(0.1)                             -- let them all reach their await points
  io.write(as.dump())
end)
