local as = require "asyncstack"
local helper = require "spec.helper"
local error_of = helper.error_of

local function sleeper(seconds, value)
  return as.fork(function() as.sleep(seconds); return value end)
end

describe("asyncstack.combinators", function()
  describe("wait_all()", function()
    it("returns each fork's first result in list order, with n", function()
      local res = as.run(function()
        return as.wait_all({ sleeper(0.02, "a"), sleeper(0.01, "b"), sleeper(0, nil) })
      end)
      assert.are.equal("a", res[1])
      assert.are.equal("b", res[2])
      assert.is_nil(res[3])
      assert.are.equal(3, res.n)
    end)

    it("returns at once for forks that already ended, and for an empty list", function()
      as.run(function()
        local f = as.fork(function() return 1 end)
        as.yield()
        assert.are.same({ 1, n = 1 }, as.wait_all({ f }))
        assert.are.same({ n = 0 }, as.wait_all({}))
      end)
    end)

    it("fails fast with the failing fork's exception, marked in the trace", function()
      local e, slow
      as.run(function()
        slow = sleeper(1, "never")
        local bad = as.fork(function() as.sleep(0.01); error("broken") end)
        bad:name("bad")
        e = error_of(function() as.wait_all({ slow, bad }) end)
        slow:cancel()
      end)
      assert.is_true(as.ErrorException:is(e))
      assert.matches("broken$", e:getMessage())
      assert.matches("%[fork #%d+ 'bad' awaited by fork #%d+ 'main' in wait_all %(index 2%) at ", tostring(e))
      local marked
      for _, fr in ipairs(e:getTrace()) do
        if fr.via then marked = fr end
      end
      assert.are.equal("wait_all (index 2)", marked.via)
    end)

    it("names the fork and index when the failure came before the wait", function()
      local text
      as.run(function()
        local bad = as.fork(function() error("early") end)
        as.yield()
        local _, e = pcall(as.wait_all, { sleeper(0, 1), bad })
        text = tostring(e)
      end)
      assert.matches("\nrethrown by wait_all%(%) for fork #%d+ %(index 2%) at spec/combinator_spec.lua:%d+", text)
    end)

    it("raises as.Timeout naming the forks still running", function()
      local e, ids
      as.run(function()
        local a, b = sleeper(0, 1), sleeper(1, 2)
        ids = { a:id(), b:id() }
        e = error_of(function() as.wait_all({ a, b }, 0.02) end)
        b:cancel()
      end)
      assert.is_true(as.Timeout:is(e))
      assert.are.equal(("wait_all: timed out waiting for fork #%d (index 2, sleeping at spec/combinator_spec.lua:6)"):format(ids[2]), e:getMessage())
    end)

    it("waits for 10,000 forks", function()
      local n = as.run(function()
        local list = {}
        for i = 1, 10000 do list[i] = sleeper(0.001 * (i % 5), i) end
        local res = as.wait_all(list)
        for i = 1, 10000 do assert(res[i] == i) end
        return res.n
      end)
      assert.are.equal(10000, n)
    end)
  end)

  describe("wait_any()", function()
    it("returns the index and results of the first fork to end", function()
      local out = { as.run(function()
        return as.wait_any({ sleeper(0.05, "slow"), sleeper(0.01, "fast") })
      end) }
      assert.are.same({ 2, "fast" }, out)
    end)

    it("raises the first fork's failure, marked in the trace", function()
      local e = as.run(function()
        local quick = as.fork(function() as.sleep(0.01); error(as.Exception("first")) end)
        local _, err = pcall(as.wait_any, { sleeper(0.05, 1), quick })
        return err
      end)
      assert.are.equal("first", e:getMessage())
      assert.matches(" in wait_any %(index 2%) at ", tostring(e))
    end)

    it("raises as.Timeout when nothing ends in time", function()
      local e = as.run(function()
        local f = sleeper(1, 1)
        local err = error_of(function() as.wait_any({ f }, 0.01) end)
        f:cancel()
        return err
      end)
      assert.is_true(as.Timeout:is(e))
      assert.matches("^wait_any: timed out waiting for fork #%d+ %(index 1, sleeping at spec/combinator_spec%.lua:6%)$", e:getMessage())
    end)
  end)

  describe("dumps", function()
    it("show a combinator's wait", function()
      local text
      as.run(function()
        local list = { sleeper(0.05, 1), sleeper(0.05, 2) }
        local w = as.fork(function() as.wait_all(list) end)
        w:name("gatherer")
        as.yield()
        text = as.dump { fork = w:id() }
      end)
      assert.matches("^fork #%d+ 'gatherer' %[waiting on forks #%d+, #%d+ %(wait_all%) for ", text)
    end)
  end)

  describe("bad arguments", function()
    it("rejects a non-list, non-forks in the list and bad timeouts", function()
      local errs = {}
      as.run(function()
        errs[1] = error_of(function() as.wait_all("x") end)
        errs[2] = error_of(function() as.wait_all({ as.current(), 3 }) end)
        errs[3] = error_of(function() as.wait_any({}) end)
        errs[4] = error_of(function() as.wait_all({}, -1) end)
        errs[5] = error_of(function() as.wait_all({ as.current() }) end)
      end)
      assert.are.same({
        "bad argument #1 to 'wait_all' (table expected, got string)",
        "bad argument #1 to 'wait_all' (list of forks expected, item 2 is number)",
        "bad argument #1 to 'wait_any' (list of forks is empty)",
        "bad argument #2 to 'wait_all' (timeout must be a non-negative number)",
      }, { errs[1], errs[2], errs[3], errs[4] })
      assert.matches("^wait_all: fork #%d+ cannot wait for itself %(index 1%)$", errs[5])
    end)

    it("refuses outside run()", function()
      assert.are.equal("wait_all: not inside asyncstack.run()", error_of(function() as.wait_all({}) end))
    end)
  end)
end)

