-- bench/run.lua: the benchmarks of issues 7 and 17, side by side with their
-- baselines. `make bench` runs every row (rows 11-18 first); from the
-- repository root:
--
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' \
--     lua5.4 bench/run.lua [--quick] [--rounds N] [--batch-time S] [row ...]
--
-- Rows 11-18 are the lines 1-8 of issue 17's table, in that order (row 10 + k
-- is line k), asyncstack next to raw Lua and to its peers cqueues, luv and
-- copas (bench/peers.lua; a missing peer, or one with nothing idiomatic for
-- the row, gets a skipped line saying why):
--  11  fork + finish + wait, one at a time, vs coroutine.create+resume:
--        <= 2.0; vs cqueues wrap+loop, luv 0 ms timer + coroutine (report);
--        the least scheduler (bench/floor.c) vs raw and ours vs it (report)
--  12  as.yield() round trip vs raw resume/yield: <= 1.0; vs cqueues.poll(),
--        luv idle handle resuming a coroutine (report)
--  13  channel ping-pong, 2 messages, vs an echoing coroutine (ping in by
--        resume, pong out by yield): <= 3.0; vs cqueues mailboxes (report)
--  14  100,000 forks sleeping once, 0-10 ms, CPU of the whole run, vs
--        cqueues: <= 0.5; vs luv coroutines on uv timers (report); the least
--        scheduler (bench/floor.c) vs cqueues and ours vs it (report)
--  15  TCP echo on 127.0.0.1, 100 clients x 1000 lines, servers of
--        asyncstack (asyncstack.socket), cqueues, luv, copas in processes of
--        their own, one LuaSocket client for all (bench/echo.lua): server
--        CPU per request vs cqueues <= 0.8; server system calls per request
--        (strace -c -f, a separate run) <= 3
--  16  GC bytes per sleeping fork, 1,000,000 asleep, vs a suspended
--        coroutine: <= 1.2; vs cqueues, luv sleepers (report); RSS noted
--  17  an error raised in a fork caught by pcall through 3 waiting forks vs
--        the same through 3 coroutine.wrap: <= 5.0
--  18  as.traceback(async) text at the end of a chain of 100 waiting forks:
--        <= 0.3 ms (absolute), with only asyncstack loaded, then with the
--        peers loaded too (names are searched for in package.loaded)
-- Rows 1-2 and 11-12 run the same asyncstack kernels (bench/kernels.lua);
-- the issue 7 rows keep their numbers and targets.
--
-- Rows 1-10 (issue 7; the ratio is always ours / baseline):
--   1  fork + run to completion + wait (trivial body)
--        vs coroutine.create+resume: <= 2.0; vs cqueues wrap+loop: <= 0.2
--   2  as.yield() round trip vs a raw resume/yield pair: <= 1.5;
--        vs cqueues poll(): <= 0.33
--   3  100,000 forks each sleeping once: time per fork (report)
--   4  rows 1-2 with the async-stack watchers on vs off: <= 1.05
--        (child processes on build/ and build-notrack/, see `make notrack`)
--   5  as.traceback() 32 frames across 4 coroutines vs debug.traceback()
--        32 frames on one stack: <= 0.2
--   6  as.Exception() 32 frames deep vs debug.traceback() at that depth: <= 0.1
--   7  bytes per sleeping fork vs a bare suspended coroutine: <= 1.5;
--        peak RSS of 1,000,000 sleeping forks created and completed
--   8  as.tasks{backtrace=false} (100,000 forks) and as.dump() (10,000
--        forks) per fork, next to debug.traceback(co) per coroutine (report)
--   9  a value through a channel from one fork to another, capacity 0 and
--        64, next to a raw resume/yield pair (report)
--  10  debug.traceback() 80,000 frames deep inside a fork (the bridged
--        one) vs the same outside any fork (Lua's own): <= 2 (issue 12:
--        every walk linear in depth)
--
-- Each row runs ours and its baseline in this process, interleaved
-- (bench/harness.lua), and prints medians. Internal modes, used by row 4,
-- rows 7 and 16 and bench/callgrind.lua:
--   run.lua --child KERNEL --ops N [--rounds R]   prints seconds per op
--   run.lua --child-mem forks|coroutines|idle N    prints memory figures
--   run.lua --child-mem17 forks|coroutines|cqueues|luv N
--                                                  GC and RSS bytes per sleeper

-- harness and kernels are loaded with dofile, not require: whatever sits in
-- package.loaded slows Lua's debug.traceback down (it searches every loaded
-- module for function names), and rows 5, 6 and 8 measure against it. Each
-- row runs in a child process of its own for the same reason (only rows 1-3
-- and 11-16 load cqueues, luv or copas, and row 18's second line on
-- purpose) and so that no row inherits another's heap. The driver loads the
-- peers to print their versions; it measures nothing itself.
local dir = (arg and arg[0] or ""):match("^(.*)[/\\][^/\\]*$") or "."
local H = dofile(dir .. "/harness.lua")
local K = dofile(dir .. "/kernels.lua")
local P = dofile(dir .. "/peers.lua")
local as = require "asyncstack"

local format = string.format
local clock = os.clock
local create, resume, yield = coroutine.create, coroutine.resume, coroutine.yield
local lua_traceback = debug.traceback     -- Lua's own, taken before any run()

