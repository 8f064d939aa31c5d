-- Issue 13, D4: when capturing the raise-site trace of a failed coroutine
-- raised (an allocation failure inside the walk), the bridge left the dead
-- coroutine's async frame pushed, because the capture ran before the pop.
-- The fork could then never block again: every sleep/wait/yield raised
-- "cannot suspend: this coroutine was resumed by an unbridged
-- coroutine.resume".
--
-- Where: src/bridge.c, bridge_finish: as_backtrace_push_fork (which
-- allocates the raw trace table) ran before as_astack_pop(&f->astack).
--
-- Fixed: capture_raise_site runs the capture under lua_pcall, pops the frame
-- whatever the capture did, and then goes on with the coroutine's own error
-- (the trace is best effort; the error value and the async stack are not).
--
-- How it is tested: an allocation failure cannot be provoked from Lua with
-- the stock lua5.4 (its allocator takes no limit; H4's allocation-failure
-- host sweeps it). Any error raised inside the capture takes the same path
-- as a memory error, and a call hook set on the resuming fork's thread
-- raises inside it deterministically: the capture is the first C function
-- called on that thread after the coroutine died. The specs check that the
-- hook did fire there, that resume/wrap still give the coroutine's own
-- error (with wrap's position and closing), and that the fork can block
-- afterwards.
local as = require "asyncstack"

-- From inside a coroutine resumed by the fork root `main`: makes the next C
-- call on `main` raise, once; `log.fired` records where.
local function fail_next_call_on(main, log)
  debug.sethook(main, function()
    debug.sethook(main)
    log.fired = debug.getinfo(2, "S").what   -- the called function: C
    error("injected capture failure", 0)
  end, "c")
end

describe("regression: 11-stale-frame-after-capture-failure", function()
  it("pops the failed coroutine's frame when the capture raises (resume)", function()
    local log = {}
    local r, after = as.run(function()
      local main = coroutine.running()
      local co = coroutine.create(function()
        fail_next_call_on(main, log)
        error("boom", 0)
      end)
      local res = table.pack(coroutine.resume(co))
      as.sleep(0.001)                        -- raised "unbridged" with the bug
      return res, #as.debug_backtrace()
    end)
    assert.are.equal("C", log.fired)
    assert.are.same({ false, "boom", n = 2 }, r)
    assert.are.equal(1, after)               -- only the root function
  end)

  it("pops it, closes the generator and keeps wrap's message (wrap)", function()
    local log = {}
    local closed = false
    local ok, err = as.run(function()
      local main = coroutine.running()
      local g = coroutine.wrap(function()
        local _ <close> = setmetatable({}, { __close = function() closed = true end })
        fail_next_call_on(main, log)
        error("boom")
      end)
      local o, e = pcall(g)
      as.yield()
      coroutine.yield()                      -- a fork-level await point too
      return o, e
    end)
    assert.are.equal("C", log.fired)
    assert.is_false(ok)
    assert.matches("^spec/regress/11%-stale%-frame%-after%-capture%-failure_spec.lua:%d+: boom$", err)
    assert.is_true(closed)
  end)

  it("keeps the raise-site trace when the capture works", function()
    local line
    local e = as.run(function()
      local _, err = as.pcall(function()
        local g = coroutine.wrap(function()
          line = debug.getinfo(1, "l").currentline + 1
          error("deep")
        end)
        g()
      end)
      as.sleep(0.001)
      return err
    end)
    assert.is_true(as.ErrorException:is(e))
    assert.are.equal(line, e:getLine())      -- the raise site, in the generator
  end)
end)