describe("asyncstack.cancel", function()
  describe("cancel()", function()
    it("raises as.Cancelled at the await point and runs <close> and pcall cleanups", function()
      local log = {}
      local f
      as.run(function()
        f = as.fork(function()
          local guard <close> = setmetatable({}, { __close = function() log[#log + 1] = "closed" end })
          local ok, e = pcall(as.sleep, 10)
          log[#log + 1] = as.Cancelled:is(e) and "caught Cancelled" or tostring(e)
          error(e)                              -- and let it end the fork
        end)
        as.yield()
        assert.is_true(f:cancel())
        local ok, e = as.pwait(f)
        log[#log + 1] = (not ok and as.Cancelled:is(e)) and "waiter saw Cancelled" or "?"
      end)
      assert.are.same({ "caught Cancelled", "closed", "waiter saw Cancelled" }, log)
      assert.are.equal("cancelled", f:status())
    end)

    it("stops a fork before it starts", function()
      local ran, status = false, nil
      as.run(function()
        local f = as.fork(function() ran = true end)
        f:cancel()
        as.yield()
        status = f:status()
        local ok, e = as.pwait(f)
        assert(not ok and as.Cancelled:is(e))
      end)
      assert.is_false(ran)
      assert.are.equal("cancelled", status)
    end)

    it("reaches a fork blocked inside nested coroutines", function()
      local closed = false
      as.run(function()
        local f = as.fork(function()
          local gen = coroutine.wrap(function()
            local guard <close> = setmetatable({}, { __close = function() closed = true end })
            as.sleep(10)
          end)
          gen()
        end)
        as.yield()
        f:cancel()
        assert.is_false(as.pwait(f))
      end)
      assert.is_true(closed)
    end)

    it("returns false and changes nothing for a finished fork", function()
      as.run(function()
        local f = as.fork(function() return "done" end)
        as.yield()
        assert.is_false(f:cancel())
        assert.are.equal("done", f:status())
        assert.are.equal("done", as.wait(f))
      end)
    end)

    it("reaches the running fork at its next blocking call, once", function()
      local first, second
      as.run(function()
        local me = as.current()
        local f = as.fork(function() return "other" end)
        assert.is_true(me:cancel())
        first = error_of(function() as.yield() end)
        second = as.wait(f)                   -- caught: the fork goes on
      end)
      assert.is_true(as.Cancelled:is(first))
      assert.are.equal("other", second)
    end)

    it("is not reported as an unhandled failure", function()
      local reports = 0
      as.on_unhandled(function() reports = reports + 1 end)
      as.run(function()
        local f = as.fork(function() as.sleep(10) end)
        as.yield()
        f:cancel()
      end)
      as.on_unhandled(nil)
      assert.are.equal(0, reports)
    end)

    describe("bad arguments", function()
      it("rejects a non-fork self", function()
        local f
        as.run(function() f = as.fork(function() end) end)
        assert.are.equal("bad argument #1 to 'cancel' (asyncstack.Fork expected, got number; call it as f:cancel())",
                         error_of(function() f.cancel(1) end))
      end)
    end)
  end)
end)