local SCRIPT = arg[0]

------------------------------------------------------------------ options

local opts = { rows = {} }
do
  local i = 1
  while arg[i] do
    local a = arg[i]
    if a == "--quick" then
      opts.quick = true
    elseif a == "--rounds" then
      i = i + 1; opts.rounds = assert(tonumber(arg[i]), "--rounds N")
    elseif a == "--batch-time" then
      i = i + 1; opts.batch_time = assert(tonumber(arg[i]), "--batch-time S")
    elseif a == "--child" then
      i = i + 1; opts.child = arg[i]
    elseif a == "--child-mem" then
      i = i + 1; opts.child_mem = arg[i]
      i = i + 1; opts.mem_n = assert(tonumber(arg[i]), "--child-mem KIND N")
    elseif a == "--child-mem17" then
      i = i + 1; opts.child_mem17 = arg[i]
      i = i + 1; opts.mem_n = assert(tonumber(arg[i]), "--child-mem17 KIND N")
    elseif a == "--row" then
      i = i + 1; opts.row = assert(tonumber(arg[i]), "--row N")
    elseif a == "--ops" then
      i = i + 1; opts.ops = assert(tonumber(arg[i]), "--ops N")
    elseif a:match("^%d+$") then
      opts.rows[#opts.rows + 1] = tonumber(a)
    else
      io.stderr:write("usage: lua5.4 bench/run.lua [--quick] [--rounds N] [--batch-time S] [row ...]\n")
      os.exit(2)
    end
    i = i + 1
  end
end
if opts.quick then
  H.rounds, H.batch_time = 3, 0.01
end
H.rounds = opts.rounds or H.rounds
H.batch_time = opts.batch_time or H.batch_time

------------------------------------------------------------ child modes

-- --child KERNEL: run the kernel `rounds` times with --ops operations (or
-- a calibrated count) and print "<median seconds per op> <tracking>".
if opts.child then
  local kernel = K[opts.child]
  if type(kernel) ~= "function" then error("no kernel " .. tostring(opts.child), 0) end
  local n = opts.ops or H.calibrate(kernel)
  local samples = {}
  for r = 1, opts.rounds or 1 do
    collectgarbage()
    samples[r] = kernel(n) / n
  end
  print(format("%.6e %s", H.median(samples), K.tracking() and "tracking" or "notracking"))
  return
end

-- --child-mem KIND N: N sleeping forks (or suspended coroutines), created
-- and then completed; prints "<rss kB while all sleep> <peak rss kB>".
if opts.child_mem then
  local n, kind = opts.mem_n, opts.child_mem
  local sleeping_kb
  if kind == "forks" then
    as.run(function()
      local fork = as.fork
      local function sleeper() as.sleep(0.01) end
      for _ = 1, n do fork(sleeper) end
      as.yield()                       -- every fork runs to its sleep
      sleeping_kb = H.rss_kb()
    end)
  elseif kind == "coroutines" then
    local cos = {}
    local body = function() yield() end
    for i = 1, n do
      local co = create(body)
      resume(co)
      cos[i] = co
    end
    sleeping_kb = H.rss_kb()
    for i = 1, n do resume(cos[i]) end
  elseif kind == "idle" then
    as.run(function() end)
    sleeping_kb = H.rss_kb()
  else
    error("--child-mem forks|coroutines|idle N", 0)
  end
  print(format("%d %d", sleeping_kb, H.peak_rss_kb()))
  return
end

------------------------------------------------------------------ rows

local rows = {}

local function cqueues_row(id, name, target, max)
  H.row { id = id, name = name, target = target, max = max, skip = K.cqueues_missing }
end

rows[1] = function()
  local sides = { ours = K.fork_wait, base = K.co_create_resume }
  local order = { "ours", "base" }
  if K.have_cqueues then sides.cq = K.cq_wrap_loop; order[3] = "cq" end
  local m = H.interleave(sides, order)
  H.row { id = "1a", name = "fork+run+wait, trivial body vs coroutine.create+resume",
          ours = m.ours, base = m.base, max = 2.0 }
  if m.cq then
    H.row { id = "1b", name = "fork+run+wait, trivial body vs cqueues wrap+loop",
            ours = m.ours, base = m.cq, max = 0.2, target = "<= 0.20 (5x faster)" }
  else
    cqueues_row("1b", "fork+run+wait vs cqueues wrap+loop", "<= 0.20 (5x faster)", 0.2)
  end
end

rows[2] = function()
  local sides = { ours = K.as_yield, base = K.co_resume_yield }
  local order = { "ours", "base" }
  if K.have_cqueues then sides.cq = K.cq_poll; order[3] = "cq" end
  local m = H.interleave(sides, order)
  H.row { id = "2a", name = "as.yield() round trip vs raw resume/yield pair",
          ours = m.ours, base = m.base, max = 1.5 }
  if m.cq then
    H.row { id = "2b", name = "as.yield() round trip vs cqueues poll()",
            ours = m.ours, base = m.cq, max = 1 / 3, target = "<= 0.33 (3x faster)" }
  else
    cqueues_row("2b", "as.yield() vs cqueues poll()", "<= 0.33 (3x faster)", 1 / 3)
  end
end

rows[3] = function()
  local N = opts.quick and 20000 or 100000
  local fns = {
    ours = function() return K.fork_sleep(N) / N end,
    base = function() return K.co_suspend_resume(N) / N end,
  }
  local order = { "ours", "base" }
  if K.have_cqueues then
    fns.cq = function() return K.cq_sleep(N) / N end
    order[3] = "cq"
  end
  local m = H.repeat_interleaved(fns, order, math.min(H.rounds, 5))
  H.row { id = "3a", name = format("%d forks each sleeping once: per fork vs raw coroutine suspended+resumed once", N),
          ours = m.ours, base = m.base }
  if m.cq then
    H.row { id = "3b", name = format("%d forks each sleeping once: per fork vs cqueues wrap+sleep", N),
            ours = m.ours, base = m.cq }
  else
    cqueues_row("3b", "sleeping forks vs cqueues wrap+sleep", "report")
  end
end

-- Row 4: the same kernels in child processes, one per build, alternating.
rows[4] = function()
  local on_dir = H.core_dir()
  local off_dir = os.getenv("ASYNCSTACK_BENCH_NOTRACK") or "build-notrack"
  local off_so = off_dir .. "/asyncstack/core.so"
  if not io.open(off_so) then
    local why = off_so .. " missing: run `make notrack` (make bench does)"
    H.row { id = "4a", name = "row 1 (fork+wait), watchers on vs off", max = 1.05, skip = why }
    H.row { id = "4b", name = "row 2 (as.yield), watchers on vs off", max = 1.05, skip = why }
    return
  end
  local cases = {
    { id = "4a", kernel = "fork_wait", name = "row 1 (fork+run+wait), watchers on vs off", max = 1.05 },
    { id = "4b", kernel = "as_yield", name = "row 2 (as.yield round trip), watchers on vs off", max = 1.05 },
    { id = "4c", kernel = "bridged_resume",
      name = "bridged coroutine.resume/yield in a fork (async frame push/pop), on vs off" },
  }
  local rounds = math.max(3, math.min(H.rounds, 7))
  for _, c in ipairs(cases) do
    local n = H.calibrate(K[c.kernel])
    local function child(cpath)
      local out = H.run_child({ LUA_CPATH = cpath .. "/?.so;;" }, SCRIPT,
                              { "--child", c.kernel, "--ops", tostring(n), "--rounds", "3" })
      local t, mode = out:match("^(%S+)%s+(%S+)")
      return assert(tonumber(t), out), mode
    end
    local samples = { on = {}, off = {} }
    for r = 1, rounds do
      local first, second = "on", "off"
      if r % 2 == 0 then first, second = "off", "on" end
      for _, which in ipairs { first, second } do
        local t, mode = child(which == "on" and on_dir or off_dir)
        local want = which == "on" and "tracking" or "notracking"
        if mode ~= want then
          error(format("row 4: the %s build (%s) reports %s; is %s a -DASYNCSTACK_NO_TRACKING build?",
                       which, which == "on" and on_dir or off_dir, mode, off_dir), 0)
        end
        local s = samples[which]
        s[#s + 1] = t
      end
    end
    H.row { id = c.id, name = c.name, ours = H.median(samples.on), base = H.median(samples.off),
            max = c.max, target = c.max and "<= 1.05 (5 %)" or nil }
  end
end

-- Calls fn at `depth` Lua frames below the caller (no tail calls).
local function at_depth(depth, fn)
  if depth <= 1 then
    local r = fn()
    return r
  end
  local r = at_depth(depth - 1, fn)
  return r
end

-- Lua frames from the caller of this function down to the bottom of its
-- coroutine (the fork's root function, for a fork's root coroutine).
local function frames_in_this_coroutine()
  local n = 0
  while debug.getinfo(n + 2, "l") do n = n + 1 end
  return n
end

-- The root function of a fork whose coroutines run `measure` exactly DEPTH
-- Lua frames deep, measure's own frame included: `ncos` coroutines (the
-- fork's root one, then ones resumed through the bridged coroutine.wrap),
-- DEPTH / ncos frames each: the coroutine's body, at_depth's frames, and
-- the function that resumes the next coroutine (measure, in the last one).
local DEPTH, COROUTINES = 32, 4

local function chain(ncos, measure)
  local per = DEPTH // ncos
  local function body(k)
    return function()
      local r = at_depth(per - 2, k == ncos and measure or function()
        local v = coroutine.wrap(body(k + 1))()
        return v
      end)
      return r
    end
  end
  return body(1)
end

local function check_depth(what, got)
  if got ~= DEPTH then
    error(format("%s: measured %d frames deep, not %d (bench/run.lua chain())", what, got, DEPTH), 0)
  end
end

rows[5] = function()
  local function ours(n)
    return as.run(chain(COROUTINES, function()
      local tb = as.traceback
      check_depth("as.traceback", #as.debug_backtrace())
      local t0 = clock()
      for _ = 1, n do tb() end
      return clock() - t0
    end))
  end
  local function base(n)
    return as.run(chain(1, function()
      check_depth("debug.traceback", frames_in_this_coroutine())
      local t0 = clock()
      for _ = 1, n do lua_traceback() end
      return clock() - t0
    end))
  end
  local m = H.interleave({ ours = ours, base = base }, { "ours", "base" })
  H.row { id = "5", name = format("as.traceback() %d frames across %d coroutines vs debug.traceback() %d frames on one stack",
                                   DEPTH, COROUTINES, DEPTH),
          ours = m.ours, base = m.base, max = 0.2 }
end

rows[6] = function()
  local function ours(n)
    return as.run(chain(1, function()
      local Exception = as.Exception
      check_depth("as.Exception", frames_in_this_coroutine())
      local t0 = clock()
      for _ = 1, n do Exception("x") end
      return clock() - t0
    end))
  end
  local function base(n)
    return as.run(chain(1, function()
      check_depth("debug.traceback", frames_in_this_coroutine())
      local t0 = clock()
      for _ = 1, n do lua_traceback() end
      return clock() - t0
    end))
  end
  local m = H.interleave({ ours = ours, base = base }, { "ours", "base" })
  H.row { id = "6", name = format("as.Exception() %d frames deep in a fork vs debug.traceback() at that depth", DEPTH),
          ours = m.ours, base = m.base, max = 0.1 }
end

rows[7] = function()
  local N = opts.quick and 20000 or 100000
  local function full_gc() collectgarbage(); collectgarbage() end
  local fns = {
    ours = function()
      return as.run(function()
        local fork = as.fork
        local function sleeper() as.sleep(0.01) end
        full_gc()
        local c0 = collectgarbage("count")
        for _ = 1, N do fork(sleeper) end
        as.yield()                       -- every fork runs to its sleep
        full_gc()
        return (collectgarbage("count") - c0) * 1024 / N
      end)
    end,
    base = function()
      local body = function() yield() end
      full_gc()
      local c0 = collectgarbage("count")
      local cos = {}
      for i = 1, N do
        local co = create(body)
        resume(co)
        cos[i] = co
      end
      full_gc()
      local bytes = (collectgarbage("count") - c0) * 1024 / N
      for i = 1, N do resume(cos[i]) end
      return bytes
    end,
  }
  local m = H.repeat_interleaved(fns, { "ours", "base" }, 3)
  H.row { id = "7a", name = format("bytes per sleeping fork vs bare suspended coroutine (%d, collectgarbage count)", N),
          ours = m.ours, base = m.base, max = 1.5, fmt = H.bytes,
          note = "not in the GC count: the scheduler's C arrays (run queue, timer heap: a pointer per slot, power-of-two sizes)" }

  local BIG = opts.quick and 100000 or 1000000
  local function mem(kind, n)
    local out = H.run_child({}, SCRIPT, { "--child-mem", kind, tostring(n) })
    local sleeping, peak = out:match("^(%d+)%s+(%d+)")
    return tonumber(sleeping), tonumber(peak)
  end
  local _, idle = mem("idle", 0)
  local fs, fp = mem("forks", BIG)
  local cs, cp = mem("coroutines", BIG)
  H.row { id = "7b", name = format("peak RSS, %d sleeping forks created and completed vs %d bare coroutines", BIG, BIG),
          ours = fp * 1024, base = cp * 1024, fmt = H.bytes,
          note = format("per fork %s vs per coroutine %s above an idle process (%s); RSS while all sleep: %s vs %s",
                        H.bytes((fp - idle) * 1024 / BIG), H.bytes((cp - idle) * 1024 / BIG),
                        H.bytes(idle * 1024), H.bytes(fs * 1024), H.bytes(cs * 1024)) }
end

rows[8] = function()
  local rounds = opts.quick and 1 or math.min(H.rounds, 5)
  local TASKS, DUMP, COS = opts.quick and 20000 or 100000, opts.quick and 2000 or 10000, 10000
  -- the root measures without yielding, so every fork stays at its await point
  local function per_fork(nforks, measure)
    return as.run(function()
      local function sleeper() as.sleep(0.05) end
      for _ = 1, nforks do as.fork(sleeper) end
      as.yield()
      local t0 = clock()
      measure()
      return (clock() - t0) / (nforks + 1)
    end)
  end
  local cos = {}
  for i = 1, COS do
    cos[i] = create(function() yield() end)
    resume(cos[i])
  end
  local m = H.repeat_interleaved({
    tasks = function() return per_fork(TASKS, function() as.tasks { backtrace = false } end) end,
    dump = function() return per_fork(DUMP, function() as.dump() end) end,
    traceback = function()
      local t0 = clock()
      for i = 1, #cos do lua_traceback(cos[i]) end
      return (clock() - t0) / #cos
    end,
  }, { "tasks", "dump", "traceback" }, rounds)
  H.row { id = "8a", name = format("as.tasks{backtrace=false}, %d forks: per fork vs debug.traceback(co) per coroutine", TASKS),
          ours = m.tasks, base = m.traceback }
  H.row { id = "8b", name = format("as.dump(), %d forks: per fork vs debug.traceback(co) per coroutine", DUMP),
          ours = m.dump, base = m.traceback }
end

rows[10] = function()
  local DEEP = 80000
  local N = opts.quick and 3 or 10
  local function measure(n)
    local tb = debug.traceback          -- inside run(): the bridged one
    local t0 = clock()
    for _ = 1, n do tb("x") end
    return clock() - t0
  end
  local function deep(n)
    return at_depth(DEEP, function() return measure(n) end)
  end
  local m = H.interleave({
    ours = function(n) return as.run(function() return deep(n) end) end,
    base = deep,
  }, { "ours", "base" }, { ours = N, base = N })
  H.row { id = "10", name = format("debug.traceback() %d frames deep inside a fork vs outside", DEEP),
          ours = m.ours, base = m.base, max = 2.0 }
end

------------------------------------------------- issue 17: rows 11-18

-- One row per line of issue 17's table, asyncstack next to raw Lua and to
-- its peers (cqueues, luv, copas; bench/peers.lua), in the same process and
-- interleaved. A peer that is missing, or has nothing idiomatic for the
-- row, gets a skipped line saying why.

-- A peer side of a row: adds `fn` under `key` unless `peer` is missing.
local function add_peer(sides, order, key, peer, fn)
  if P.missing(peer) then return end
  sides[key] = fn
  order[#order + 1] = key
end

-- The line of a peer: ours / the peer's median, or skipped.
local function peer_row(spec, m, key, peer)
  if m[key] == nil then
    spec.skip = spec.skip or P.missing(peer) or "not measured"
  else
    spec.ours, spec.base = spec.ours or m.ours, m[key]
  end
  H.row(spec)
end

local LUV_NO_MAILBOX = "luv has nothing idiomatic for it (no coroutine mailbox or "
  .. "channel; uv.new_async wakes a loop from another thread)"

-- The floor side of rows 11 and 14 (bench/floor.c, the least scheduler
-- shaped like ours): added when it is built.
local function add_floor(sides, order, fn)
  if not K.floor() then return end
  sides.floor = fn
  order[#order + 1] = "floor"
end

-- The lines that place the floor: the floor against the row's baseline,
-- and asyncstack against the floor.
local function floor_rows(id, what, m, base, base_name)
  if not m.floor then
    local _, why = K.floor()
    H.row { id = id, name = what .. ": the least scheduler (bench/floor.c)", skip = why }
    return
  end
  H.row { id = id, name = what .. ": the least scheduler (bench/floor.c) vs " .. base_name,
          ours = m.floor, base = base }
  H.row { id = id .. "'", name = what .. ": asyncstack vs the least scheduler",
          ours = m.ours, base = m.floor }
end

rows[11] = function()
  local sides = { ours = K.fork_wait, raw = K.co_create_resume }
  local order = { "ours", "raw" }
  add_peer(sides, order, "cq", "cqueues", K.cq_wrap_loop)
  add_peer(sides, order, "luv", "luv", P.luv_timer_run)
  add_floor(sides, order, K.floor_fork_wait)
  local m = H.interleave(sides, order)
  local what = "fork + finish + wait, one at a time"
  H.row { id = "11a", name = what .. ", vs raw coroutine.create+resume",
          ours = m.ours, base = m.raw, max = 2.0 }
  peer_row({ id = "11b", name = what .. ", vs cqueues wrap + loop" }, m, "cq", "cqueues")
  peer_row({ id = "11c", name = what .. ", vs luv 0 ms timer resuming a new coroutine + uv.run()" },
           m, "luv", "luv")
  H.row { id = "11d", name = what .. ", vs copas", skip = P.copas_lacks("wait") }
  floor_rows("11e", what, m, m.raw, "raw coroutine.create+resume")
end

rows[12] = function()
  local sides = { ours = K.as_yield, raw = K.co_resume_yield }
  local order = { "ours", "raw" }
  add_peer(sides, order, "cq", "cqueues", K.cq_poll)
  add_peer(sides, order, "luv", "luv", P.luv_idle_yield)
  local m = H.interleave(sides, order)
  local what = "as.yield() round trip"
  H.row { id = "12a", name = what .. " vs raw resume/yield pair",
          ours = m.ours, base = m.raw, max = 1.0 }
  peer_row({ id = "12b", name = what .. " vs cqueues.poll() with nothing to poll" }, m, "cq", "cqueues")
  peer_row({ id = "12c", name = what .. " vs luv coroutine resumed by an idle handle" }, m, "luv", "luv")
  H.row { id = "12d", name = what .. " vs copas", skip = P.copas_lacks("yield") }
end

rows[13] = function()
  local sides = { ours = K.channel_pingpong, raw = K.co_pingpong }
  local order = { "ours", "raw" }
  add_peer(sides, order, "cq", "cqueues", P.cq_pingpong)
  local m = H.interleave(sides, order)
  local what = "channel ping-pong (2 messages) between two forks"
  H.row { id = "13a", name = what .. ", vs raw coroutine pair (value in by resume, out by yield)",
          ours = m.ours, base = m.raw, max = 3.0 }
  peer_row({ id = "13b", name = what .. ", vs cqueues mailboxes (slot + cqueues.condition)" },
           m, "cq", "cqueues")
  H.row { id = "13c", name = what .. ", vs copas", skip = P.copas_lacks("queue") }
  H.row { id = "13d", name = what .. ", vs luv", skip = LUV_NO_MAILBOX }
end

rows[14] = function()
  local N = opts.quick and 20000 or 100000
  local fns = { ours = function() return K.fork_sleep_spread(N) end }
  local order = { "ours" }
  add_peer(fns, order, "cq", "cqueues", function() return P.cq_sleep_spread(N, K.sleep_ms) end)
  add_peer(fns, order, "luv", "luv", function() return P.luv_sleep_spread(N, K.sleep_ms) end)
  add_floor(fns, order, function() return K.floor_sleep_spread(N) end)
  local m = H.repeat_interleaved(fns, order, math.min(H.rounds, 5))
  local what = format("%d forks each sleeping once, 0-10 ms: CPU of the whole run", N)
  peer_row({ id = "14a", name = what .. ", vs cqueues wrap + cqueues.sleep",
             max = 0.5, target = "<= 0.50 (2x less CPU)" }, m, "cq", "cqueues")
  peer_row({ id = "14b", name = what .. ", vs luv coroutines each resumed by a uv timer of its own" },
           m, "luv", "luv")
  H.row { id = "14c", name = what .. ", vs copas.sleep", skip = P.copas_lacks("sleep") }
  if not m.cq then H.note(format("asyncstack alone: %s CPU", H.time(m.ours))) end
  if m.cq or not m.floor then floor_rows("14d", what, m, m.cq, "cqueues") end
end

-- Row 15: TCP echo (bench/echo.lua): servers in processes of their own,
-- one client program for all of them. Three kinds of run, each kind
-- interleaved across the servers: server CPU (no counter attached), system
-- calls counted by perf stat (the target's figure: it hardly slows the
-- server), then one run under strace -c for each call's share (strace slows
-- the server several times over, which changes how many calls it makes).
rows[15] = function()
  local E = dofile(dir .. "/echo.lua")
  local CLIENTS, LINES = 100, opts.quick and 100 or 1000
  local what = format("TCP echo on 127.0.0.1, %d clients x %d lines", CLIENTS, LINES)
  local no_client = P.missing("socket")
  if no_client then
    H.row { id = "15a", name = what .. ": server CPU per request vs cqueues", max = 0.8,
            skip = no_client .. ": the client and two servers need LuaSocket" }
    return
  end
  local kinds = {}
  for _, kind in ipairs(E.kinds) do
    if not P.missing(E.needs[kind]) then kinds[#kinds + 1] = kind end
  end
  local tmp = H.first_line("mktemp -d /tmp/asyncstack-echo.XXXXXX")
  local rounds = opts.quick and 1 or math.min(H.rounds, 3)
  -- A server that fails a run (it does not start, the client gets a wrong
  -- echo, a counter cannot attach) is left out of that kind of run from
  -- then on, and its lines say why, instead of the row failing.
  local failed = { cpu = {}, perf = {}, strace = {} }
  local function runs(counter, nrounds)
    local o = { interp = H.interpreter(), script = dir .. "/echo.lua", tmp = tmp,
                clients = CLIENTS, lines = LINES, counter = counter }
    local out, why = {}, failed[counter or "cpu"]
    for _, kind in ipairs(kinds) do out[kind] = {} end
    for r = 1, nrounds do
      for k = 1, #kinds do
        local kind = kinds[r % 2 == 1 and k or #kinds - k + 1]
        if not why[kind] then
          local ok, res = pcall(E.measure, kind, o)
          if ok then
            local t = out[kind]
            t[#t + 1] = res
          else
            why[kind] = (counter and counter .. " run: " or "") .. tostring(res):gsub("\n", " ")
            out[kind] = {}
          end
        end
      end
    end
    return out
  end
  local function median_of(results, field)
    if #results == 0 then return nil end
    local v = {}
    for i, res in ipairs(results) do v[i] = res[field] / res.requests end
    return H.median(v)
  end
  local ok, err = pcall(function()
    local cpu_runs = runs(nil, rounds)
    local perf = E.have_perf()
    local count_runs = perf and runs("perf", rounds)
    -- strace's own figures (a slowed-down server), for the record; the
    -- counter when perf cannot count here
    local strace = E.have_strace() and (not perf or not opts.quick)
    local strace_runs = strace and runs("strace", 1)

    -- perf's count is the figure; strace's where perf could not count
    if count_runs and #count_runs.asyncstack == 0 then count_runs = nil end
    local m, sys = {}, {}
    for _, kind in ipairs(kinds) do
      m[kind] = median_of(cpu_runs[kind], "cpu")
      if count_runs then sys[kind] = median_of(count_runs[kind], "syscalls")
      elseif strace_runs then sys[kind] = median_of(strace_runs[kind], "syscalls") end
    end
    for _, counter in ipairs { "cpu", "perf", "strace" } do
      for _, kind in ipairs(kinds) do
        if failed[counter][kind] then H.note(format("%s server failed: %s", kind, failed[counter][kind])) end
      end
    end
    local function count(x) return format("%.2f", x) end
    local ids = { cqueues = "a", luv = "b", copas = "c" }
    local function missing_why(kind)
      return P.missing(E.needs[kind]) or "server not measured (see the note)"
    end
    if not m.asyncstack then
      H.row { id = "15a", name = what, skip = missing_why("asyncstack") }
      return
    end
    for _, kind in ipairs { "cqueues", "luv", "copas" } do
      local spec = { id = "15" .. ids[kind],
                     name = format("%s: server CPU per request, asyncstack.socket vs %s", what, kind) }
      if kind == "cqueues" then spec.max = 0.8 end
      if m[kind] then spec.ours, spec.base = m.asyncstack, m[kind] else spec.skip = missing_why(kind) end
      H.row(spec)
    end
    local how = count_runs and "perf stat raw_syscalls" or "strace -c -f"
    if not sys.asyncstack then
      H.row { id = "15d", name = what .. ": server system calls per request", limit = 3, fmt = count,
              skip = "neither perf nor strace usable (apt-get install strace)" }
    else
      H.row { id = "15d", name = format("%s: server system calls per request (%s), asyncstack vs cqueues",
                                        what, how),
              ours = sys.asyncstack, base = sys.cqueues, limit = 3, fmt = count,
              target = "<= 3 per request" }
      for _, kind in ipairs { "luv", "copas" } do
        local spec = { id = "15" .. (kind == "luv" and "e" or "f"), fmt = count,
                       name = format("%s: server system calls per request, asyncstack vs %s", what, kind) }
        if sys[kind] then spec.ours, spec.base = sys.asyncstack, sys[kind] else spec.skip = missing_why(kind) end
        H.row(spec)
      end
    end
    -- each call's share per request, from the run whose total is the median
    local function breakdown(res)
      local top = {}
      for name, n in pairs(res.calls) do top[#top + 1] = { name = name, n = n / res.requests } end
      table.sort(top, function(a, b) return a.n > b.n end)
      local parts = {}
      for i = 1, math.min(6, #top) do
        if top[i].n >= 0.01 then parts[#parts + 1] = format("%s %.2f", top[i].name, top[i].n) end
      end
      return table.concat(parts, ", ")
    end
    if count_runs then
      for _, kind in ipairs(kinds) do
        local list = {}
        for i, res in ipairs(count_runs[kind]) do list[i] = res end
        table.sort(list, function(a, b) return a.syscalls / a.requests < b.syscalls / b.requests end)
        local v = {}
        for i, res in ipairs(list) do v[i] = format("%.2f", res.syscalls / res.requests) end
        if #list > 0 then
          H.note(format("perf: %s %s calls/request (each run); median run: %s", kind,
                        table.concat(v, ", "), breakdown(list[(#list + 1) // 2])))
        end
      end
    end
    if strace_runs then
      for _, kind in ipairs(kinds) do
        local res = strace_runs[kind][1]
        if res then
          H.note(format("under strace -c -f (slowed down): %s %.2f calls/request: %s", kind,
                        res.syscalls / res.requests, breakdown(res)))
        end
      end
    end
    local tput = {}
    for _, kind in ipairs(kinds) do
      if m[kind] then
        tput[#tput + 1] = format("%s %s, %.0f requests/s", kind, H.time(m[kind]),
                                 1 / median_of(cpu_runs[kind], "wall"))
      end
    end
    H.note(format("server CPU (/proc/PID/task/*/schedstat) per request over the client's run, "
                  .. "median of %d interleaved runs: %s", rounds, table.concat(tput, "; ")))
  end)
  os.execute("rm -rf " .. H.shell_quote(tmp))
  if not ok then error(err, 0) end
end

-- --child-mem17 KIND N: N sleepers of one library, asleep; prints the GC
-- bytes and the RSS bytes per sleeper, measured in this process.
local function sleepers_memory(kind, n)
  local function full_gc() collectgarbage(); collectgarbage() end
  local keep
  local function measure(make)
    full_gc()
    local c0, r0 = collectgarbage("count"), H.rss_kb()
    keep = make()
    full_gc()
    local gc = (collectgarbage("count") - c0) * 1024 / n
    local rss = (H.rss_kb() - r0) * 1024 / n
    print(format("%.3f %.3f", gc, rss))
    io.stdout:flush()
    os.exit(0)                         -- the sleepers never wake
  end
  if kind == "forks" then
    as.run(function()
      measure(function()
        local fork, sleep = as.fork, as.sleep
        local function sleeper() sleep(1e6) end
        for _ = 1, n do fork(sleeper) end
        as.yield()                     -- every fork runs to its sleep
      end)
    end)
  elseif kind == "coroutines" then
    measure(function()
      local cos = {}
      local body = function() yield() end
      for i = 1, n do
        local co = create(body)
        resume(co)
        cos[i] = co
      end
      return cos
    end)
  elseif kind == "cqueues" then
    measure(function() return P.cq_sleepers(n) end)
  elseif kind == "luv" then
    measure(function() return P.luv_sleepers(n) end)
  end
  error("--child-mem17 forks|coroutines|cqueues|luv N", 0)
end

rows[16] = function()
  local N = opts.quick and 100000 or 1000000
  local function mem(kind)
    local out = H.run_child({}, SCRIPT, { "--child-mem17", kind, tostring(N) })
    local gc, rss = out:match("^(%S+)%s+(%S+)")
    return { gc = assert(tonumber(gc), out), rss = tonumber(rss) }
  end
  local m = { ours = mem("forks"), raw = mem("coroutines") }
  if not P.missing("cqueues") then m.cq = mem("cqueues") end
  if not P.missing("luv") then m.luv = mem("luv") end
  local what = format("memory per sleeping fork (%d asleep, GC bytes)", N)
  H.row { id = "16a", name = what .. " vs raw suspended coroutine",
          ours = m.ours.gc, base = m.raw.gc, max = 1.2, fmt = H.bytes }
  for _, p in ipairs { { "cq", "cqueues", "16b", "cqueues coroutine in cqueues.sleep" },
                       { "luv", "luv", "16c", "luv coroutine waiting on a uv timer of its own" } } do
    local key, peer, id, how = p[1], p[2], p[3], p[4]
    if m[key] then
      H.row { id = id, name = what .. " vs " .. how, ours = m.ours.gc, base = m[key].gc, fmt = H.bytes }
    else
      H.row { id = id, name = what .. " vs " .. peer, skip = P.missing(peer) }
    end
  end
  H.row { id = "16d", name = what .. " vs copas", skip = P.copas_lacks("sleep") }
  local parts = {}
  for _, p in ipairs { { "ours", "asyncstack" }, { "raw", "coroutine" }, { "cq", "cqueues" }, { "luv", "luv" } } do
    if m[p[1]] then parts[#parts + 1] = format("%s %s", p[2], H.bytes(m[p[1]].rss)) end
  end
  H.note("RSS growth per sleeper (everything, C allocations included): " .. table.concat(parts, ", ")
         .. "; cqueues' timers and luv's uv handles are C memory, outside the GC count")
end

rows[17] = function()
  local m = H.interleave({ ours = K.fork_error_chain, raw = K.pcall_wraps }, { "ours", "raw" })
  H.row { id = "17", name = "error raised in a fork, caught by pcall through 3 waiting forks vs pcall through 3 coroutine.wrap",
          ours = m.ours, base = m.raw, max = 5.0 }
end

rows[18] = function()
  local depth = K.TRACE_CHAIN
  local text = K.trace_chain_text(depth)
  local _, awaited = text:gsub("awaited by", "")
  if awaited ~= depth then
    error(format("row 18: the trace shows %d awaiting forks, not %d", awaited, depth), 0)
  end
  local what = format("async trace text (as.traceback, async = true), chain of %d forks", depth)
  local loaded = 0
  for _ in pairs(package.loaded) do loaded = loaded + 1 end
  local m = H.interleave({ ours = K.trace_chain }, { "ours" })
  H.row { id = "18a", name = format("%s, %d modules loaded (standard libraries + asyncstack)", what, loaded),
          ours = m.ours, limit = 0.3e-3 }
  -- A program has more modules loaded, and names are searched for in
  -- package.loaded: the same with the peers and LuaSocket loaded.
  for _, peer in ipairs { "cqueues", "luv", "copas", "socket" } do
    if not P.missing(peer) then P.load(peer) end
  end
  local more = 0
  for _ in pairs(package.loaded) do more = more + 1 end
  m = H.interleave({ ours = K.trace_chain }, { "ours" })
  H.row { id = "18b", name = format("%s, %d modules loaded (+ cqueues, luv, copas, LuaSocket)", what, more),
          ours = m.ours, limit = 0.3e-3 }
end

------------------------------------------------------------------ main

rows[9] = function()
  local m = H.interleave({ rdv = K.channel_rendezvous, buf = K.channel_buffered,
                           base = K.co_resume_yield }, { "rdv", "buf", "base" })
  H.row { id = "9a", name = "channel send+recv between two forks, capacity 0, per value vs raw resume/yield pair",
          ours = m.rdv, base = m.base }
  H.row { id = "9b", name = "channel send+recv between two forks, capacity 64, per value vs raw resume/yield pair",
          ours = m.buf, base = m.base }
end

if opts.child_mem17 then
  sleepers_memory(opts.child_mem17, opts.mem_n)
  return
end

-- --row N: one row, in this process (the driver below runs each so).
if opts.row then
  if not rows[opts.row] then error("no row " .. opts.row, 0) end
  rows[opts.row]()
  return
end

local ISSUE17 = { 11, 12, 13, 14, 15, 16, 17, 18 }
local ISSUE7 = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }
local selected = opts.rows
if #selected == 0 then
  selected = {}
  for _, r in ipairs(ISSUE17) do selected[#selected + 1] = r end
  for _, r in ipairs(ISSUE7) do selected[#selected + 1] = r end
end
for _, r in ipairs(selected) do
  if not rows[r] then error("no row " .. r, 0) end
end
print(H.header())
print(format("medians of %d interleaved rounds, batches of >= %.0f ms CPU time; ratio = ours / baseline",
             H.rounds, H.batch_time * 1000))
do
  local v = {}
  for _, peer in ipairs { "cqueues", "luv", "copas", "socket" } do
    v[#v + 1] = P.missing(peer) and (peer .. ": " .. P.missing(peer)) or P.version(peer)
  end
  print("peers: " .. table.concat(v, "; "))
end
local child_args = { "--rounds", tostring(H.rounds), "--batch-time", tostring(H.batch_time) }
if opts.quick then child_args[#child_args + 1] = "--quick" end
local group
for _, r in ipairs(selected) do
  local g = r >= 11 and "issue 17: asyncstack, raw Lua and its peers (rows 11-18)"
            or "issue 7: against raw Lua and between builds (rows 1-10)"
  if g ~= group then
    group = g
    print()
    print("### " .. g)
    print()
    H.table_header()
  end
  local args = { "--row", tostring(r) }
  for _, a in ipairs(child_args) do args[#args + 1] = a end
  H.stream_child({}, SCRIPT, args, function(line)
    print(line)
    io.stdout:flush()
    H.count_line(line)
  end)
end
H.summary()
