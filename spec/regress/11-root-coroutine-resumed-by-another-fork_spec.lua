-- Issue 13, D8 (issue 12 item 1, see 10-fork-level-yield-resumable_spec.lua):
-- another fork's root coroutine could be resumed while it was parked in a
-- fork-level coroutine.yield(): the fork's code then ran under the resuming
-- fork's identity (as.current(), its async stack) and the results a waiter
-- saw were overwritten.
--
-- Where: src/bridge.c, is_parked (see the issue-12 spec).
-- Fixed: is_parked recognises a fork-level coroutine.yield (bridge_yield
-- marks it) and refuses it, as at as.yield().
local as = require "asyncstack"

describe("regression: 11-root-coroutine-resumed-by-another-fork", function()
  it("keeps a parked fork's code in its own fork and its results its own", function()
    local seen = {}
    local results
    as.run(function()
      local t
      local f = as.fork(function()
        t = coroutine.running()
        for _ = 1, 3 do
          coroutine.yield()
          seen[#seen + 1] = as.current()
        end
        return "own result"
      end)
      local thief = as.fork(function()
        for _ = 1, 3 do
          coroutine.resume(t, "stolen")      -- refused every time
          as.yield()
        end
        return "thief"
      end)
      as.wait(thief)
      results = table.pack(as.pwait(f))
      seen.f = f
    end)
    assert.are.equal(3, #seen)
    for i = 1, 3 do assert.are.equal(seen.f, seen[i]) end
    assert.are.same({ true, "own result", n = 2 }, results)
  end)

  it("leaves the fork's thread to the scheduler: close is refused, the fork ends normally", function()
    local status, closed
    as.run(function()
      local t
      local f = as.fork(function()
        t = coroutine.running()
        coroutine.yield()
        return 1
      end)
      as.yield()
      closed = table.pack(pcall(coroutine.close, t))
      as.wait(f)
      status = f:status()
    end)
    assert.is_false(closed[1])
    assert.matches("cannot close a coroutine that is blocked in an asyncstack call", closed[2], 1, true)
    assert.are.equal("done", status)
  end)
end)
