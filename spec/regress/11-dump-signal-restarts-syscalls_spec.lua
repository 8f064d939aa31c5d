-- Issue 13 D7: dump_on_signal installed its handler without SA_RESTART, so
-- a blocking system call anywhere in the process (a read from io.popen, a
-- file read), in or out of a run, failed with EINTR when the signal came.
-- Fixed: the dump handler has SA_RESTART (src/signals.c); the scheduler's
-- idle wait still wakes for it (clock_nanosleep and epoll_wait are never
-- restarted), which spec/introspect_spec.lua checks.
local child = require "spec.support.signal_child"

describe("regression: dump signal during a blocking read (issue 13 D7) #child", function()
  it("does not cut short a read outside a run", function()
    local out, status = child.lua([[
      local as = require "asyncstack"
      as.dump_on_signal()
      send_later("USR1", 0.3)
      local p = io.popen("exec 2>/dev/null; sleep 1; echo done")
      print("read:", p:read("a"))
      p:close()
    ]])
    assert.are.equal(0, status, out)
    assert.matches("read:\tdone\n", out)
  end)

  it("does not cut short a read inside a fork, and dumps after it", function()
    local out, status = child.lua([[
      local as = require "asyncstack"
      as.dump_on_signal()
      as.run(function()
        as.fork(function()
          send_later("USR1", 0.3)
          local p = io.popen("exec 2>/dev/null; sleep 1; echo done")
          print("read:", p:read("a"))
          p:close()
        end):name("reader")
      end)
    ]])
    assert.are.equal(0, status, out)
    assert.matches("read:\tdone\n", out)
    assert.matches("asyncstack: dump on signal\n", out)
    assert.matches("fork #%d+ 'reader' %[running%]", out)
  end)
end)
