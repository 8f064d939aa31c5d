-- Found by the reliability work (issue 8): as.sleep(1e308) made the idle
-- loop convert an out-of-range deadline to time_t; clock_nanosleep then
-- failed at once and the scheduler spun at 100 % CPU instead of sleeping.
-- Checked with CPU time, not wall time: a spinning loop burns the whole
-- wait, an idle one next to nothing, however loaded the machine is.
local as = require "asyncstack"

describe("regress: a far deadline", function()
  it("lets the scheduler idle instead of spinning", function()
    local cpu
    as.run(function()
      local f = as.fork(function() as.sleep(1e308) end)
      as.yield()
      local t0 = os.clock()
      assert.is_false(as.pwait(f, 0.3))
      cpu = os.clock() - t0
      f:cancel()
    end)
    assert.is_true(cpu < 0.1, ("%.3f s of CPU in a 0.3 s idle wait"):format(cpu))
  end)
end)
