-- Issue 13, D1: run() marked itself active, then did things that can raise
-- (pushing its loop closure, the deadlock report, luaL_checkstack for the
-- root's results, the unhandled-failure report) before clearing the mark.
-- One raise left the run "active": every later run() failed with "already
-- inside", and fork() used the collected scheduler (heap-use-after-free
-- under ASan). Deterministic: a root fork returning ~1,000,000 values
-- overflows run()'s stack when its results are moved.
-- Where: src/run.c sched_run. The run is now marked active only around
-- protected calls, and the results are moved after the run has ended.
local as = require "asyncstack"

local MANY = 999900   -- fits a fork's fresh stack, not run()'s caller's
local PAD = {}
for i = 1, 500 do PAD[i] = i end

-- pcall(as.run, f) with 500 values of padding on the caller's stack, so the
-- results cannot fit there however deep busted's own stack is.
local function pcall_run_padded(f)
  local function call(...)
    assert(select("#", ...) == #PAD)
    return pcall(as.run, f)
  end
  return call(table.unpack(PAD))
end

describe("regress: run() after a raise inside run()", function()
  it("raises 'too many results' for a root returning ~1,000,000 values, and runs again", function()
    local ok, err = pcall_run_padded(function()
      local t = {}
      for i = 1, MANY do t[i] = i end
      return table.unpack(t, 1, MANY)
    end)
    assert.is_false(ok)
    assert.matches("stack overflow %(too many results from run%)", tostring(err))
    -- the run ended: a new one works, and fork() outside one says so
    assert.are.equal(42, as.run(function()
      return as.wait(as.fork(function() return 42 end))
    end))
    assert.has_error(function() as.fork(function() end) end,
                     "fork: not inside asyncstack.run()")
  end)

  it("runs again after a deadlock error", function()
    local ok, err = pcall(as.run, function()
      as.fork(function() as.channel():recv() end)
    end)
    assert.is_false(ok)
    assert.matches("deadlock", tostring(err))
    assert.are.equal("ok", as.run(function() return "ok" end))
  end)
end)
