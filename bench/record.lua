-- bench/record.lua: what `asyncstack record PID` costs (issue 16 item 3).
-- A child lua5.4 runs a busy fork (crunch() in a loop, yielding between
-- calls) beside N sleeping forks. Two figures:
--   * the tool's own time per tick that reads the process (its summary line
--     prints it), in cpu mode and in wall mode (wall reads up to 256
--     suspended forks per tick: run at a lower rate);
--   * the target's speed: crunch() calls per CPU second with and without a
--     recording at 997 Hz (the target is never stopped: only
--     process_vm_readv's reads of its memory).
-- Medians of ROUNDS runs.
--
--   make bench   (or: LUA_PATH=... LUA_CPATH='build/?.so;;' lua5.4 bench/record.lua [N])
local socket = require "socket"
local dir_of = (arg and arg[0] or ""):match("^(.*)[/\\][^/\\]*$") or "."
local H = dofile(dir_of .. "/harness.lua")

local N = math.tointeger(tonumber(arg and arg[1])) or 100000
local ROUNDS = 3
local SECONDS = 2

local core = assert(package.searchpath("asyncstack.core", package.cpath))
local tool = (core:match("^(.*)/asyncstack/core%.so$") or "build") .. "/bin/asyncstack"

local dir = io.popen("mktemp -d /tmp/asyncstack-bench.XXXXXX"):read("l")
local ready, rate = dir .. "/ready", dir .. "/rate"
local pid = H.start_child(dir, ([[
  local as = require "asyncstack"
  local function crunch(n) local h = 0 for i = 1, n do h = (h * 31 + i) %% 1000003 end return h end
  local function idle(n) as.sleep(86400 + n) end
  as.run(function()
    for i = 1, %d do as.fork(idle, i) end
    as.sleep(0.05)
    as.fork(function()
      -- every half second of CPU: crunch() calls per CPU second so far
      while true do
        local t0, calls = os.clock(), 0
        while os.clock() - t0 < 0.5 do crunch(2000) calls = calls + 1 as.yield() end
        local h = io.open(%q, "a") h:write(calls / (os.clock() - t0), "\n") h:close()
      end
    end)
    local h = io.open(%q, "w") h:write("ok") h:close()
    as.sleep(86400)
  end)
]]):format(N, rate, ready), ready)
local median = H.median

-- The tool's microseconds per read tick, median over ROUNDS recordings.
local function per_tick(args)
  local us = {}
  for i = 1, ROUNDS do
    local p = io.popen(("%s record %d %s --duration %g -o %s/out.folded 2>&1")
      :format(tool, pid, args, SECONDS, dir))
    local text = p:read("a")
    p:close()
    us[i] = assert(tonumber(text:match("(%d+) us per read tick")), text)
  end
  return median(us)
end

-- The target's crunch() rate over the next `seconds` (the lines it writes).
local function rate_over(seconds, during)
  os.remove(rate)
  if during then during() else socket.sleep(seconds) end
  local rates = {}
  for line in io.lines(rate) do rates[#rates + 1] = tonumber(line) end
  return median(rates)
end

local load = io.open("/proc/loadavg"):read("n")
print(("record   asyncstack record PID: a busy fork beside %d sleeping forks (median of %d runs; load average %.1f on %s cores)")
      :format(N, ROUNDS, load, io.popen("nproc"):read("l")))
print(("  cpu mode, 997 Hz          %6d us per read tick"):format(per_tick("--hz 997")))
print(("  wall mode, 50 Hz          %6d us per read tick (256 suspended forks read per tick)")
      :format(per_tick("--mode wall --hz 50")))
local without, with = {}, {}
for i = 1, ROUNDS do
  without[i] = rate_over(SECONDS)
  with[i] = rate_over(SECONDS, function()
    os.execute(("%s record %d --hz 997 --duration %g -o %s/out.folded 2>/dev/null")
      :format(tool, pid, SECONDS, dir))
  end)
end
local a, b = median(without), median(with)
print(("  target's crunch() calls per CPU second: %.0f without, %.0f while recorded at 997 Hz (ratio %.3f)")
      :format(a, b, b / a))
os.execute("kill -9 " .. pid)
os.execute("rm -rf " .. dir)
