-- The kernels behind `make bench`'s issue-17 rows (bench/kernels.lua,
-- bench/peers.lua, bench/echo.lua) do what their rows say, run with tiny
-- counts. Nothing here is timed: the figures are `make bench`'s. A peer
-- library that is not installed makes its case pending.
local helper = require "spec.helper"

local K = dofile("bench/kernels.lua")
local P = dofile("bench/peers.lua")

local function seconds(t)
  assert.is_number(t)
  assert.is_true(t >= 0 and t < 60)
end

describe("bench kernels (issue 17)", function()
  it("channel ping-pong and its coroutine baseline carry every value there and back", function()
    -- each kernel raises if a pong differs from its ping
    seconds(K.channel_pingpong(50))
    seconds(K.co_pingpong(50))
  end)

  it("sleepers sleep 0 to 10 ms, every duration as often as the others", function()
    local seen = {}
    for i = 1, 1100 do
      local ms = K.sleep_ms(i)
      seen[ms] = (seen[ms] or 0) + 1
    end
    for ms = 0, 10 do assert.are.equal(100, seen[ms]) end
    assert.is_nil(seen[11])
    seconds(K.fork_sleep_spread(200))
  end)

  it("the error chain raises in the innermost fork and reaches the root's pcall", function()
    -- each kernel raises if its pcall returns true
    seconds(K.fork_error_chain(5))
    seconds(K.pcall_wraps(5))
  end)

  it("the least scheduler (bench/floor.c) runs its forks, waits and wakes sleepers in deadline order",
     function()
    local fl, why = K.floor()
    assert(fl, why)                                  -- make test builds it
    assert.are.equal(42, fl.run(function()
      return fl.wait(fl.fork(function() return 42 end))
    end))
    local order = {}
    fl.run(function()
      for _, d in ipairs({ 0.03, 0.01, 0.02, 0 }) do
        fl.fork(function() fl.sleep(d); order[#order + 1] = d end)
      end
    end)
    assert.are.same({ 0, 0.01, 0.02, 0.03 }, order)
    assert.are.equal("floor.sleep: not inside a fork", select(2, pcall(fl.sleep, 0)))
    seconds(K.floor_fork_wait(20))
    seconds(K.floor_sleep_spread(50))
  end)

  it("the trace chain's text goes through every awaiting fork up to run()", function()
    local text = K.trace_chain_text(K.TRACE_CHAIN)
    local _, awaited = text:gsub("awaited by fork #", "")
    assert.are.equal(K.TRACE_CHAIN, awaited)
    assert.truthy(text:find("started by run()", 1, true))
    seconds(K.trace_chain(2))
  end)
end)

-- The peers' kernels and the echo servers run in child processes (#child:
-- valgrind and gc-stress leave them out).
describe("bench peers (issue 17) #child", function()
  local cases = {
    cqueues = { "K.cq_wrap_loop(20)", "K.cq_poll(20)", "P.cq_pingpong(20)",
                "P.cq_sleep_spread(50, K.sleep_ms)" },
    luv = { "P.luv_timer_run(20)", "P.luv_idle_yield(20)", "P.luv_sleep_spread(50, K.sleep_ms)" },
  }
  for _, peer in ipairs { "cqueues", "luv" } do
    it(peer .. "'s kernels run", function()
      local why = P.missing(peer)
      if why then pending(why) return end
      local lines = { 'local K = dofile("bench/kernels.lua")', 'local P = dofile("bench/peers.lua")' }
      for _, call in ipairs(cases[peer]) do
        lines[#lines + 1] = ("do local t = %s; assert(type(t) == 'number' and t >= 0, %q); print(%q) end")
          :format(call, call, "ok " .. call)
      end
      local out, status = helper.run_child(table.concat(lines, "\n"))
      assert.are.equal(0, status, out)
      for _, call in ipairs(cases[peer]) do
        assert.truthy(out:find("ok " .. call, 1, true), out)
      end
    end)
  end

  it("copas, where it has no kernel, says why", function()
    local why = P.missing("copas")
    if why then pending(why) return end
    -- in a child: copas replaces LuaSocket's socket.protect and socket.newtry
    local out, status = helper.run_child([[
      local P = dofile("bench/peers.lua")
      local version = tostring(P.load("copas")._VERSION)
      for _, what in ipairs { "sleep", "yield", "wait", "queue" } do
        local text = P.copas_lacks(what)
        assert(text:sub(1, #version) == version, text)
        print("ok " .. what .. ": " .. text)
      end]])
    assert.are.equal(0, status, out)
    local _, n = out:gsub("ok %a+: ", "")
    assert.are.equal(4, n, out)
  end)

  local E = dofile("bench/echo.lua")
  for _, kind in ipairs(E.kinds) do
    it("the TCP echo client gets every line back from the " .. kind .. " server", function()
      local why = P.missing("socket") or P.missing(E.needs[kind])
      if why then pending(why) return end
      local p = io.popen("mktemp -d /tmp/asyncstack-echo-spec.XXXXXX")
      local tmp = p:read("l")
      p:close()
      local ok, res = pcall(E.measure, kind, { interp = "lua5.4", script = "bench/echo.lua",
                                               tmp = tmp, clients = 3, lines = 5 })
      os.execute("rm -rf '" .. tmp .. "'")
      assert(ok, res)
      assert.are.equal(15, res.requests)
      assert.is_true(res.cpu >= 0)
    end)
  end
end)
