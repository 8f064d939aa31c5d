-- Issue 13 D5: dump_on_signal's handler outlived its Lua state. After
-- lua_close, SIGUSR1 jumped into the unloaded core.so; with two states,
-- closing the one that enabled it left a dangling state pointer, used by the
-- dump hook when the other state's run was interrupted
-- (heap-use-after-free in as_hook_push under ASan). Fixed in
-- src/signals.c: one registry of held signals, each owned by the guard of
-- the state that took it; closing a state gives back only what it holds,
-- and the dump hook prints through the state whose run is active.
local child = require "spec.support.signal_child"

-- In the state that runs: a fork that is in C code when SIGUSR1 comes
-- (os.execute of a kill), so the handler hooks it and the hook runs.
local RUN_AND_SIGNAL = [[
  as.run(function()
    as.fork(function()
      os.execute("kill -USR1 " .. HOST_PID)
      for _ = 1, 1000 do end
    end):name("signaller")
  end)
]]

describe("regression: signal handlers and two Lua states (issue 13 D5) #child", function()
  it("closing the state that enabled the dump leaves no handler pointing at it", function()
    local out, status = child.statehost(
      "catch", "USR1",
      "new", 0, "do", 0, child.REQUIRE .. "; as.dump_on_signal()",
      "new", 1, "do", 1, child.REQUIRE,
      "close", 0,
      "handler", "USR1", "host",
      "do", 1, child.REQUIRE .. ";" .. RUN_AND_SIGNAL,
      "count", "USR1", 1)
    assert.are.equal(0, status, out)
    assert.is_nil(out:find("dump on signal", 1, true), out)
    assert.matches("host: ok\n$", out)
  end)

  it("the state that enabled it last owns it: closing the other one keeps it", function()
    local out, status = child.statehost(
      "catch", "USR1",
      "new", 0, "do", 0, child.REQUIRE .. "; as.dump_on_signal()",
      "new", 1, "do", 1, child.REQUIRE .. "; as.dump_on_signal()",
      "close", 0,
      "handler", "USR1", "other",
      "do", 1, RUN_AND_SIGNAL,
      "count", "USR1", 0,
      "close", 1,
      "handler", "USR1", "host",
      "raise", "USR1", "count", "USR1", 1)
    assert.are.equal(0, status, out)
    -- the dump came from the state that runs
    assert.matches("asyncstack: dump on signal\nscheduler: ", out)
    assert.matches("host: ok\n$", out)
  end)

  it("a dump enabled in one state prints the run of another", function()
    local out, status = child.statehost(
      "new", 0, "do", 0, child.REQUIRE .. "; as.dump_on_signal()",
      "new", 1, "do", 1, child.REQUIRE .. ";" .. RUN_AND_SIGNAL,
      "close", 1,
      "handler", "USR1", "other",
      "close", 0,
      "handler", "USR1", "default")
    assert.are.equal(0, status, out)
    assert.matches("fork #%d+ 'signaller' %[running%]", out)
  end)
end)
