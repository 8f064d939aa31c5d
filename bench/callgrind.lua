-- bench/callgrind.lua: rows 1, 2 and 4 of bench/run.lua, and the
-- peer-free kernels of rows 13, 17 and 18, as instruction counts under
-- `valgrind --tool=callgrind`, which do not drift with machine load. `make bench-callgrind` runs it; from the repository root:
--
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' \
--     lua5.4 bench/callgrind.lua [--ops N] [--out DIR]
--
-- Each kernel of bench/kernels.lua runs in a child process under callgrind
-- twice, with N and 2N operations; (instructions(2N) - instructions(N)) / N
-- cancels start-up, module loading and as.run's own set-up and leaves the
-- instructions of one operation. Row 4 runs the same kernels against the
-- no-tracking build (ASYNCSTACK_BENCH_NOTRACK, default build-notrack).
--
-- With --profile [kernel ...] (`make bench-profile`) it runs the kernels
-- (default fork_wait and as_yield) under bench/luaprof, a Lua interpreter
-- linked with the static liblua that keeps Lua's internal function names,
-- and prints the instructions per operation of each function, exclusive and
-- inclusive: where one fork+wait or one as.yield() spends its instructions.

local dir = (arg and arg[0] or ""):match("^(.*)[/\\][^/\\]*$") or "."
local H = dofile(dir .. "/harness.lua")
local K = dofile(dir .. "/kernels.lua")

local format = string.format
local RUN = dir .. "/run.lua"

