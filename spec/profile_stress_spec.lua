-- as.profile under stress (issue 16 item 4): 1 kHz sampling for 10 s over a
-- program that gives the SIGPROF handler every awkward moment -- forks
-- starting and ending, the scheduler between forks, the allocator and the
-- collector busy, C calls (table.sort with a Lua comparator, string.rep,
-- string.format), deep recursion growing and shrinking Lua stacks,
-- coroutines created, resumed and closed, errors raised and caught,
-- channels and sleeps. Run by `make profile-stress` under ASan+UBSan and
-- under valgrind (each reports any bad read); `make test` leaves it
-- pending (ASYNCSTACK_PROFILE_STRESS unset).
local as = require "asyncstack"

local SECONDS = tonumber(os.getenv("ASYNCSTACK_PROFILE_STRESS") or "")

local function deep(n)
  if n == 0 then return 0 end
  local pad = { n, n, n }            -- a bigger frame: the stack grows faster
  return deep(n - 1) + pad[1] - n
end

local function churn(deadline)
  local rounds = 0
  while as.now() < deadline do
    rounds = rounds + 1
    local t = {}
    for i = 1, 200 do t[i] = ("%d:%s"):format(i, ("x"):rep(i % 17)) end
    table.sort(t, function(a, b) return #a < #b or (#a == #b and a < b) end)
    deep(150 + rounds % 300)          -- reallocates the coroutine's stack
    local co = coroutine.wrap(function(n)
      for i = 1, n do coroutine.yield(i) end
    end)
    for _ = 1, 5 do co(5) end
    local c = coroutine.create(function() coroutine.yield(1) end)
    coroutine.resume(c)
    coroutine.close(c)
    pcall(error, { rounds })
    collectgarbage("step", 10)
    as.yield()
  end
  return rounds
end

local function pipeline(deadline)
  local ch = as.channel(4)
  local producer = as.fork(function()
    local i = 0
    while as.now() < deadline do
      i = i + 1
      ch:send(("item %d"):format(i))
      if i % 50 == 0 then as.sleep(0.001) end
    end
    ch:close()
  end)
  producer:name("producer")
  local n = 0
  for _ in ch do n = n + 1 end
  as.wait(producer)
  return n
end

local function spawner(deadline)
  local n = 0
  while as.now() < deadline do
    local fs = {}
    for i = 1, 8 do fs[i] = as.fork(function(k) deep(k * 10) return k end, i) end
    as.wait_all(fs)
    n = n + #fs
  end
  return n
end

local function workload(seconds)
  local deadline = as.now() + seconds
  return as.run(function()
    local forks = {
      as.fork(churn, deadline), as.fork(churn, deadline),
      as.fork(pipeline, deadline), as.fork(spawner, deadline),
      as.fork(as.sleep, seconds / 2),
    }
    return as.wait_all(forks)
  end)
end

describe("asyncstack.profile under stress", function()
  if not SECONDS then
    pending("1 kHz for 10 s: run by `make profile-stress` (under ASan and valgrind)")
    return
  end

  for _, mode in ipairs({ "wall", "cpu" }) do
    it(("samples a busy program at 1 kHz (%s clock) without a bad read"):format(mode), function()
      -- the wall clock gives a real 1 kHz; a CPU-time timer ticks at the
      -- kernel's rate (with overruns counted), so it gets a shorter run
      local seconds = mode == "wall" and SECONDS or SECONDS / 4
      as.profile.start { hz = 1000, mode = mode }
      local results = workload(seconds)
      local p = as.profile.stop()
      local info = p:info()
      io.stderr:write(("profile-stress %s: %g s, %d signals, %d samples, %d stacks, " ..
                       "%d unreadable frames, %d dropped, handler %.1f us/signal\n")
                      :format(mode, seconds, info.signals, info.samples, info.stacks,
                              info.unreadable, info.dropped,
                              info.signals > 0 and info.handler_seconds / info.signals * 1e6 or 0))
      assert.is_true(results.n == 5)
      assert.is_true(info.signals > 0)
      assert.is_true(info.samples > 0)
      -- the outputs are made from every stack
      assert.truthy(p:folded():find("churn", 1, true))
      assert.truthy(p:svg():find("</svg>", 1, true))
      assert.truthy(p:speedscope():find('"type":"sampled"', 1, true))
    end)
  end
end)
