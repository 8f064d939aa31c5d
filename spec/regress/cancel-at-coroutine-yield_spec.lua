-- Found by the reliability work (issue 8, cancel at every await point):
-- README says a plain coroutine.yield() at a fork's own level is the same
-- as as.yield(), and that f:cancel() raises as.Cancelled inside f at its
-- await point. At a coroutine.yield it does not: cancel() returns true, the
-- fork resumes as if nothing happened and the Cancelled surfaces only at
-- its next blocking call, or never: the fork ends "done".
--
--   local as = require "asyncstack"
--   as.run(function()
--     local f = as.fork(function()
--       coroutine.yield()               -- f is runnable here
--       return "finished"
--     end)
--     as.yield()
--     print(f:cancel())                  --> true
--     print(as.pwait(f))                 --> true  finished  (expected false, Cancelled)
--     print(f:status())                  --> done            (expected cancelled)
--   end)
--
-- Where: src/sched.c resume_fork. A fork that yielded with a plain
-- coroutine.yield is resumed with no continuation of ours, so nothing reads
-- wake == AS_WAKE_CANCEL; sched_cancel sets it (status RUNNABLE, nargs < 0)
-- and leaves cancel_requested. Either raise the Cancelled when resuming such
-- a fork (resume it with an error, e.g. through a continuation that
-- checks), or document that a coroutine.yield is no await point for cancel.
--
-- Fixed (d87e716): coroutine.yield is bridged; at a fork's own level it is
-- as.yield(), an await point cancel reaches. The random programs' cancel
-- victims park there too.
local as = require "asyncstack"


describe("regression: cancel-at-coroutine-yield", function()
  it("cancels a fork that yielded with coroutine.yield, as it does at as.yield", function()
    local after, ok, e, status
    as.run(function()
      local f = as.fork(function()
        coroutine.yield()
        after = true
        return "finished"
      end)
      as.yield()
      assert.is_true(f:cancel())
      ok, e = as.pwait(f)
      status = f:status()
    end)
    assert.is_nil(after)
    assert.is_false(ok)
    assert.is_true(as.Cancelled:is(e))
    assert.are.equal("cancelled", status)
  end)

  it("(for comparison) cancels a fork at as.yield", function()
    local after, ok, e, status
    as.run(function()
      local f = as.fork(function()
        as.yield()
        after = true
      end)
      as.yield()
      assert.is_true(f:cancel())
      ok, e = as.pwait(f)
      status = f:status()
    end)
    assert.is_nil(after)
    assert.is_false(ok)
    assert.is_true(as.Cancelled:is(e))
    assert.are.equal("cancelled", status)
  end)
end)