local opts = { ops = 20000, kernels = {} }
do
  local i = 1
  while arg[i] do
    local a = arg[i]
    if a == "--ops" then
      i = i + 1; opts.ops = assert(tonumber(arg[i]), "--ops N")
    elseif a == "--out" then
      i = i + 1; opts.out = arg[i]
    elseif a == "--profile" then
      opts.profile = true
    elseif a == "--quick" then
      opts.ops = 5000
    elseif a:match("^%-%-") then
      -- options of bench/run.lua passed through BENCH_ARGS: ignored here
      if a == "--rounds" or a == "--batch-time" then i = i + 1 end
    else
      opts.kernels[#opts.kernels + 1] = a
    end
    i = i + 1
  end
end

local on_dir = H.core_dir() or "build"
local off_dir = os.getenv("ASYNCSTACK_BENCH_NOTRACK") or "build-notrack"
local out_dir = opts.out or (on_dir .. "/bench/callgrind")
os.execute("mkdir -p " .. H.shell_quote(out_dir))

if not H.first_line("command -v valgrind") then
  print("valgrind not found: install it (apt-get install valgrind) for bench-callgrind")
  os.exit(1)
end

local function read_total(path)
  local text = H.read_file(path) or ""
  local total = text:match("\ntotals:%s*(%d+)") or text:match("\nsummary:%s*(%d+)")
  return assert(tonumber(total), "no totals in " .. path)
end

-- Runs `kernel` with n operations under callgrind; returns the out file.
local function callgrind(interp, cpath, kernel, n, tag)
  local out = format("%s/%s.%s.%d.out", out_dir, kernel, tag, n)
  local cmd = format("LUA_CPATH=%s valgrind --tool=callgrind --callgrind-out-file=%s %s %s --child %s --ops %d --rounds 1 >/dev/null 2>%s",
                     H.shell_quote(cpath .. "/?.so;;"), H.shell_quote(out), H.shell_quote(interp),
                     H.shell_quote(RUN), kernel, n, H.shell_quote(out .. ".log"))
  local ok = os.execute(cmd)
  if not ok then error("callgrind run failed: " .. cmd .. " (see " .. out .. ".log)", 0) end
  return out
end

-- Instructions per operation of `kernel` on the build in `cpath`; `scale`
-- divides the operation count for kernels whose operation is long.
local function per_op(kernel, cpath, tag, scale)
  local n = math.max(10, opts.ops // (scale or 1))
  local a = read_total(callgrind(H.interpreter(), cpath, kernel, n, tag))
  local b = read_total(callgrind(H.interpreter(), cpath, kernel, 2 * n, tag))
  return (b - a) / n
end

local function instr(x) return format("%.0f instr", x) end

------------------------------------------------------------- profile mode

-- Per-function instructions per op from callgrind_annotate outputs for n
-- and 2n operations.
local function annotate(file, inclusive)
  local p = assert(io.popen(format("callgrind_annotate --threshold=100 %s %s 2>/dev/null",
                                   inclusive and "--inclusive=yes" or "", H.shell_quote(file))))
  local t = {}
  for line in p:lines() do
    local count, fn = line:match("^%s*([%d,]+)%s+%b()%s+(.+)$")
    if not count then count, fn = line:match("^%s*([%d,]+)%s+(%S.+)$") end
    if count and not fn:match("^=>") and not fn:match("PROGRAM TOTALS") then
      -- "file:function [object]": callgrind splits a function by the source
      -- file of each instruction (inlined header code, "???" when unknown).
      -- Exclusive counts of the parts add up; inclusive ones repeat the
      -- whole, so keep the largest.
      fn = fn:gsub("%s*%[.-%]$", "")
      if not fn:match("^<") then fn = fn:match("^.*:([^:]+)$") or fn end
      local v = tonumber((count:gsub(",", "")))
      if inclusive then t[fn] = math.max(t[fn] or 0, v) else t[fn] = (t[fn] or 0) + v end
    end
  end
  p:close()
  return t
end

-- `skip_above`: leave out entries at or above this count (for inclusive
-- lists: the interpreter and as.run frames that contain the whole loop).
local function top_diff(fa, fb, n, limit, min, skip_above)
  local rows = {}
  for fn, v in pairs(fb) do
    local d = (v - (fa[fn] or 0)) / n
    if d >= min and not (skip_above and d >= skip_above) then rows[#rows + 1] = { fn, d } end
  end
  table.sort(rows, function(x, y) return x[2] > y[2] end)
  for i = 1, math.min(limit, #rows) do print(format("  %8.0f  %s", rows[i][2], rows[i][1])) end
end

if opts.profile then
  local luaprof = os.getenv("ASYNCSTACK_BENCH_LUAPROF") or (on_dir .. "/bench/luaprof")
  if not io.open(luaprof) then
    print(luaprof .. " missing: `make bench-profile` builds it")
    os.exit(1)
  end
  if not H.first_line("command -v callgrind_annotate") then
    print("callgrind_annotate not found (it comes with valgrind)")
    os.exit(1)
  end
  local kernels = #opts.kernels > 0 and opts.kernels or { "fork_wait", "as_yield" }
  print(H.header())
  print(format("callgrind profile under %s, per operation ((2N - N) / N, N = %d)", luaprof, opts.ops))
  for _, kernel in ipairs(kernels) do
    local n = opts.ops
    local a = callgrind(luaprof, on_dir, kernel, n, "profile")
    local b = callgrind(luaprof, on_dir, kernel, 2 * n, "profile")
    print()
    local total = (read_total(b) - read_total(a)) / n
    print(format("== %s: %.0f instructions per operation", kernel, total))
    print("exclusive (the function's own instructions):")
    top_diff(annotate(a, false), annotate(b, false), n, 30, 5)
    print("inclusive (with its callees; recursion counted once per level;")
    print("frames holding 90 % or more of the operation, the driver loop, left out):")
    top_diff(annotate(a, true), annotate(b, true), n, 40, 20, 0.9 * total)
  end
  return
end

------------------------------------------------------------- count mode

print(H.header())
print(format("instructions per operation under callgrind ((2N - N) / N, N = %d); ratio = ours / baseline", opts.ops))
print()
H.table_header()

local function pair(id, name, ours, base, max, target)
  H.row { id = id, name = name, ours = ours, base = base, max = max, target = target, fmt = instr }
end

local ours_fork = per_op("fork_wait", on_dir, "on")
pair("1a", "fork+run+wait vs coroutine.create+resume", ours_fork,
     per_op("co_create_resume", on_dir, "on"), 2.0)
if K.have_cqueues then
  pair("1b", "fork+run+wait vs cqueues wrap+loop", ours_fork,
       per_op("cq_wrap_loop", on_dir, "on"), 0.2, "<= 0.20 (5x faster)")
else
  H.row { id = "1b", name = "fork+run+wait vs cqueues wrap+loop", max = 0.2, skip = K.cqueues_missing }
end

local ours_yield = per_op("as_yield", on_dir, "on")
pair("2a", "as.yield() round trip vs raw resume/yield pair", ours_yield,
     per_op("co_resume_yield", on_dir, "on"), 1.5)
if K.have_cqueues then
  pair("2b", "as.yield() round trip vs cqueues poll()", ours_yield,
       per_op("cq_poll", on_dir, "on"), 1 / 3, "<= 0.33 (3x faster)")
else
  H.row { id = "2b", name = "as.yield() vs cqueues poll()", max = 1 / 3, skip = K.cqueues_missing }
end

if io.open(off_dir .. "/asyncstack/core.so") then
  pair("4a", "row 1 (fork+run+wait), watchers on vs off", ours_fork,
       per_op("fork_wait", off_dir, "off"), 1.05, "<= 1.05 (5 %)")
  pair("4b", "row 2 (as.yield), watchers on vs off", ours_yield,
       per_op("as_yield", off_dir, "off"), 1.05, "<= 1.05 (5 %)")
  pair("4c", "bridged coroutine.resume/yield in a fork, on vs off",
       per_op("bridged_resume", on_dir, "on"), per_op("bridged_resume", off_dir, "off"))
else
  local why = off_dir .. "/asyncstack/core.so missing: run `make notrack`"
  H.row { id = "4a", name = "row 1, watchers on vs off", max = 1.05, skip = why }
  H.row { id = "4b", name = "row 2, watchers on vs off", max = 1.05, skip = why }
end

-- issue 17's rows whose kernels have no peer in them (bench/run.lua rows
-- 13, 17 and 18), for the instructions behind the timed figures
pair("13", "channel ping-pong (2 messages) vs raw coroutine pair",
     per_op("channel_pingpong", on_dir, "on"), per_op("co_pingpong", on_dir, "on"), 3.0)
pair("17", "error through 3 waiting forks vs pcall through 3 coroutine.wrap",
     per_op("fork_error_chain", on_dir, "on", 20), per_op("pcall_wraps", on_dir, "on", 20), 5.0)
H.row { id = "18", name = format("async trace text, chain of %d forks (per trace)", K.TRACE_CHAIN),
        ours = per_op("trace_chain", on_dir, "on", 200), fmt = instr }
H.summary()
print("callgrind files: " .. out_dir)
