-- The program src-test/oomhost.c runs with failing allocations (make oomtest).
-- It uses every feature once: forks, wait/pwait, sleep, yield, channels,
-- exceptions and as.pcall, traces (debug_backtrace, traceback, fork_backtrace),
-- tasks and dump, wait_all/wait_any, cancel, timeouts, generators through the
-- bridge, sockets on 127.0.0.1. OOM_STEP (a global of this test state only)
-- names the step running, so a failure point can be reported by step.
--
-- Determinism: the allocation sequence must not depend on timing, so every
-- timeout here has a certain outcome (a fork that never ends in time) and
-- sleeps are 0. Any error a step catches is re-raised when it is a memory
-- error (reraise_memory), so an injected failure always reaches the host
-- and never turns into a wrong-result assertion.

local P = {}
local as, socket

local growth_steps  -- defined below

-- The step also goes to stderr, so that when the host dies (an ASan
-- report) tools/oomtest.lua can name the step it died in.
local function step(name)
  OOM_STEP = name
  io.stderr:write("oomstep: ", name, "\n")
end

-- Is `e` the memory error: the string Lua raises, or an exception made
-- from it (an ErrorException whose original value it is, or whose message
-- it is)? Decided by value, not by searching a text: an exception's text
-- may say "could not be formatted: not enough memory" about another error.
function P.is_memory(e)
  if e == "not enough memory" then return true end
  if as and as.Exception:is(e) then
    local original = e.getOriginal and e:getOriginal()
    return original == "not enough memory" or e:getMessage() == "not enough memory"
  end
  return false
end

-- A caught error that is the memory error is raised again, so an injected
-- failure always reaches the host instead of failing an expect() later.
-- Inspecting it may itself run out of memory: then that error propagates.
local function reraise_memory(ok, e, ...)
  if not ok and P.is_memory(e) then error(e, 0) end
  return ok, e, ...
end

