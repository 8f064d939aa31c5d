-- bench/kernels.lua: the measured operations of rows 1-4, by name, so that
-- bench/run.lua (in process), its child processes (row 4: one per build) and
-- bench/callgrind.lua (instruction counts) all run exactly the same code.
--
-- A kernel takes an operation count n, runs n operations and returns the
-- CPU seconds they took; setup (as.run's own start and end, creating the
-- cqueues controller) is outside the timed part where it can be.

local as = require "asyncstack"

-- Lua's own coroutine functions, taken before any as.run() installs the
-- bridge (run() replaces coroutine.resume/wrap for its duration).
local create, resume, yield = coroutine.create, coroutine.resume, coroutine.yield
local clock = os.clock

local K = {}

local function noop() end

-- cqueues is loaded on first use only: every module in package.loaded makes
-- Lua's debug.traceback slower (it searches them for function names), and
-- rows 5, 6 and 8 use debug.traceback as their baseline.
K.have_cqueues = package.searchpath("cqueues", package.path) ~= nil
K.cqueues_missing = "cqueues not installed (apt-get install lua-cqueues)"

local cqueues, controller
local function cq()
  if not K.have_cqueues then error(K.cqueues_missing, 0) end
  cqueues = cqueues or require "cqueues"
  controller = controller or cqueues.new()
  return controller
end

local function cq_loop(q)
  local ok, err = q:loop()
  if not ok then error(err, 0) end
end

-- The floor of rows 11 and 14 (bench/floor.c): the least scheduler shaped
-- like ours, loaded from the build directory (make bench builds it;
-- ASYNCSTACK_BENCH_FLOOR overrides the path). nil, why when it is missing.
local floor
function K.floor()
  if floor == nil then
    local path = os.getenv("ASYNCSTACK_BENCH_FLOOR") or "build/bench/floor.so"
    local open = package.loadlib(path, "luaopen_floor")
    floor = open and open() or false
    K.floor_missing = path .. " missing: run `make bench` (it builds bench/floor.c)"
  end
  return floor or nil, K.floor_missing
end

------------------------------------------------------------ row 1: spawn

-- ours: fork a trivial body, let it run to completion, wait for it. The
-- waiting fork suspends, the loop runs the new fork, then wakes the waiter.
-- `lib` is asyncstack or the floor (both have run, fork and wait).
local function fork_wait_with(lib, n)
  return lib.run(function()
    local fork, wait = lib.fork, lib.wait
    local t0 = clock()
    for _ = 1, n do wait(fork(noop)) end
    return clock() - t0
  end)
end

function K.fork_wait(n) return fork_wait_with(as, n) end

-- baseline: a raw coroutine created and resumed to completion.
function K.co_create_resume(n)
  local t0 = clock()
  for _ = 1, n do resume(create(noop)) end
  return clock() - t0
end

-- floor: the same loop with the least scheduler (bench/floor.c).
function K.floor_fork_wait(n) return fork_wait_with(assert(K.floor()), n) end

-- peer: cqueues, one controller, wrap a trivial body and loop until done.
function K.cq_wrap_loop(n)
  local q = cq()
  local t0 = clock()
  for _ = 1, n do
    q:wrap(noop)
    cq_loop(q)
  end
  return clock() - t0
end

------------------------------------------------------------ row 2: yield

-- ours: as.yield() from the only fork: a round trip through the run queue.
function K.as_yield(n)
  return as.run(function()
    local y = as.yield
    local t0 = clock()
    for _ = 1, n do y() end
    return clock() - t0
  end)
end

-- baseline: one resume/yield pair of a raw coroutine.
function K.co_resume_yield(n)
  local co = create(function() while true do yield() end end)
  resume(co)
  local t0 = clock()
  for _ = 1, n do resume(co) end
  return clock() - t0
end

-- peer: cqueues.poll() with nothing to poll, from a wrapped coroutine: a
-- round trip through the controller.
function K.cq_poll(n)
  local q, t = cq(), nil
  q:wrap(function()
    local poll = cqueues.poll
    local t0 = clock()
    for _ = 1, n do poll() end
    t = clock() - t0
  end)
  cq_loop(q)
  return t
end

------------------------------------------------------- row 9: channels

-- ours: one value per op from the root fork through a channel to a
-- consumer fork. Capacity 0: every send meets a receiver parked in recv
-- (each value wakes it: a suspension and a wake per value); capacity 64:
-- the two forks take turns filling and draining the buffer.
local function channel_kernel(capacity)
  return function(n)
    return as.run(function()
      local ch = as.channel(capacity)
      local consumer = as.fork(function()
        local recv = ch.recv
        for _ = 1, n do recv(ch) end
      end)
      local send = ch.send
      local t0 = clock()
      for i = 1, n do send(ch, i) end
      as.wait(consumer)
      return clock() - t0
    end)
  end
end
K.channel_rendezvous = channel_kernel(0)
K.channel_buffered = channel_kernel(64)

-------------------------------------------- row 4: the bridge's watchers

-- A resume/yield pair through the bridged coroutine.resume, from a fork:
-- the one place async frames are pushed and popped (rows 1-2 push none).
function K.bridged_resume(n)
  return as.run(function()
    local bresume = coroutine.resume          -- the bridge, inside run()
    local co = create(function() while true do yield() end end)
    bresume(co)
    local t0 = clock()
    for _ = 1, n do bresume(co) end
    return clock() - t0
  end)
end

---------------------------------------------------- row 3: sleeping forks

local function sleep_once() as.sleep(0.001) end

