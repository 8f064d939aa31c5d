-- bench/profile.lua: the profiler's overhead (issue 16 item 4), side by side.
-- A busy program (forks driving generators over a few frames of Lua) runs
-- with and without as.profile sampling at 997 Hz, interleaved, and the
-- medians of its CPU time (os.clock: the handler's time counts) are
-- compared. Target: <= 1.03 in "cpu" mode. Also printed: the cost of one
-- signal (handler + naming at the safe points), from the difference.
--
--   make bench               (all rows; this file is its last step)
--   lua5.4 bench/profile.lua [--quick]

local as = require "asyncstack"
local H = dofile("bench/harness.lua")
local format = string.format

local quick = false
for _, a in ipairs(arg or {}) do
  if a == "--quick" then quick = true end
end
local rounds = quick and 3 or 9
local WORK = quick and 1500 or 4000     -- generator steps per fork

local function leaf(n)
  local x = 0
  for i = 1, n do x = x + (i % 7) * 0.5 end
  return x
end
local function middle(n) return leaf(n) + 1 end
local function gen(steps)
  return coroutine.wrap(function()
    for _ = 1, steps do coroutine.yield(middle(2000)) end
  end)
end
local function worker(steps)
  local sum = 0
  for v in gen(steps) do
    sum = sum + v
    if steps % 3 == 0 then as.yield() end
  end
  return sum
end

local function busy()
  local t0 = os.clock()
  as.run(function()
    local fs = {}
    for i = 1, 4 do fs[i] = as.fork(worker, WORK + i) end
    as.wait_all(fs)
  end)
  return os.clock() - t0
end

local function measure(mode)
  local off, on, signals, samples, handler, naming = {}, {}, 0, 0, 0, 0
  busy()  -- warm up
  for r = 1, rounds do
    local function run_on()
      as.profile.start { hz = 997, mode = mode }
      local t = busy()
      local p = as.profile.stop()
      local info = p:info()
      signals, samples = signals + info.signals, samples + info.samples
      handler, naming = handler + info.handler_seconds, naming + info.naming_seconds
      on[#on + 1] = t
    end
    local function run_off() off[#off + 1] = busy() end
    if r % 2 == 1 then run_on(); run_off() else run_off(); run_on() end
  end
  return H.median(on), H.median(off), signals / rounds, samples / rounds,
         handler / rounds, naming / rounds
end

print(H.header())
print("| row | ours | baseline | ratio | target | met |")
print("|---|---|---|---|---|---|")
-- The medians' ratio is what the row judges; the handler's and the
-- naming's own clocks (profile:info()) say where the time goes, and are
-- steadier than a difference of medians on a loaded machine.
local function detail(signals, samples, handler, naming, off)
  return format("%.0f signals, %.0f samples per run of %s; handler %.1f us per signal, " ..
                "naming %.1f us per sample; handler + naming = %.2f %% of the run",
                signals, samples, H.time(off),
                signals > 0 and handler / signals * 1e6 or 0,
                samples > 0 and naming / samples * 1e6 or 0,
                100 * (handler + naming) / off)
end

local on, off, signals, samples, handler, naming = measure("cpu")
H.row { id = "P1", name = "busy program, cpu profile at 997 Hz vs none (CPU time)",
        ours = on, base = off, max = 1.03 }
H.note(detail(signals, samples, handler, naming, off) ..
       " (CPU-time timers fire at the kernel tick: each signal weighs its overruns)")
on, off, signals, samples, handler, naming = measure("wall")
H.row { id = "P2", name = "busy program, wall profile at 997 Hz (5 forks) vs none (CPU time)",
        ours = on, base = off, target = "report" }
H.note(detail(signals, samples, handler, naming, off) .. " (a sample per live fork per tick)")
