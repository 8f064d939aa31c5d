-- Issue 8, part 3 (wrong states): as.install() / as.uninstall() called while
-- a run() is active are undone when run() returns. README: "as.run installs
-- a bridge for its duration (and as.install() / as.uninstall() do it for
-- good)".
--
-- Where: src/sched.c sched_run, at the end: `if (installed)
-- as_bridge_uninstall(L, st);` looks only at what run itself changed when it
-- started, not at st->bridge_installed, which install()/uninstall() set
-- (src/bridge.c bridge_l_install / bridge_l_uninstall; uninstall inside a
-- run leaves the bridge "until run returns", and then nobody removes it).
-- At the end run should leave the bridge installed iff st->bridge_installed.
local as = require "asyncstack"

describe("regression: install-inside-run", function()
  local original = coroutine.resume

  it("keeps the bridge that as.install() put in during run()", function()
    as.run(function() as.install() end)
    local bridged = coroutine.resume ~= original
    as.uninstall()
    assert.is_true(bridged)
  end)

  it("removes the bridge when as.uninstall() was called during run()", function()
    as.install()
    as.run(function() as.uninstall() end)
    local bridged = coroutine.resume ~= original
    as.uninstall()
    assert.is_false(bridged)
  end)
end)
