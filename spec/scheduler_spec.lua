local as = require "asyncstack"
local helper = require "spec.helper"
local error_of = helper.error_of

describe("asyncstack.scheduler", function()
  describe("run()", function()
    it("returns the root function's results and passes it the arguments", function()
      local a, b, c = as.run(function(x, y) return y, x, nil end, 1, 2)
      assert.are.same({ 2, 1, nil }, { a, b, c })
    end)

    it("re-raises the root fork's error as an ErrorException with the raise site's trace", function()
      local ok, err = pcall(as.run, function() error("boom") end)
      assert.is_false(ok)
      assert.is_true(as.ErrorException:is(err))
      assert.matches("^spec/scheduler_spec.lua:%d+: boom$", err:getMessage())
      assert.matches("\nstack traceback:\n\t%[C%]: in function 'error'\n", tostring(err))
      assert.matches("%(root of fork #%d+ 'main'%)", tostring(err))
    end)

    it("keeps a non-string error value untouched behind the exception", function()
      local value = { code = 7 }
      local ok, err = pcall(as.run, function() error(value) end)
      assert.is_false(ok)
      assert.are.equal(value, err:getOriginal())
    end)

    it("keeps running until every fork has ended", function()
      local log = {}
      as.run(function()
        as.fork(function() as.sleep(0.02); log[#log + 1] = "late" end)
        log[#log + 1] = "root done"
      end)
      assert.are.same({ "root done", "late" }, log)
    end)

    it("raises as.Deadlock naming every blocked fork when none can progress", function()
      local ok, e = pcall(as.run, function()
        local a
        local b = as.fork(function() as.wait(a) end)
        a = as.fork(function() as.sleep(math.huge) end)
        as.wait(b)
      end)
      assert.is_false(ok)
      assert.is_true(as.Deadlock:is(e))
      local err = e:getMessage()
      assert.matches("^run: deadlock: 3 forks are blocked and none can make progress:", err)
      assert.matches("\nfork #%d+ 'main' %[waiting on fork #%d+ for %d+ms%]", err)
      assert.matches("\nfork #%d+ %[sleeping %d+ms, forever%]", err)
      assert.matches("\n\t#0 spec/scheduler_spec.lua:%d+ in ", err)
    end)

    it("closes the forks it abandons, running their to-be-closed variables", function()
      local closed = false
      pcall(as.run, function()
        as.fork(function()
          local guard <close> = setmetatable({}, { __close = function() closed = true end })
          as.sleep(10)
        end)
        as.yield()
        error("root fails")
      end)
      assert.is_true(closed)
    end)

    it("installs the coroutine bridge only for its own duration", function()
      local resume = coroutine.resume
      local inside
      as.run(function() inside = coroutine.resume end)
      assert.are_not.equal(resume, inside)
      assert.are.equal(resume, coroutine.resume)
    end)

    it("completes 100,000 forks sleeping a random 0-10 ms with the right results", function()
      local N = 100000
      local sum = as.run(function()
        local forks = {}
        for i = 1, N do
          forks[i] = as.fork(function(k)
            as.sleep(math.random() * 0.01)
            return k * 2
          end, i)
        end
        local total = 0
        for i = 1, N do
          local v = as.wait(forks[i])
          assert(v == i * 2)
          total = total + v
        end
        return total
      end)
      assert.are.equal(N * (N + 1), sum)
    end)

    it("runs a chain of 10,000 forks waiting on each other without nesting", function()
      local function chain(n)
        if n == 0 then return 0 end
        return 1 + as.wait(as.fork(chain, n - 1))
      end
      assert.are.equal(10000, as.run(chain, 10000))
    end)

    describe("bad arguments", function()
      it("rejects a non-function", function()
        assert.are.equal("bad argument #1 to 'run' (function expected, got no value)",
                         error_of(function() as.run() end))
        assert.are.equal("bad argument #1 to 'run' (function expected, got number)",
                         error_of(function() as.run(1) end))
      end)

      it("refuses to nest", function()
        local err
        as.run(function() err = error_of(function() as.run(print) end) end)
        assert.are.equal("run: already inside asyncstack.run() (runs do not nest)", err)
      end)
    end)
  end)

  describe("fork()", function()
    it("runs forks first-in first-out when the current fork suspends", function()
      local order = {}
      as.run(function()
        for i = 1, 3 do as.fork(function() order[#order + 1] = i end) end
        order[#order + 1] = "root"
        as.yield()
        order[#order + 1] = "root again"
      end)
      assert.are.same({ "root", 1, 2, 3, "root again" }, order)
    end)

    it("passes the extra arguments to the function", function()
      assert.are.same({ 3, "x" }, { as.run(function()
        return as.wait(as.fork(function(a, b) return a + 1, b end, 2, "x"))
      end) })
    end)

    it("gives ids that never repeat", function()
      local seen, ids = {}, {}
      for _ = 1, 2 do
        as.run(function()
          for _ = 1, 5 do ids[#ids + 1] = as.fork(function() end):id() end
        end)
      end
      for _, id in ipairs(ids) do
        assert.is_nil(seen[id])
        seen[id] = true
      end
    end)

    describe("bad arguments", function()
      it("rejects a non-function", function()
        local err
        as.run(function() err = error_of(function() as.fork("f") end) end)
        assert.are.equal("bad argument #1 to 'fork' (function expected, got string)", err)
      end)

      it("refuses outside run()", function()
        assert.are.equal("fork: not inside asyncstack.run()",
                         error_of(function() as.fork(print) end))
      end)
    end)
  end)

  describe("wait()", function()
    it("returns every result of the fork", function()
      assert.are.same({ 1, nil, 3 }, { as.run(function()
        return as.wait(as.fork(function() as.sleep(0.001); return 1, nil, 3 end))
      end) })
    end)

    it("returns at once for a fork that already ended, as often as asked", function()
      as.run(function()
        local f = as.fork(function() return "r" end)
        as.yield()
        assert.are.equal("done", f:status())
        assert.are.equal("r", as.wait(f))
        assert.are.equal("r", as.wait(f))
      end)
    end)

    it("wakes every waiter of a fork", function()
      local got = {}
      as.run(function()
        local f = as.fork(function() as.sleep(0.005); return "v" end)
        for i = 1, 3 do as.fork(function() got[i] = as.wait(f) end) end
      end)
      assert.are.same({ "v", "v", "v" }, got)
    end)

    it("re-raises the fork's error with the trace of the raise site", function()
      local err
      as.run(function()
        local f = as.fork(function() local x = nil; return x.field end)
        err = error_of(function() as.wait(f) end)
      end)
      assert.is_true(as.ErrorException:is(err))
      assert.matches("attempt to index a nil value", err:getMessage(), 1, true)
      assert.matches("stack traceback:", tostring(err), 1, true)
    end)

    it("raises a timeout error when the fork does not end in time", function()
      local err
      as.run(function()
        local f = as.fork(function() as.sleep(1) end)
        err = error_of(function() as.wait(f, 0.01) end)
        assert.are.equal("sleeping", f:status())
      end)
      assert.is_true(as.Timeout:is(err))
      assert.matches("^wait: timed out waiting for fork #%d+ %(sleeping at spec/scheduler_spec%.lua:204%)$", err:getMessage())
    end)

    describe("bad arguments", function()
      it("rejects a non-fork", function()
        assert.are.equal("bad argument #1 to 'wait' (asyncstack.Fork expected, got no value)",
                         error_of(function() as.wait() end))
        assert.are.equal("bad argument #1 to 'wait' (asyncstack.Fork expected, got nil)",
                         error_of(function() as.wait(nil, 1) end))
      end)

      it("rejects a negative or NaN timeout", function()
        as.run(function()
          local f = as.fork(function() end)
          assert.are.equal("bad argument #2 to 'wait' (timeout must be a non-negative number)",
                           error_of(function() as.wait(f, -1) end))
          assert.are.equal("bad argument #2 to 'wait' (timeout must be a non-negative number)",
                           error_of(function() as.wait(f, 0 / 0) end))
          assert.are.equal("bad argument #2 to 'wait' (number expected, got string)",
                           error_of(function() as.wait(f, "x") end))
        end)
      end)

      it("refuses a fork waiting for itself", function()
        local err
        as.run(function()
          local me = as.current()
          err = error_of(function() as.wait(me) end)
        end)
        assert.matches("^wait: fork #%d+ cannot wait for itself$", err)
      end)

      it("refuses a wait that would close a cycle", function()
        local err
        as.run(function()
          local root = as.current()
          local child = as.fork(function()
            err = error_of(function() as.wait(root) end)
          end)
          as.wait(child)
        end)
        assert.matches("^wait: waiting for fork #%d+ would close a wait cycle: fork #%d+ %-> fork #%d+ %-> fork #%d+$", err)
      end)

      it("refuses outside run() and for forks of another run", function()
        local old
        as.run(function() old = as.fork(function() end) end)
        assert.are.equal("wait: not inside asyncstack.run()", error_of(function() as.wait(old) end))
        local err
        as.run(function() err = error_of(function() as.wait(old) end) end)
        assert.matches("^wait: fork #%d+ belongs to another asyncstack.run%(%)$", err)
      end)
    end)
  end)

  describe("pwait()", function()
    it("returns true and the results on success", function()
      assert.are.same({ true, 1, 2 }, { as.run(function()
        return as.pwait(as.fork(function() return 1, 2 end))
      end) })
    end)

    it("returns false and the error on failure", function()
      local value = {}
      local ok, err = as.run(function()
        return as.pwait(as.fork(function() error(value) end))
      end)
      assert.is_false(ok)
      assert.are.equal(value, err:getOriginal())
    end)

    it("returns false and a timeout error instead of raising", function()
      local ok, err = as.run(function()
        return as.pwait(as.fork(function() as.sleep(1) end), 0)
      end)
      assert.is_false(ok)
      assert.is_true(as.Timeout:is(err))
      assert.matches("^pwait: timed out waiting for fork #%d+ %(sleeping at spec/scheduler_spec%.lua:282%)$", err:getMessage())
    end)

    describe("bad arguments", function()
      it("rejects a non-fork", function()
        assert.are.equal("bad argument #1 to 'pwait' (asyncstack.Fork expected, got table)",
                         error_of(function() as.pwait({}) end))
      end)
    end)
  end)

  describe("sleep()", function()
    it("suspends the fork for at least the given time", function()
      local elapsed = as.run(function()
        local t0 = as.now()
        as.sleep(0.02)
        return as.now() - t0
      end)
      assert.is_true(elapsed >= 0.02)
    end)

    it("wakes sleepers in deadline order", function()
      local order = {}
      as.run(function()
        for _, d in ipairs({ 0.03, 0.01, 0.02, 0 }) do
          as.fork(function() as.sleep(d); order[#order + 1] = d end)
        end
      end)
      assert.are.same({ 0, 0.01, 0.02, 0.03 }, order)
    end)

    it("wakes hundreds of timers in deadline order, with timers taken out of the middle",
       function()
      -- Many levels of the timer heap: sleeps and waits with timeouts, some
      -- cancelled and some waits ending early (both take a timer out from
      -- wherever it is). Each fork's deadline is read from as.tasks() once
      -- all are armed, so the expected order does not depend on timing.
      local woke, deadline_of, expected = {}, {}, {}
      as.run(function()
        local forks, cancelled, target = {}, {}, as.fork(function() as.sleep(0.005) end)
        for i = 1, 300 do
          local d = ((i * 37) % 23) * 0.001      -- 0 .. 22 ms, many equal
          local f
          if i % 5 == 0 then
            f = as.fork(function() as.pwait(target, d + 0.03); woke[#woke + 1] = i end)
          else
            f = as.fork(function() as.sleep(d); woke[#woke + 1] = i end)
          end
          forks[i] = f
        end
        as.yield()                                   -- every fork arms its timer
        for _, t in ipairs(as.tasks({ backtrace = false })) do deadline_of[t.id] = t.deadline end
        for i = 3, 300, 7 do
          if i % 5 ~= 0 then forks[i]:cancel(); cancelled[i] = true end
        end
        for i, f in ipairs(forks) do
          assert.is_number(deadline_of[f:id()])
          -- the waits end when `target` does (5 ms): their timers go early
          if not cancelled[i] and i % 5 ~= 0 then expected[#expected + 1] = i end
        end
        table.sort(expected, function(a, b)
          local da, db = deadline_of[forks[a]:id()], deadline_of[forks[b]:id()]
          if da ~= db then return da < db end
          return a < b                               -- armed in fork order
        end)
        for _, f in ipairs(forks) do as.pwait(f) end
      end)
      local sleepers = {}
      for _, i in ipairs(woke) do if i % 5 ~= 0 then sleepers[#sleepers + 1] = i end end
      assert.are.same(expected, sleepers)
      local seen, ncancelled = {}, 0
      for i = 3, 300, 7 do if i % 5 ~= 0 then ncancelled = ncancelled + 1 end end
      for _, i in ipairs(woke) do
        assert.is_nil(seen[i])                       -- nobody woke twice
        seen[i] = true
      end
      assert.are.equal(300 - ncancelled, #woke)      -- every fork not cancelled woke
    end)

    describe("bad arguments", function()
      it("rejects non-numbers, negative numbers and NaN", function()
        assert.are.equal("bad argument #1 to 'sleep' (number expected, got no value)",
                         error_of(function() as.sleep() end))
        assert.are.equal("bad argument #1 to 'sleep' (non-negative number expected)",
                         error_of(function() as.sleep(-0.5) end))
        assert.are.equal("bad argument #1 to 'sleep' (non-negative number expected)",
                         error_of(function() as.sleep(0 / 0) end))
      end)

      it("refuses outside run()", function()
        assert.are.equal("sleep: not inside asyncstack.run()", error_of(function() as.sleep(0) end))
      end)

      it("refuses where the fork cannot yield", function()
        local err
        as.run(function()
          err = error_of(function()
            table.sort({ 3, 2, 1 }, function(a, b) as.sleep(0); return a < b end)
          end)
        end)
        assert.matches("^sleep: cannot suspend here: a C call that cannot yield", err)
      end)
    end)
  end)

  describe("yield()", function()
    it("lets the other runnable forks run, then continues", function()
      local log = {}
      as.run(function()
        as.fork(function() log[#log + 1] = "other" end)
        log[#log + 1] = "before"
        as.yield()
        log[#log + 1] = "after"
      end)
      assert.are.same({ "before", "other", "after" }, log)
    end)

    it("treats a plain coroutine.yield at a fork's root the same way", function()
      local log = {}
      as.run(function()
        as.fork(function() log[#log + 1] = "other" end)
        coroutine.yield("ignored")
        log[#log + 1] = "after"
      end)
      assert.are.same({ "other", "after" }, log)
    end)

    describe("bad arguments", function()
      it("refuses outside run()", function()
        assert.are.equal("yield: not inside asyncstack.run()", error_of(function() as.yield() end))
      end)
    end)
  end)

  describe("now()", function()
    it("is monotonic seconds", function()
      local a = as.now()
      local b = as.now()
      assert.is_number(a)
      assert.is_true(b >= a)
    end)

    describe("bad arguments", function()
      it("ignores extra arguments like Lua's own clock functions", function()
        assert.is_number(as.now("ignored"))
      end)
    end)
  end)

  describe("current()", function()
    it("is the running fork inside run() and nil outside", function()
      assert.is_nil(as.current())
      local root, child
      as.run(function()
        root = as.current()
        child = as.wait(as.fork(function() return as.current() end))
      end)
      assert.are.equal("fork #" .. root:id() .. " 'main'", tostring(root))
      assert.are_not.equal(root, child)
    end)

    describe("bad arguments", function()
      it("ignores extra arguments", function()
        assert.is_nil(as.current(1, 2))
      end)
    end)
  end)
end)
