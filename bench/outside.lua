-- bench/outside.lua: `asyncstack ps PID` on a process with 100,000 live
-- forks (issue 15; target: under a second). A child lua5.4 spawns the
-- forks (each asleep in a Lua function, one frame to walk and name) and
-- says when they are all suspended; the command is then timed, as it runs
-- by default (process running), paused (--stop), and as JSON. Medians of
-- ROUNDS runs, wall-clock time of the whole command (start to exit).
--
--   make bench   (or: LUA_PATH=... LUA_CPATH='build/?.so;;' lua5.4 bench/outside.lua [N])
local socket = require "socket"
local dir_of = (arg and arg[0] or ""):match("^(.*)[/\\][^/\\]*$") or "."
local H = dofile(dir_of .. "/harness.lua")

local N = math.tointeger(tonumber(arg and arg[1])) or 100000
local ROUNDS = 5
local TARGET = 1.0

local core = assert(package.searchpath("asyncstack.core", package.cpath))
local tool = (core:match("^(.*)/asyncstack/core%.so$") or "build") .. "/bin/asyncstack"

local dir = io.popen("mktemp -d /tmp/asyncstack-bench.XXXXXX"):read("l")
local ready = dir .. "/ready"
local pid = H.start_child(dir, ([[
  local as = require "asyncstack"
  local function idle(n) as.sleep(86400 + n) end
  as.run(function()
    for i = 1, %d do as.fork(idle, i) end
    as.sleep(0.05)
    local f = io.open(%q, "w") f:write("ok") f:close()
    as.sleep(86400)
  end)
]]):format(N, ready), ready)
local median = H.median

-- Median wall time and median CPU time (user + system) of the command.
local function time(args)
  local walls, cpus = {}, {}
  local out = dir .. "/times"
  for i = 1, ROUNDS do
    local t0 = socket.gettime()
    local ok = os.execute(("/usr/bin/time -o %s -f '%%U %%S' %s %s >/dev/null"):format(out, tool, args))
    walls[i] = socket.gettime() - t0
    assert(ok, "asyncstack " .. args .. " failed")
    local h = assert(io.open(out))
    local user, sys = h:read("n", "n")
    h:close()
    cpus[i] = user + sys
  end
  return median(walls), median(cpus)
end

-- the rows the command shows: every fork plus main
local rows = 0
for _ in io.popen(("%s ps %d --format csv"):format(tool, pid)):lines() do rows = rows + 1 end
assert(rows == N + 2, ("asyncstack ps listed %d rows for %d forks"):format(rows - 1, N + 1))

local load = io.open("/proc/loadavg"):read("n")
print(("outside  asyncstack ps PID, %d live forks (median of %d runs; load average %.1f on %s cores)")
      :format(N, ROUNDS, load, io.popen("nproc"):read("l")))
for _, case in ipairs({ { "ps %d", "running" }, { "ps %d --stop", "paused (--stop)" },
                        { "ps %d --format json", "as JSON" } }) do
  local wall, cpu = time(case[1]:format(pid))
  print(("  %-16s wall %6.3f s  cpu %6.3f s   target wall < %.1f s: %s"):format(case[2], wall, cpu,
        TARGET, wall < TARGET and "met" or "NOT met"))
end
os.execute("kill -9 " .. pid)
os.execute("rm -rf " .. dir)
