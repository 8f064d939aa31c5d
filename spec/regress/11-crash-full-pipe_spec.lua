-- Issue 13 D11: the crash handler hung forever writing its report to a full
-- pipe (a blocking write, with SIGTERM and SIGINT masked). Fixed: the
-- signal-safe writer (src/sigsafe.c) makes the fd non-blocking while it
-- writes, waits for room at most AS_SIGSAFE_BUDGET_MS in all, then gives up
-- and the handler raises the signal again.
local child = require "spec.support.signal_child"

describe("regression: crash report to a full pipe (issue 13 D11) #child", function()
  it("gives up writing and dies of the signal", function()
    -- a hang ends with timeout's SIGKILL: status 137
    local out, status = child.shell("lua5.4 spec/fixtures/crash_child.lua full_pipe", 20)
    assert.are.equal(128 + 11, status, out)
  end)
end)
