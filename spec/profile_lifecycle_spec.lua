-- as.profile's timer and signal (issue 16): stop() deletes the timer and
-- gives SIGPROF back the action it had; closing the Lua state that started
-- a profile leaves no timer and no handler. In child processes (#child):
-- the state host (src-test/statehost.c) and plain lua5.4.
local child = require "spec.support.signal_child"

-- Busy for `secs` seconds of wall time (so a live timer would fire).
local function spin(secs)
  return ("local c = os.clock() while os.clock() - c < %s do end"):format(secs)
end

describe("asyncstack.profile: timer and signal #child", function()
  it("stop() gives SIGPROF back the host's handler", function()
    local out, status = child.statehost(
      "catch", "PROF",
      "new", 0, "do", 0, child.REQUIRE .. "; as.profile.start { hz = 997, mode = 'wall' }",
      "handler", "PROF", "other",
      "do", 0, spin(0.05) .. "; as.profile.stop()",
      "handler", "PROF", "host",
      "do", 0, spin(0.05),
      "count", "PROF", 0,
      "raise", "PROF", "count", "PROF", 1)
    assert.are.equal(0, status, out)
    assert.matches("host: ok\n$", out)
  end)

  it("stop() restores the default action: SIGPROF then ends the process", function()
    local out, status = child.lua([[
      local as = require "asyncstack"
      as.profile.start { hz = 997, mode = "cpu" }
      local c = os.clock() while os.clock() - c < 0.05 do end
      as.profile.stop()
      c = os.clock() while os.clock() - c < 0.05 do end   -- no tick pending
      io.stdout:write("stopped\n") io.stdout:flush()
      os.execute("kill -PROF " .. PID)
      c = os.clock() while os.clock() - c < 1 do end
      print("still alive")
    ]])
    assert.are.equal(128 + 27, status, out)     -- SIGPROF is 27 on Linux
    assert.matches("^stopped\n$", out)
  end)

  it("closing the state while it profiles deletes the timer and gives the signal back", function()
    local out, status = child.statehost(
      "catch", "PROF",
      "new", 0, "do", 0, child.REQUIRE .. "; as.profile.start { hz = 997, mode = 'wall' }",
      "do", 0, spin(0.03),
      "close", 0,
      "handler", "PROF", "host",
      "new", 1, "do", 1, spin(0.1),
      "count", "PROF", 0)
    assert.are.equal(0, status, out)
    assert.matches("host: ok\n$", out)
  end)

  it("a profile another state runs is not this state's to stop", function()
    local out, status = child.statehost(
      "new", 0, "do", 0, child.REQUIRE .. "; as.profile.start { hz = 997, mode = 'wall' }",
      "new", 1, "do", 1, child.REQUIRE .. [[;
        assert(not as.profile.running())
        local ok, err = pcall(as.profile.start)
        assert(not ok and err:find("a profile is already running", 1, true), err)
        ok, err = pcall(as.profile.stop)
        assert(not ok and err:find("no profile is running", 1, true), err)]],
      "do", 0, "assert(as.profile.stop():info().signals > 0)",
      "close", 0, "close", 1)
    assert.are.equal(0, status, out)
    assert.matches("host: ok\n$", out)
  end)
end)
