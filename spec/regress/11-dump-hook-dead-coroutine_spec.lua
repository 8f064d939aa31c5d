-- Issue 13 D6: the dump hook stayed on a coroutine that died in C code (the
-- signal came while it was in a C function that then raised), and the
-- handler hooked a coroutine only while no other one was hooked: later
-- signals never interrupted a spinning fork again. Fixed in src/signals.c:
-- each signal hooks the running coroutine; the table of hooked coroutines
-- is only compared against, never waited on.
local child = require "spec.support.signal_child"

describe("regression: dump hook left on a dead coroutine (issue 13 D6) #child", function()
  it("a later signal still dumps a spinning fork", function()
    local out, status = child.lua([[
      local as = require "asyncstack"
      local helper = require "asyncstack_crashhelper"
      as.dump_on_signal()
      as.run(function()
        as.fork(function()
          send_later("USR1", 0.3)            -- while the generator sleeps in C
          send_later("USR1", 1.5)            -- while this fork spins
          local gen = coroutine.wrap(function() helper.sleep_then_error(0.8) end)
          assert(not pcall(gen))             -- it died in C: its hook never ran
          io.stderr:write("generator died\n")
          local t0 = os.time()
          while os.time() - t0 < 3 do end    -- spins, never yields
        end):name("spinner")
      end)
      print("survived")
    ]])
    assert.are.equal(0, status, out)
    assert.matches("generator died\n.*asyncstack: dump on signal\n", out)
    assert.matches("fork #%d+ 'spinner' %[running%]", out)
    assert.matches("survived\n$", out)
  end)
end)
