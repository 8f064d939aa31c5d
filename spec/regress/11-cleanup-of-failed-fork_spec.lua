-- Issue 13, D9: the <close> handlers of a fork that failed or was cancelled
-- ran from the scheduler (lua_resetthread with no running fork) after its
-- outcome was set, so whatever they raised was silently dropped, and
-- as.current() inside them was nil. Handlers of forks still live at run()'s
-- end were closed the same way, their errors dropped too.
-- Where: src/sched.c fail and as_sched_abandon_live. The fork is the running
-- fork while its handlers run (they cannot block: a blocking call raises a
-- clear error), the handlers receive the fork's exception, and an error one
-- raises becomes the fork's outcome (as in Lua, where a __close error
-- replaces the error in flight): waiters see it, or on_unhandled reports it.
local as = require "asyncstack"

local function closer(fn) return setmetatable({}, { __close = fn }) end

describe("regress: cleanups of a failed or cancelled fork", function()
  it("run inside the fork and receive its exception", function()
    local seen_current, seen_err, fork
    local ok, err = as.run(function()
      fork = as.fork(function()
        local c <close> = closer(function(_, e)
          seen_current = as.current()
          seen_err = e
        end)
        error("boom")
      end)
      return as.pwait(fork)
    end)
    assert.is_false(ok)
    assert.equal(fork, seen_current)
    assert.equal(err, seen_err)              -- the converted exception itself
    assert.matches("boom", tostring(err))
  end)

  it("an error a cleanup of a failed fork raises is what waiters see", function()
    local ok, err = as.run(function()
      local f = as.fork(function()
        local c <close> = closer(function() error("cleanup broke") end)
        error("boom")
      end)
      return as.pwait(f)
    end)
    assert.is_false(ok)
    assert.matches("cleanup broke", tostring(err))
  end)

  it("an error a cleanup of a cancelled fork raises fails the fork, not a cancellation", function()
    local status, err
    as.run(function()
      local f = as.fork(function()
        local c <close> = closer(function() error("cleanup of cancelled broke") end)
        as.sleep(10)
      end)
      as.yield()
      f:cancel()
      local ok
      ok, err = as.pwait(f)
      assert.is_false(ok)
      status = f:status()
    end)
    assert.equal("failed", status)
    assert.matches("cleanup of cancelled broke", tostring(err))
  end)

  it("a cleanup's error nobody waits for goes to the unhandled report", function()
    local reports = {}
    as.on_unhandled(function(e) reports[#reports + 1] = tostring(e) end)
    finally(function() as.on_unhandled(nil) end)
    as.run(function()
      as.fork(function()
        local c <close> = closer(function() error("lost cleanup error") end)
        error("boom")
      end)
      as.sleep(0.01)
    end)
    assert.equal(1, #reports)
    assert.matches("lost cleanup error", reports[1])
  end)

  it("a cleanup of a failed fork cannot block: blocking raises a clear error, which is the outcome", function()
    local ok, err = as.run(function()
      local f = as.fork(function()
        local c <close> = closer(function() as.sleep(0) end)
        error("boom")
      end)
      return as.pwait(f)
    end)
    assert.is_false(ok)
    assert.matches("sleep: cannot suspend in a cleanup of a failed or cancelled fork", tostring(err))
  end)

  it("a cleanup of a fork that returns normally may block", function()
    local log = {}
    as.run(function()
      local f = as.fork(function()
        local c <close> = closer(function() as.sleep(0); log[#log + 1] = "closed" end)
        return 1
      end)
      assert.equal(1, as.wait(f))
    end)
    assert.same({ "closed" }, log)
  end)

  it("a cleanup run while a pcall inside the fork catches an error may block", function()
    local log = {}
    as.run(function()
      local f = as.fork(function()
        local ok, e = pcall(function()
          local c <close> = closer(function() as.sleep(0); log[#log + 1] = "closed" end)
          error("caught")
        end)
        log[#log + 1] = (not ok and tostring(e):match("caught")) or "?"
      end)
      as.wait(f)
    end)
    assert.same({ "closed", "caught" }, log)
  end)

  it("an error a cleanup of a fork abandoned at run()'s end raises is reported", function()
    local reports = {}
    as.on_unhandled(function(e) reports[#reports + 1] = tostring(e) end)
    finally(function() as.on_unhandled(nil) end)
    local ok, err = pcall(as.run, function()
      as.fork(function()
        local c <close> = closer(function() error("abandoned cleanup broke") end)
        as.sleep(10)
      end)
      as.yield()
      error("the root fails")   -- run() ends with the fork still sleeping
    end)
    assert.is_false(ok)
    assert.matches("the root fails", tostring(err))
    assert.equal(1, #reports)
    assert.matches("abandoned cleanup broke", reports[1])
  end)
end)