-- ours: n forks, each sleeping once (1 ms); the whole run, timed from
-- outside (the forks run after the root returns).
function K.fork_sleep(n)
  local t0 = clock()
  as.run(function()
    local fork = as.fork
    for _ = 1, n do fork(sleep_once) end
  end)
  return clock() - t0
end

-- baseline: n raw coroutines each suspended once, then resumed to the end.
function K.co_suspend_resume(n)
  local t0 = clock()
  local cos = {}
  local body = function() yield() end
  for i = 1, n do
    local co = create(body)
    resume(co)
    cos[i] = co
  end
  for i = 1, n do resume(cos[i]) end
  return clock() - t0
end

-- peer: n cqueues coroutines each sleeping once (1 ms).
function K.cq_sleep(n)
  local q = cq()
  local sleep = cqueues.sleep
  local body = function() sleep(0.001) end
  local t0 = clock()
  for _ = 1, n do q:wrap(body) end
  cq_loop(q)
  return clock() - t0
end

------------------------------------------- issue 17 (rows 11-18 of run.lua)

-- row 13: ping-pong between two forks over two rendezvous channels: one
-- operation is a round trip, two messages (ping, then pong).
function K.channel_pingpong(n)
  return as.run(function()
    local ping, pong = as.channel(), as.channel()
    local echo = as.fork(function()
      local recv, send = ping.recv, pong.send
      for _ = 1, n do send(pong, recv(ping)) end
    end)
    local send, recv = ping.send, pong.recv
    local t0 = clock()
    for i = 1, n do
      send(ping, i)
      if recv(pong) ~= i then error("channel ping-pong: wrong value", 0) end
    end
    local t = clock() - t0
    as.wait(echo)
    return t
  end)
end

-- baseline: the same round trip between the main coroutine and an echoing
-- coroutine: the ping goes in with resume, the pong comes back with yield.
function K.co_pingpong(n)
  local echo = create(function(v) while true do v = yield(v) end end)
  local t0 = clock()
  for i = 1, n do
    local _, v = resume(echo, i)
    if v ~= i then error("coroutine ping-pong: wrong value", 0) end
  end
  return clock() - t0
end

-- row 14: how long fork i sleeps, in milliseconds: 0 to 10, spread evenly
-- and the same for every library.
function K.sleep_ms(i) return (i * 7) % 11 end

-- ours: n forks, fork i sleeping once for sleep_ms(i); the whole run.
-- `lib` is asyncstack or the floor (both have run, fork and sleep).
local function sleep_spread_with(lib, n)
  local t0 = clock()
  lib.run(function()
    local fork, sleep, sleep_ms = lib.fork, lib.sleep, K.sleep_ms
    for i = 1, n do
      local s = sleep_ms(i) / 1000
      fork(function() sleep(s) end)
    end
  end)
  return clock() - t0
end

function K.fork_sleep_spread(n) return sleep_spread_with(as, n) end

-- floor: the same with the least scheduler (bench/floor.c).
function K.floor_sleep_spread(n) return sleep_spread_with(assert(K.floor()), n) end

-- row 17: an error raised in the innermost of three nested forks, each
-- waiting for the next; the root catches it with pcall around its wait.
-- The error passes through three waiting forks (the two outer forks and
-- the root), each re-raising it.
local function raise() error("boom") end

function K.fork_error_chain(n)
  return as.run(function()
    local fork, wait = as.fork, as.wait
    local function third() raise() end
    local function second() local r = wait(fork(third)); return r end
    local function first() local r = wait(fork(second)); return r end
    local t0 = clock()
    for _ = 1, n do
      if pcall(wait, fork(first)) then error("fork error chain: no error", 0) end
    end
    return clock() - t0
  end)
end

-- baseline: the same error through three nested coroutine.wrap calls, each
-- re-raising it, caught by pcall.
function K.pcall_wraps(n)
  local wrap = coroutine.wrap
  local function third() raise() end
  local function second() local r = wrap(third)(); return r end
  local function first() local r = wrap(second)(); return r end
  local t0 = clock()
  for _ = 1, n do
    if pcall(wrap(first)) then error("pcall through wraps: no error", 0) end
  end
  return clock() - t0
end

-- row 18: the async trace text at the end of a chain of `depth` forks,
-- each waiting for the next (the root waits for the first): as.traceback
-- with async = true from the innermost fork walks through all of them.
K.TRACE_CHAIN = 100

-- The chain's trace text (to check what row 18 measures) and the kernel's
-- time for n traces.
local function trace_chain(n, depth)
  return as.run(function()
    local t, text
    local function level(k)
      if k == 0 then
        local traceback, opts = as.traceback, { async = true }
        text = traceback(nil, 1, opts)
        local t0 = clock()
        for _ = 1, n do traceback(nil, 1, opts) end
        t = clock() - t0
        return
      end
      local r = as.wait(as.fork(level, k - 1))
      return r
    end
    level(depth)
    return t, text
  end)
end
K.trace_chain_text = function(depth) local _, text = trace_chain(0, depth); return text end
function K.trace_chain(n) return (trace_chain(n, K.TRACE_CHAIN)) end

-- Whether the loaded core records spawn sites (false in the no-tracking
-- build of row 4, see src/astack.h).
function K.tracking()
  local core = require "asyncstack.core"
  return as.run(function()
    return core.fork_info(as.fork(noop)).spawn_file ~= nil
  end)
end

K.needs_cqueues = { cq_wrap_loop = true, cq_poll = true, cq_sleep = true }

return K
