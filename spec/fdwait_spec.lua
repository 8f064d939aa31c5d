local as = require "asyncstack"
local socket = require "socket"
local helper = require "spec.helper"
local error_of = helper.error_of

local pair = helper.socket_pair

describe("asyncstack.fdwait", function()
  describe("wait_fd()", function()
    it("wakes a reader when data arrives, letting other forks run meanwhile", function()
      local a, b = pair()
      local log = {}
      as.run(function()
        local reader = as.fork(function()
          assert.is_true(as.wait_fd(a:getfd(), "r"))
          log[#log + 1] = "read " .. a:receive("*l")
        end)
        as.fork(function() log[#log + 1] = "other fork ran" end)
        as.sleep(0.02)
        log[#log + 1] = "writing"
        b:send("hello\n")
        as.wait(reader)
      end)
      assert.are.same({ "other fork ran", "writing", "read hello" }, log)
      a:close(); b:close()
    end)

    it("accepts an object with getfd() and waits for writability", function()
      local a, b = pair()
      local ok = as.run(function() return as.wait_fd(a, "w", 1) end)
      assert.is_true(ok)
      a:close(); b:close()
    end)

    it("raises as.Timeout and unregisters the fd", function()
      local a, b = pair()
      local e, fds_after
      as.run(function()
        e = error_of(function() as.wait_fd(a:getfd(), "r", 0.02) end)
        fds_after = as.dump():match("(%d+) fds?\n")
      end)
      assert.is_true(as.Timeout:is(e))
      assert.are.equal(("wait_fd: timed out waiting for fd %d to be readable"):format(a:getfd()), e:getMessage())
      assert.are.equal("0", fds_after)
      a:close(); b:close()
    end)

    it("shows the wait in dumps, and a cancelled waiter lets go of the fd", function()
      local a, b = pair()
      local text, after
      as.run(function()
        local f = as.fork(function() as.wait_fd(a:getfd(), "r") end)
        f:name("listener")
        as.yield()
        text = as.dump()
        f:cancel()
        as.yield()
        after = as.dump()
      end)
      assert.matches("run queue 0, 0 timers, 1 fd\n", text)
      assert.matches("fork #%d+ 'listener' %[waiting on fd %d+ %(read%) for ", text)
      assert.matches("0 fds\n", after)
      a:close(); b:close()
    end)

    it("lets one reader and one writer share an fd, but not two readers", function()
      local a, b = pair()
      local err
      as.run(function()
        local r = as.fork(function() as.wait_fd(a:getfd(), "r", 0.05) end)
        local w = as.fork(function() as.wait_fd(a:getfd(), "w", 1) end)
        as.yield()
        err = error_of(function() as.wait_fd(a:getfd(), "r") end)
        as.wait(w)
        as.pwait(r)
      end)
      assert.matches("^wait_fd: fd %d+ already has a fork waiting to read %(fork #%d+%)$", err)
      a:close(); b:close()
    end)

    describe("bad arguments", function()
      it("rejects bad fds, modes and timeouts", function()
        local errs = {}
        as.run(function()
          errs[1] = error_of(function() as.wait_fd("x", "r") end)
          errs[2] = error_of(function() as.wait_fd(-1, "r") end)
          errs[3] = error_of(function() as.wait_fd(0, "rw") end)
          errs[4] = error_of(function() as.wait_fd(0, "r", -2) end)
        end)
        assert.are.same({
          "bad argument #1 to 'wait_fd' (integer fd or object with getfd() expected, got string)",
          "bad argument #1 to 'wait_fd' (fd out of range)",
          "bad argument #2 to 'wait_fd' (invalid option 'rw')",
          "bad argument #3 to 'wait_fd' (timeout must be a non-negative number)",
        }, errs)
      end)

      it("refuses outside run()", function()
        assert.are.equal("wait_fd: not inside asyncstack.run()", error_of(function() as.wait_fd(0, "r") end))
      end)
    end)
  end)
end)