-- assert() that says what it got: "oomprog: <step>: got ok=false e=<text>".
local function expect(cond, ...)
  if cond then return end
  local parts = {}
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    local okv, text = pcall(tostring, v)
    parts[#parts + 1] = okv and text or "?"
  end
  error(("oomprog: %s: got %s"):format(OOM_STEP, table.concat(parts, ", ")), 2)
end

function P.setup()
  as = require "asyncstack"
  socket = require "asyncstack.socket"
  as.on_unhandled(function() end)
end

local function gen(n)
  return coroutine.wrap(function()
    for i = 1, n do as.sleep(0); coroutine.yield(i) end
  end)
end

function P.program()
  step("run")
  local total = as.run(function()
    step("fork+wait")
    local f = as.fork(function(a) as.yield(); return a * 2 end, 21)
    f:name("doubler")
    assert(as.wait(f) == 42)

    step("pwait of a failing fork")
    local g = as.fork(function() error("boom") end)
    local ok, e = reraise_memory(as.pwait(g))
    expect(not ok and as.Exception:is(e) and e:getMessage():find("boom"), ok, e)

    step("exception through wait")
    local h = as.fork(function() error(as.Exception("disk full", 28)) end)
    ok, e = reraise_memory(as.pcall(as.wait, h))
    expect(not ok and as.Exception:is(e) and e:getCode() == 28, ok, e)
    local trace = e:getTraceAsString()
    expect(trace:find("{main}", 1, true), "getTraceAsString() without {main}", trace)
    local text = "x: " .. tostring(e)
    expect(text:find("disk full", 1, true), "tostring without the message", text)

    step("generator in a fork")
    local sum = 0
    for v in gen(3) do sum = sum + v end
    assert(sum == 6)

    step("traces")
    local deep = as.fork(function()
      local function inner()
        local frames = as.debug_backtrace({ async = true })
        assert(#frames > 0)
        local text = as.traceback("here", 1, { async = true })
        assert(text:find("here", 1, true))
        as.sleep(0)
        return debug.traceback("plain")
      end
      return inner()
    end)
    as.yield()
    assert(#as.fork_backtrace(deep) >= 0)
    assert(as.wait(deep):find("plain", 1, true))

    step("tasks and dump")
    local sleeper = as.fork(function() as.sleep(math.huge) end)
    sleeper:name("sleeper")
    as.yield()
    assert(#as.tasks() >= 2)
    local dump = as.dump()
    expect(dump:find("sleeper", 1, true), "dump without the sleeper", dump)

    step("channels")
    local ch = as.channel(2)
    local producer = as.fork(function()
      local guard <close> = ch                   -- closed even when the fork dies of memory
      for i = 1, 4 do ch:send(i) end
    end)
    -- The producer may die of memory before its guard exists: then nobody
    -- closes ch, and a plain recv would wait forever (a deadlock that is
    -- this program's, not asyncstack's). A timed recv asks the producer.
    local got = 0
    while true do
      local ok, v = pcall(ch.recv, ch, 1)
      if not ok and as.Timeout:is(v) then reraise_memory(as.pwait(producer)) end
      reraise_memory(ok, v)
      if not ok then error(v, 0) end
      if v == nil then break end
      got = got + v
    end
    reraise_memory(as.pwait(producer))
    expect(got == 10, "sum", got)

    step("channel timeouts")
    local lonely = as.channel()
    ok, e = reraise_memory(pcall(lonely.recv, lonely, 0.001))
    expect(not ok and as.Timeout:is(e), ok, e)
    local full = as.channel(1)
    full:send("x")
    ok, e = reraise_memory(pcall(full.send, full, "y", 0.001))
    expect(not ok and as.Timeout:is(e), ok, e)

    step("wait_all / wait_any")
    local a1 = as.fork(function() as.yield(); return 1 end)
    local a2 = as.fork(function() return 2 end)
    local all = as.wait_all({ a1, a2 }, 5)
    assert(all.n == 2 and all[1] == 1 and all[2] == 2)
    local b1 = as.fork(function() as.sleep(0); return "b1" end)
    local i, v = as.wait_any({ sleeper, b1 })
    assert(i == 2 and v == "b1")
    ok, e = reraise_memory(pcall(as.wait_all, { sleeper }, 0.001))
    expect(not ok and as.Timeout:is(e), ok, e)

    step("wait timeout")
    ok, e = reraise_memory(as.pwait(sleeper, 0.001))
    expect(not ok and as.Timeout:is(e), ok, e)

    step("cancel")
    local closed = false
    local victim = as.fork(function()
      local guard <close> = setmetatable({}, { __close = function() closed = true end })
      as.sleep(math.huge)
    end)
    as.yield()
    if not victim:cancel() then reraise_memory(as.pwait(victim)) end  -- it died of memory first?
    expect(victim:status() == "cancelled" or victim:status() == "runnable", "victim", victim:status())
    ok, e = reraise_memory(as.pwait(victim))
    expect(not ok and as.Cancelled:is(e) and closed, ok, e, closed)
    assert(sleeper:cancel())
    reraise_memory(as.pwait(sleeper))

    step("sockets")
    local server = assert(socket.bind("127.0.0.1", 0))
    local _, port = server:getsockname()
    local echo = as.fork(function()
      local conn = assert(server:accept())
      local line, err = conn:receive("*l")
      if err and P.is_memory(err) then error(err, 0) end
      conn:send(line .. "\n")
      conn:close()
    end)
    local c <close> = assert(socket.connect("127.0.0.1", port, 1.0))
    c:send("hello\n")
    local line, err = c:receive("*l")
    if err and P.is_memory(err) then error(err, 0) end
    if not line then reraise_memory(as.pwait(echo)) end  -- the echo fork died of memory?
    expect(line == "hello", "receive", line, err)
    as.wait(echo)
    server:close()

    step("unwaited failure")
    as.fork(function() error("nobody waits") end)
    as.yield()
    step("run: end")
    return 7
  end)
  assert(total == 7)
  growth_steps()
  step("done")
end

-- After an injected failure was caught: true when `ok, e` is a memory
-- error (absorbed: the program goes on, to show what the failed call left
-- behind), false when the call succeeded; any other error is raised.
local function absorbed(ok, e)
  if ok then return false end
  if P.is_memory(e) then return true end
  error(e, 0)
end

-- The timed call under test timed out: when only because `helper` died of
-- memory (so what it was to do never happened), that memory error is
-- raised; a timeout with the helper alive is returned to the caller.
local function helper_memory(helper, ok, e)
  if not ok and as.Timeout:is(e) then reraise_memory(as.pwait(helper)) end
  return ok, e
end

local function nop() end

-- Runs whose first timed call allocates the scheduler's timer heap (a new
-- run has a new scheduler), and runs whose 65th queued fork grows the run
-- queue: failing exactly that allocation checks that a call which raises
-- leaves nothing registered (issue 13 D2, D3). The memory error is caught
-- (absorbed) and the run goes on to use what a stale registration breaks.
growth_steps = function()
  step("timer heap: sleep, then a generator yields")
  as.run(function()
    absorbed(pcall(as.sleep, 0.001))
    local sum = 0
    for v in coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end) do sum = sum + v end
    expect(sum == 6, "generator sum", sum)
  end)

  -- t blocks in recv until `helper` sends; the timed call under test waits
  -- for t. When that call fails, main goes on at once and helper's send
  -- ends t while main sleeps: a stale registration would wake main early
  -- (wait) or touch a dropped node array (wait_all: ASan).
  local function blocked_pair()
    local ch = as.channel()
    local t = as.fork(function() return ch:recv() end)
    local helper = as.fork(function() as.yield(); ch:send("go") end)
    as.yield()
    return t, helper
  end

  step("timer heap: wait with a timeout")
  as.run(function()
    local t, helper = blocked_pair()
    absorbed(helper_memory(helper, pcall(as.wait, t, 1)))
    local t0 = as.now()
    as.sleep(0.004)
    expect(as.now() - t0 >= 0.0039, "sleep(0.004) returned early after", as.now() - t0)
    reraise_memory(as.pwait(t))
    reraise_memory(as.pwait(helper))
  end)

  step("timer heap: wait_all with a timeout")
  as.run(function()
    local t, helper = blocked_pair()
    absorbed(helper_memory(helper, pcall(as.wait_all, { t }, 1)))
    as.sleep(0.001)
    reraise_memory(as.pwait(t))
    reraise_memory(as.pwait(helper))
  end)

  step("timer heap: send with a timeout")
  as.run(function()
    local ch = as.channel(1)
    ch:send("x")
    local helper = as.fork(function() as.yield(); return ch:recv() end)
    local failed = absorbed(helper_memory(helper, pcall(ch.send, ch, "ghost", 1)))
    reraise_memory(as.pwait(helper))
    local ok, v = reraise_memory(pcall(ch.recv, ch, 0.002))
    if failed then
      expect(not ok and as.Timeout:is(v), "a value whose send failed", ok, v)
    else
      expect(ok and v == "ghost", "the value sent", ok, v)
    end
  end)

  step("timer heap: recv with a timeout")
  as.run(function()
    local ch = as.channel()
    local helper = as.fork(function() as.yield(); return ch:send("first", 5) end)
    local ok, v = helper_memory(helper, pcall(ch.recv, ch, 1))
    if absorbed(ok, v) then ok, v = reraise_memory(helper_memory(helper, pcall(ch.recv, ch, 1))) end
    expect(ok and v == "first", "the value sent", ok, v)
    reraise_memory(as.pwait(helper))
  end)

  step("run queue: close wakes receivers")
  as.run(function()
    local ch = as.channel()
    local receivers = {}
    for i = 1, 3 do receivers[i] = as.fork(function() return ch:recv() end) end
    as.yield()
    for _ = 1, 64 do as.fork(nop) end
    if absorbed(pcall(ch.close, ch)) then absorbed(pcall(ch.close, ch)) end
    for i = 1, 3 do reraise_memory(as.pwait(receivers[i])) end
  end)

  step("run queue: cancel wakes a blocked fork")
  as.run(function()
    local ch = as.channel()
    local victim = as.fork(function() return ch:recv() end)
    as.yield()
    for _ = 1, 64 do as.fork(nop) end
    if absorbed(pcall(victim.cancel, victim)) then absorbed(pcall(victim.cancel, victim)) end
    reraise_memory(as.pwait(victim))
  end)

  step("run queue: fork")
  as.run(function()
    for _ = 1, 64 do as.fork(nop) end
    absorbed(pcall(as.fork, nop))
  end)

  step("bridge: a generator's error, then the fork blocks")
  as.run(function()
    local gen = coroutine.wrap(function() error("from the generator") end)
    local ok, e = pcall(gen)
    if not ok and not P.is_memory(e) then
      expect(tostring(e):find("from the generator", 1, true), "generator error", e)
    end
    as.sleep(0)
    as.yield()
  end)
end

-- A following run() works, with no limit: a fork, a wait and a channel.
function P.check()
  local r = as.run(function()
    local ch = as.channel(1)
    local f = as.fork(function() ch:send(5); return 1 end)
    return as.wait(f) + ch:recv()
  end)
  assert(r == 6, "check: wrong result " .. tostring(r))
  assert(#as.tasks() == 0)
end

return P
