-- Allocation-failure sweep (issue 13): drives src-test/oomhost.c over
-- src-test/oomprog.lua and prints the figures.
--
--   lua5.4 tools/oomtest.lua HOST [--sample K] [--modes every,next] [--jobs J]
--                                 [--program FILE]
--
-- Without --sample every failure point 1..T (T = the program's allocation
-- count, measured first) is tried in each mode; with --sample K, K points
-- spread evenly over 1..T per mode (`make test`, through spec/oom_spec.lua).
-- The module and LuaSocket come from LUA_PATH / LUA_CPATH. --program runs
-- another program table (setup, program, check, is_memory; see
-- src-test/oomprog.lua), e.g. spec/random/oomprog.lua, a random program of
-- spec/random/generator.lua (spec/random_spec.lua's allocation-failure mode).
--
-- Outcomes per failure point (see oomhost.c): completed and memory are
-- clean; error, broken, leak, crash (the host died: an ASan report, an
-- abort, a signal) and hang (no end within 20 s) are defects. A crash is reported with the failure point
-- and ASan's first lines, and the sweep goes on after it.
--
-- Known defects: tools/oomtest-known.txt, one per line,
--   <issue-13 defect> | <outcome> | <Lua pattern on "step :: message">
-- A matching result counts as known (reported, never skipped). Anything
-- else is a failure; so is, in a full sweep, a line that matched nothing
-- (the defect is fixed: remove the line). Exit status 0 when no failure.

local host = assert(arg[1], "usage: tools/oomtest.lua HOST [--sample K] [--modes every,next]")
local DEFAULT_PROGRAM = "src-test/oomprog.lua"
local program = DEFAULT_PROGRAM
local sample, modes, jobs, worker = nil, { "every", "next" }, 2, nil
do
  local i = 2
  while arg[i] do
    if arg[i] == "--sample" then sample = tonumber(arg[i + 1]); i = i + 2
    elseif arg[i] == "--program" then program = assert(arg[i + 1], "--program FILE"); i = i + 2
    elseif arg[i] == "--jobs" then jobs = assert(tonumber(arg[i + 1]), "--jobs N"); i = i + 2
    elseif arg[i] == "--worker" then
      worker = { mode = arg[i + 1], from = tonumber(arg[i + 2]), last = tonumber(arg[i + 3]), step = tonumber(arg[i + 4]) }
      i = i + 5
    elseif arg[i] == "--modes" then
      modes = {}
      for m in arg[i + 1]:gmatch("[^,]+") do modes[#modes + 1] = m end
      i = i + 2
    else error("oomtest: unknown option " .. arg[i]) end
  end
end
local KNOWN_FILE = "tools/oomtest-known.txt"

local known = {}
do
  local f = io.open(KNOWN_FILE)
  if f then
    for line in f:lines() do
      if not line:match("^%s*#") and line:match("%S") then
        local defect, outcome, pattern = line:match("^%s*(.-)%s*|%s*(.-)%s*|%s*(.-)%s*$")
        assert(defect and pattern ~= "", KNOWN_FILE .. ": bad line: " .. line)
        known[#known + 1] = { defect = defect, outcome = outcome, pattern = pattern, seen = 0 }
      end
    end
    f:close()
  end
end

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function count_allocations()
  local p = assert(io.popen(("%s %s count 2>&1"):format(q(host), q(program))))
  local out = p:read("a")
  p:close()
  local t = tonumber(out:match("allocations (%d+)"))
  if not t then
    io.write("oomtest: the program fails without any allocation failure:\n", out)
    os.exit(1)
  end
  return t
end

-- The first lines of an ASan / abort report, with our frames.
local function crash_summary(stderr)
  local lines = {}
  local head = stderr:match("[^\n]*ERROR: AddressSanitizer[^\n]*") or stderr:match("[^\n]*runtime error:[^\n]*")
    or stderr:match("[^\n]*Assertion[^\n]*") or stderr:match("[^\n]*LeakSanitizer[^\n]*")
  lines[#lines + 1] = head or ("no sanitizer report; stderr ends:\n" .. stderr:sub(-600))
  local n = 0
  for frame in stderr:gmatch("\n    (#%d+ [^\n]*)") do
    if frame:match("core%.so") or frame:match("src/") then
      lines[#lines + 1] = "      " .. frame
      n = n + 1
      if n >= 6 then break end
    end
  end
  local summary = stderr:match("SUMMARY: [^\n]*")
  if summary then lines[#lines + 1] = "    " .. summary end
  return table.concat(lines, "\n")
end

local function normalise(s)
  return (s:gsub("fork #%d+", "fork #K"):gsub("channel #%d+", "channel #K")
           :gsub("0x%x+", "0x?"):gsub("%d+%.%d+s", "?s"))
end

local failures, stats = 0, {}
local distinct, distinct_order = {}, {}

local function classify(mode, n, outcome, step, message)
  local st = stats[mode]
  st.tried = st.tried + 1
  st[outcome] = (st[outcome] or 0) + 1
  if outcome == "completed" or outcome == "memory" then return end
  local text = step .. " :: " .. message
  local label = "FAILURE"
  for _, k in ipairs(known) do
    if k.outcome == outcome and text:find(k.pattern) then
      k.seen = k.seen + 1
      label = "known " .. k.defect
      st.known = st.known + 1
      break
    end
  end
  if label == "FAILURE" then failures = failures + 1; st.unknown = st.unknown + 1 end
  local key = label .. " " .. mode .. " " .. outcome .. " " .. normalise(text:sub(1, 200))
  local d = distinct[key]
  if not d then
    d = { mode = mode, outcome = outcome, first = n, count = 0, label = label, text = text }
    distinct[key] = d
    distinct_order[#distinct_order + 1] = key
  end
  d.count = d.count + 1
end

-- Tries failure points from, from + step, ... up to last in one mode,
-- restarting the host after a point where it died; emit(n, outcome, step
-- name, message) for each point.
local function sweep(mode, from, last, step, emit)
  while from <= last do
    local errfile = os.tmpname()
    local p = assert(io.popen(("%s %s %s %d %d %d 2>%s"):format(q(host), q(program), mode, from, last, step, errfile)))
    local expect = from
    for line in p:lines() do
      local n, outcome, step_name, message = line:match("^N (%d+) (%S+) allocs=%d+ step=(.-) :: (.*)$")
      if n then
        emit(tonumber(n), outcome, step_name, message)
        expect = tonumber(n) + step
      end
    end
    local ok, how, code = p:close()
    local f = io.open(errfile)
    local stderr = f and f:read("a") or ""
    if f then f:close() end
    os.remove(errfile)
    if ok or expect > last then break end
    -- The host died at failure point `expect`.
    local died_in = "?"
    for name in stderr:gmatch("oomstep: ([^\n]*)") do died_in = name end
    if how == "exit" and code > 128 then how, code = "signal", code - 128 end  -- through the shell
    if how == "signal" and code == 14 then
      emit(expect, "hang", died_in, ("the program hung (SIGALRM after 20 s) at oom %s %d"):format(mode, expect))
    else
      emit(expect, "crash", died_in, ("host %s %s at oom %s %d: %s"):format(
        how, tostring(code), mode, expect, crash_summary(stderr):gsub("\n", "|")))
    end
    from = expect + step
  end
end

-- Worker (the parallel sweep starts several): one range, results to stdout.
if worker then
  sweep(worker.mode, worker.from, worker.last, worker.step, function(n, outcome, step_name, message)
    io.write(("R %d %s\t%s\t%s\n"):format(n, outcome, step_name, message))
    io.flush()
  end)
  os.exit(0)
end

local start = os.time()
local T = count_allocations()
print(("oomtest: %s allocates %d times (counted allocations) with no failure; %s, %d jobs per mode"):format(
  program, T, sample and ("sampling " .. sample .. " failure points per mode") or "trying every failure point", jobs))

-- Each mode's points are split into `jobs` contiguous ranges, all swept at
-- once (the program mostly sleeps in short timeouts: more processes than
-- cores still help); results are then read back in order.
local workers, script = {}, {}
for _, mode in ipairs(modes) do
  stats[mode] = { tried = 0, known = 0, unknown = 0 }
  local last = mode == "every" and T + 1 or T
  local step = sample and math.max(1, last // sample) or 1
  local points = (last - 1) // step + 1
  local per = (points + jobs - 1) // jobs
  for j = 0, jobs - 1 do
    local from = 1 + j * per * step
    local to = math.min(last, from + (per - 1) * step)
    if from <= last then
      local out = os.tmpname()
      workers[#workers + 1] = { mode = mode, out = out }
      script[#script + 1] = ("%s %s %s --program %s --worker %s %d %d %d > %s &"):format(
        q(arg[-1] or "lua5.4"), q(arg[0]), q(host), q(program), mode, from, to, step, out)
    end
  end
end
script[#script + 1] = "wait"
os.execute(table.concat(script, "\n"))
for _, w in ipairs(workers) do
  local f = assert(io.open(w.out))
  for line in f:lines() do
    local n, outcome, step_name, message = line:match("^R (%d+) (%S+)\t([^\t]*)\t(.*)$")
    if n then classify(w.mode, tonumber(n), outcome, step_name, message) end
  end
  f:close()
  os.remove(w.out)
end

print("oomtest: distinct defects (first failure point; replay one with")
print(("  LUA_PATH=... LUA_CPATH=... %s %s MODE N N 1)"):format(host, program))
for _, key in ipairs(distinct_order) do
  local d = distinct[key]
  print(("  [%s] %s at %d point%s, first oom %s %d: %s"):format(d.label, d.outcome, d.count,
    d.count == 1 and "" or "s", d.mode, d.first, d.text:gsub("|stack traceback:.*", ""):sub(1, 400)))
end
for _, mode in ipairs(modes) do
  local st, parts = stats[mode], {}
  for _, o in ipairs { "completed", "memory", "error", "broken", "leak", "crash", "hang" } do
    parts[#parts + 1] = ("%s %d"):format(o, st[o] or 0)
  end
  print(("oomtest: mode %-5s %d failure points tried: %s; %d known, %d unknown")
    :format(mode, st.tried, table.concat(parts, ", "), st.known, st.unknown))
end
if not sample and program == DEFAULT_PROGRAM then   -- the list is about that program
  for _, k in ipairs(known) do
    if k.seen == 0 then
      failures = failures + 1
      print(("oomtest: STALE known defect %s (%s | %s) matched nothing: remove it from %s")
        :format(k.defect, k.outcome, k.pattern, KNOWN_FILE))
    end
  end
end
print(("oomtest: %d allocations, %ds, %d unknown failure%s"):format(T, os.time() - start, failures,
  failures == 1 and "" or "s"))
os.exit(failures == 0 and 0 or 1)
