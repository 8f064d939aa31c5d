-- Issue 12 item 8: as.dump_on_signal() left its handler installed after the
-- Lua state was closed; the next SIGUSR1 jumped into the unloaded module
-- (segfault). Fixed: the handler is held by the state's signal guard
-- (src/signals.c), which puts back the previous action when the state
-- closes. The state host (src-test/statehost.c) installs its own SIGUSR1
-- handler first, so "previous action restored" is observable.
local child = require "spec.support.signal_child"

describe("regression: dump_on_signal after lua_close (issue 12 item 8) #child", function()
  it("puts back the host's own handler when the state closes", function()
    local out, status = child.statehost(
      "catch", "USR1",
      "new", 0, "do", 0, child.REQUIRE .. "; as.dump_on_signal()",
      "handler", "USR1", "other",
      "close", 0,
      "handler", "USR1", "host",
      "raise", "USR1", "raise", "USR1",
      "count", "USR1", 2)
    assert.are.equal(0, status, out)
    assert.matches("host: ok\n$", out)
  end)

  it("puts back the default action when nothing was installed before", function()
    local out, status = child.statehost(
      "new", 0, "do", 0, child.REQUIRE .. "; as.dump_on_signal('SIGUSR2')",
      "close", 0,
      "handler", "USR2", "default")
    assert.are.equal(0, status, out)
    assert.matches("host: ok\n$", out)
  end)

  it("gives back a removed handler at once: dump_on_signal(false)", function()
    local out, status = child.statehost(
      "catch", "USR1",
      "new", 0, "do", 0, child.REQUIRE .. "; as.dump_on_signal(); as.dump_on_signal(false)",
      "handler", "USR1", "host",
      "close", 0)
    assert.are.equal(0, status, out)
  end)

  it("gives back the crash handler's signals too", function()
    local out, status = child.statehost(
      "catch", "ABRT",
      "new", 0, "do", 0, child.REQUIRE .. "; assert(as.crash.install())",
      "handler", "ABRT", "other", "handler", "SEGV", "other",
      "close", 0,
      "handler", "ABRT", "host")
    assert.are.equal(0, status, out)
  end)
end)
