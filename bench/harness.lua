-- bench/harness.lua: what every benchmark row shares: CPU-time batches,
-- interleaved repetitions, medians, the header line, the result table and
-- child processes (for rows that need a process of their own).
--
-- Times are CPU time of this process (os.clock), not wall time: on a shared
-- machine time spent descheduled does not count, though cache and
-- hyper-thread contention still does. That is why each row runs ours and its
-- baseline in the same process, interleaved, and compares medians.

local H = {}

local clock, format = os.clock, string.format

H.clock = clock

-- Options, set by the driver (bench/run.lua) from its command line.
H.rounds = 9        -- interleaved repetitions per measurement
H.batch_time = 0.05 -- seconds of CPU a calibrated batch aims at

function H.median(t)
  local s = {}
  for i = 1, #t do s[i] = t[i] end
  table.sort(s)
  local n = #s
  if n == 0 then return 0 / 0 end
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return (s[n // 2] + s[n // 2 + 1]) / 2
end

local function read_file(path)
  local f = io.open(path)
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end
H.read_file = read_file

local function first_line(cmd)
  local p = io.popen(cmd .. " 2>/dev/null")
  if not p then return nil end
  local line = p:read("l")
  p:close()
  return line
end
H.first_line = first_line

-- Starts `lua5.4 <dir>/child.lua` in the background, the script written
-- from `source`, and waits (up to 300 s) until it creates the file `ready`
-- (its way of saying its forks are in place). Returns the child's pid.
-- For the rows that time a command reading another process (outside.lua,
-- record.lua).
function H.start_child(dir, source, ready)
  local socket = require "socket"
  local script = dir .. "/child.lua"
  local f = assert(io.open(script, "w"))
  f:write(source)
  f:close()
  local pid = tonumber(io.popen(("lua5.4 %s >/dev/null 2>&1 & echo $!"):format(script)):read("l"))
  local function exists(p) local x = io.open(p) if x then x:close() end return x ~= nil end
  local deadline = socket.gettime() + 300
  while not exists(ready) and socket.gettime() < deadline do socket.sleep(0.05) end
  assert(exists(ready), "the child did not start its forks")
  return pid
end

function H.cpu_model()
  local info = read_file("/proc/cpuinfo") or ""
  local model = info:match("model name%s*:%s*([^\n]+)") or "unknown CPU"
  local n = 0
  for _ in info:gmatch("\nprocessor%s*:") do n = n + 1 end
  if info:match("^processor%s*:") then n = n + 1 end
  return model, n
end

-- The header line: Lua version, CPU, load, commit, date.
function H.header()
  local model, ncpu = H.cpu_model()
  local load = (read_file("/proc/loadavg") or ""):match("^(%S+)") or "?"
  -- ASYNCSTACK_BENCH_COMMIT names the commit of a tree without .git (an
  -- export made with `git archive`)
  local commit = os.getenv("ASYNCSTACK_BENCH_COMMIT")
  if not commit then
    commit = first_line("git rev-parse --short HEAD") or "unknown"
    if first_line("git status --porcelain --untracked-files=no") then
      commit = commit .. "+uncommitted"
    end
  end
  return format("%s, %s (%d CPUs), load %s, commit %s, %s", _VERSION, model, ncpu,
                load, commit, os.date("!%Y-%m-%d %H:%M UTC"))
end

------------------------------------------------------------------ timing

-- A batch function takes an operation count n, runs n operations and returns
-- the CPU seconds they took (it times itself, so setup stays outside).
-- calibrate finds an n whose batch takes at least H.batch_time.
function H.calibrate(batch, start)
  local n = start or 100
  collectgarbage()
  while true do
    local t = batch(n)
    if t >= H.batch_time or n >= 1e8 then return n end
    local grow = t > 0 and math.ceil(H.batch_time / t * 1.2) or 10
    n = n * math.max(2, math.min(grow, 10))
  end
end

-- Runs the batches of `sides` (name -> batch function) interleaved, H.rounds
-- times each, alternating the order every round, with a full collection
-- before each batch. Returns name -> median seconds per operation.
-- `counts` (optional, name -> n) fixes the operation counts.
function H.interleave(sides, order, counts)
  counts = counts or {}
  for _, name in ipairs(order) do
    counts[name] = counts[name] or H.calibrate(sides[name])
  end
  local samples = {}
  for _, name in ipairs(order) do samples[name] = {} end
  for r = 1, H.rounds do
    for k = 1, #order do
      local name = order[r % 2 == 1 and k or #order - k + 1]
      collectgarbage()
      local t = sides[name](counts[name])
      local s = samples[name]
      s[#s + 1] = t / counts[name]
    end
  end
  local medians = {}
  for _, name in ipairs(order) do medians[name] = H.median(samples[name]) end
  return medians, samples
end

-- Medians of `rounds` runs of fn() (which returns a number), interleaved
-- with the other functions of `fns` the same way; no calibration.
function H.repeat_interleaved(fns, order, rounds)
  local samples = {}
  for _, name in ipairs(order) do samples[name] = {} end
  for r = 1, rounds or H.rounds do
    for k = 1, #order do
      local name = order[r % 2 == 1 and k or #order - k + 1]
      collectgarbage()
      local s = samples[name]
      s[#s + 1] = fns[name]()
    end
  end
  local medians = {}
  for _, name in ipairs(order) do medians[name] = H.median(samples[name]) end
  return medians, samples
end

------------------------------------------------------------------ output

-- Quantities: a value plus its unit kind ("time" in seconds, "bytes", "kB",
-- "count"), printed in a readable unit.
function H.time(s)
  if s ~= s then return "n/a" end
  if s < 1e-6 then return format("%.0f ns", s * 1e9) end
  if s < 1e-3 then return format("%.2f us", s * 1e6) end
  if s < 1 then return format("%.2f ms", s * 1e3) end
  return format("%.2f s", s)
end

function H.bytes(b)
  if b < 10 * 1024 then return format("%.0f B", b) end
  if b < 10 * 1024 * 1024 then return format("%.1f KiB", b / 1024) end
  return format("%.1f MiB", b / (1024 * 1024))
end

local results = {}
H.results = results

local COLUMNS = "| row | ours | baseline | ratio | target | met |"
local RULE    = "|-----|------|----------|-------|--------|-----|"

function H.table_header()
  print(COLUMNS)
  print(RULE)
  io.stdout:flush()
end

-- Prints one row of the table. spec:
--   id, name        "1a", "fork+wait vs coroutine.create+resume"
--   ours, base      numbers (seconds unless fmt says otherwise)
--   fmt             formatter for ours/base (default H.time)
--   max             target: ours/base must be <= max (nil: report only)
--   limit           target on ours alone (an absolute figure in ours' unit):
--                   ours <= limit; the ratio is still printed when there is
--                   a base
--   target          text of the target (default "<= max" or "<= limit")
--   ratio           override the ratio (default ours/base)
--   skip            reason: prints the row as skipped
--   note            extra text after the row
local function target_text(spec, fmt)
  if spec.target then return spec.target end
  if spec.max then return format("<= %.2f", spec.max) end
  if spec.limit then return "<= " .. fmt(spec.limit) end
  return "report"
end

function H.row(spec)
  local fmt = spec.fmt or H.time
  local line, met
  if spec.skip then
    met = "skipped"
    line = format("| %s %s | — | — | — | %s | skipped: %s |", spec.id, spec.name,
                  target_text(spec, fmt), spec.skip)
  else
    local ratio = spec.ratio or (spec.base and spec.ours / spec.base)
    local target = target_text(spec, fmt)
    if spec.max then met = ratio <= spec.max and "met" or "NOT MET"
    elseif spec.limit then met = spec.ours <= spec.limit and "met" or "NOT MET"
    else met = "—" end
    line = format("| %s %s | %s | %s | %s | %s | %s |", spec.id, spec.name,
                  spec.ours and fmt(spec.ours) or "—", spec.base and fmt(spec.base) or "—",
                  ratio and format("%.3f", ratio) or "—", target, met)
    spec.ratio_value = ratio
  end
  spec.met = met
  results[#results + 1] = spec
  print(line)
  if spec.note then print("|   | " .. spec.note .. " | | | | |") end
  io.stdout:flush()
end

-- A line that is not a table row (a row's detail), kept as a table row so
-- the whole output pastes into Markdown.
function H.note(text)
  print("|   | " .. text .. " | | | | |")
  io.stdout:flush()
end

-- The driver gets rows as printed lines (each row runs in a child): count
-- them by their last cell.
function H.count_line(line)
  local id = line:match("^| (%w+) ")
  local last = line:match("| ([^|]*) |$")
  if not id or not last then return end
  local met = last == "met" and "met" or last == "NOT MET" and "NOT MET"
              or last:match("^skipped") and "skipped" or nil
  if met then results[#results + 1] = { id = id, met = met } end
end

function H.summary()
  local met, missed, skipped, names = 0, 0, 0, {}
  for _, r in ipairs(results) do
    if r.met == "met" then met = met + 1
    elseif r.met == "NOT MET" then missed = missed + 1; names[#names + 1] = r.id
    elseif r.met == "skipped" then skipped = skipped + 1 end
  end
  print()
  print(format("targets: %d met, %d not met%s, %d skipped", met, missed,
               #names > 0 and " (" .. table.concat(names, ", ") .. ")" or "", skipped))
end

------------------------------------------------------------------ children

-- The interpreter running this script (arg[-1] as lua.c sets it).
function H.interpreter()
  local i, exe = -1, nil
  while arg and arg[i] do exe = arg[i]; i = i - 1 end
  return exe or "lua5.4"
end

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
H.shell_quote = shell_quote

local function child_command(env, script, args)
  local parts = {}
  for k, v in pairs(env or {}) do parts[#parts + 1] = k .. "=" .. shell_quote(v) end
  parts[#parts + 1] = shell_quote(H.interpreter())
  parts[#parts + 1] = shell_quote(script)
  for _, a in ipairs(args or {}) do parts[#parts + 1] = shell_quote(a) end
  return table.concat(parts, " ")
end

-- Runs `lua script args...` with environment overrides, calling on_line for
-- each line of its stdout as it comes; raises if the child fails.
function H.stream_child(env, script, args, on_line)
  local cmd = child_command(env, script, args)
  local p = assert(io.popen(cmd, "r"))
  for line in p:lines() do on_line(line) end
  local ok, how, code = p:close()
  if not ok then
    error(format("child failed (%s %s): %s", tostring(how), tostring(code), cmd), 0)
  end
end

-- The same, returning the whole stdout.
function H.run_child(env, script, args)
  local out = {}
  H.stream_child(env, script, args, function(line) out[#out + 1] = line end)
  return table.concat(out, "\n")
end

-- The directory holding asyncstack/core.so as found on package.cpath.
function H.core_dir()
  local path = package.searchpath("asyncstack.core", package.cpath)
  if not path then return nil end
  return (path:gsub("asyncstack/core%.so$", ""):gsub("/$", ""))
end

-- Peak resident set size of this process, in kB (VmHWM).
function H.peak_rss_kb()
  local status = read_file("/proc/self/status") or ""
  return tonumber(status:match("VmHWM:%s*(%d+)"))
end

function H.rss_kb()
  local status = read_file("/proc/self/status") or ""
  return tonumber(status:match("VmRSS:%s*(%d+)"))
end

return H
