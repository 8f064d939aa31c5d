local as = require "asyncstack"
local helper = require "spec.helper"
local error_of = helper.error_of

describe("asyncstack.Fork", function()
  describe("id()", function()
    it("is a positive integer, larger for later forks", function()
      as.run(function()
        local a, b = as.fork(function() end), as.fork(function() end)
        assert.is_true(math.type(a:id()) == "integer" and a:id() > 0)
        assert.is_true(b:id() > a:id())
      end)
    end)

    describe("bad arguments", function()
      it("rejects a non-fork self", function()
        local f
        as.run(function() f = as.fork(function() end) end)
        assert.are.equal("bad argument #1 to 'id' (asyncstack.Fork expected, got table; call it as f:id())",
                         error_of(function() f.id({}) end))
      end)
    end)
  end)

  describe("name()", function()
    it("is nil until set, then the set name; run's root is 'main'", function()
      as.run(function()
        local f = as.fork(function() end)
        assert.is_nil(f:name())
        assert.are.equal("worker", f:name("worker"))
        assert.are.equal("worker", f:name())
        assert.are.equal("main", as.current():name())
      end)
    end)

    describe("bad arguments", function()
      it("rejects a non-string name", function()
        local err
        as.run(function()
          local f = as.fork(function() end)
          err = error_of(function() f:name(42) end)
        end)
        assert.are.equal("bad argument #1 to 'name' (string expected, got number)", err)
      end)
    end)
  end)

  describe("status()", function()
    it("follows the fork through its life", function()
      local seen = {}
      as.run(function()
        local sleeper = as.fork(function() as.sleep(0.005) end)
        local failing = as.fork(function() error("x") end)
        local waiter = as.fork(function() as.wait(sleeper) end)
        seen.new = sleeper:status()
        seen.running = as.current():status()
        as.yield()
        seen.sleeping, seen.waiting = sleeper:status(), waiter:status()
        seen.failed = failing:status()
        as.pwait(failing)
        as.wait(waiter)
        seen.done = sleeper:status()
      end)
      assert.are.same({ new = "runnable", running = "running", sleeping = "sleeping",
                        waiting = "waiting", failed = "failed", done = "done" }, seen)
    end)

    it("is 'cancelled' for forks abandoned when run ends by an error", function()
      local f
      pcall(as.run, function()
        f = as.fork(function() as.sleep(1) end)
        as.yield()
        error("stop")
      end)
      assert.are.equal("cancelled", f:status())
    end)

    describe("bad arguments", function()
      it("rejects a non-fork self", function()
        local f
        as.run(function() f = as.fork(function() end) end)
        assert.are.equal("bad argument #1 to 'status' (asyncstack.Fork expected, got no value; call it as f:status())",
                         error_of(function() f.status() end))
      end)
    end)
  end)

  describe("__tostring", function()
    it("names the fork by id and name", function()
      as.run(function()
        local f = as.fork(function() end)
        assert.are.equal("fork #" .. f:id(), tostring(f))
        f:name("w")
        assert.are.equal("fork #" .. f:id() .. " 'w'", tostring(f))
      end)
    end)
  end)
end)
