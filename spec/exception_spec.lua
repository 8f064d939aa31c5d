local as = require "asyncstack"
local helper = require "spec.helper"
local error_of = helper.error_of

local function lines(text)
  local out = {}
  for l in (text .. "\n"):gmatch("(.-)\n") do out[#out + 1] = l end
  return out
end

describe("asyncstack.exception", function()
  describe("Exception()", function()
    it("keeps message, code and previous", function()
      local prev = as.Exception("first")
      local e = as.Exception("second", 42, prev)
      assert.are.equal("second", e:getMessage())
      assert.are.equal(42, e:getCode())
      assert.are.equal(prev, e:getPrevious())
      assert.are.equal("", as.Exception():getMessage())
      assert.are.equal(0, as.Exception("x"):getCode())
      assert.is_nil(as.Exception("x"):getPrevious())
    end)

    it("records where it was created, inside and outside forks", function()
      local line = debug.getinfo(1, "l").currentline + 1
      local e = as.Exception("here")
      assert.are.equal("spec/exception_spec.lua", e:getFile())
      assert.are.equal(line, e:getLine())
      local f, l
      as.run(function()
        l = debug.getinfo(1, "l").currentline + 1
        f = as.Exception("in a fork")
      end)
      assert.are.equal(l, f:getLine())
    end)

    it("captures the async chain, including the forks waiting", function()
      local e
      as.run(function()
        local worker = as.fork(function() e = as.Exception("deep") end)
        worker:name("worker")
        as.wait(worker)
      end)
      local trace = e:getTrace()
      assert.are.equal("worker", trace[1].fork_name)
      assert.is_true(trace[1].root)
      assert.are.equal("awaited", trace[2].boundary)
      assert.are.equal("main", trace[2].fork_name)
      for _, key in ipairs({ "file", "line", "what", "func", "fork" }) do
        assert.is_not_nil(trace[1][key], key)
      end
    end)

    it("gives getTraceAsString in PHP's format, exactly", function()
      local out, status = helper.run_child(io.open("spec/fixtures/known_trace.lua"):read("a"))
      assert.are.equal(0, status, out)
      local php = out:match("^(.-)\n%-%-\n")
      -- the child runs the fixture from a temporary file: normalise its name
      php = php:gsub("/tmp/lua_%w+", "known_trace.lua")
      assert.are.equal(table.concat({
        "#0 known_trace.lua(4): inner()",
        "#1 known_trace.lua(8): outer()",
        "#2 known_trace.lua(12): {closure}()",
        "#3 known_trace.lua(11): {main chunk}",
        "#4 [internal function]: {unknown}()",
        "#5 {main}",
      }, "\n"), php)
    end)

    it("prints class, message, location and the trace with tostring", function()
      local e
      as.run(function() e = as.Exception("printed") end)
      local l = lines(tostring(e))
      assert.matches("^asyncstack.Exception: printed in spec/exception_spec.lua:%d+$", l[1])
      assert.are.equal("stack traceback:", l[2])
      assert.matches("%(root of fork #%d+ 'main'%)$", l[3])
    end)

    it("prints the previous exceptions after the current one", function()
      local text = tostring(as.Exception("outer", 0, as.Exception("inner")))
      assert.matches("^asyncstack.Exception: outer in ", text)
      assert.matches("\nprevious exception:\nasyncstack.Exception: inner in ", text)
    end)

    it("builds no frame tables until the trace is read", function()
      local e = as.Exception("lazy")
      assert.is_nil(rawget(e, "_frames"))
      e:getTrace()
      assert.is_table(rawget(e, "_frames"))
    end)

    describe("bad arguments", function()
      it("rejects a bad message, code or previous", function()
        assert.are.equal("bad argument #1 to 'Exception' (string expected, got table)",
                         error_of(function() as.Exception({}) end))
        assert.are.equal("bad argument #2 to 'Exception' (integer expected, got string)",
                         error_of(function() as.Exception("m", "x") end))
        assert.are.equal("bad argument #2 to 'Exception' (integer expected, got number)",
                         error_of(function() as.Exception("m", 1.5) end))
        assert.are.equal("bad argument #3 to 'Exception' (asyncstack.Exception expected, got string)",
                         error_of(function() as.Exception("m", 1, "p") end))
        assert.are.equal("bad argument #1 to 'Timeout' (string expected, got boolean)",
                         error_of(function() as.Timeout(true) end))
      end)
    end)
  end)

  describe("extend() and is()", function()
    it("makes subclasses whose instances belong to every ancestor", function()
      local IOError = as.Exception:extend("IOError")
      local ReadError = IOError:extend("ReadError")
      local e = ReadError("disk gone", 5)
      assert.is_true(ReadError:is(e))
      assert.is_true(IOError:is(e))
      assert.is_true(as.Exception:is(e))
      assert.is_false(as.Timeout:is(e))
      assert.is_false(ReadError:is(IOError("x")))
      assert.matches("^ReadError: disk gone in ", tostring(e))
      assert.are.equal("disk gone", e:getMessage())
      assert.are.equal("bad argument #1 to 'ReadError' (string expected, got table)",
                       error_of(function() ReadError({}) end))
    end)

    it("knows the built-in classes", function()
      for _, class in ipairs({ as.ErrorException, as.Timeout, as.Cancelled, as.Deadlock }) do
        assert.is_true(as.Exception:is(class("x")))
      end
      assert.matches("^asyncstack.Timeout: late in ", tostring(as.Timeout("late")))
    end)

    it("is not fooled by hostile values", function()
      local liar = setmetatable({}, {
        __index = function() error("no!") end,
        __metatable = as.Exception,
      })
      assert.is_false(as.Exception:is(liar))
      assert.is_false(as.Exception:is(nil))
      assert.is_false(as.Exception:is("Exception"))
    end)

    describe("bad arguments", function()
      it("rejects a bad class name", function()
        -- called with ':' the name is argument #1, as C functions count it
        assert.are.equal("bad argument #1 to 'extend' (non-empty string expected, got number)",
                         error_of(function() as.Exception:extend(1) end))
        assert.are.equal("bad argument #1 to 'extend' (non-empty string expected, got empty string)",
                         error_of(function() as.Exception:extend("") end))
        assert.are.equal("bad argument #2 to 'extend' (non-empty string expected, got number)",
                         error_of(function() as.Exception.extend(as.Exception, 1) end))
        assert.are.equal("bad argument #1 to 'extend' (exception class expected)",
                         error_of(function() as.Exception.extend({}, "X") end))
      end)
    end)
  end)

  describe("plain errors in forks", function()
    local function failure_of(body)
      local ok, e = as.run(function() return as.pwait(as.fork(body)) end)
      assert.is_false(ok)
      return e
    end

    it("turns error('x') into an ErrorException raised at the error call", function()
      local line
      local e = failure_of(function()
        line = debug.getinfo(1, "l").currentline + 1
        error("x")
      end)
      assert.is_true(as.ErrorException:is(e))
      assert.matches("^spec/exception_spec.lua:%d+: x$", e:getMessage())
      assert.matches("^spec/exception_spec.lua:%d+: x$", e:getOriginal())
      assert.are.equal(line, e:getLine())
      assert.are.equal("error", e:getTrace()[1]["function"])
    end)

    it("keeps a table error value untouched", function()
      local value = setmetatable({ code = 1 }, { __tostring = function() return "custom" end })
      local e = failure_of(function() error(value) end)
      assert.are.equal(value, e:getOriginal())
      assert.are.equal("custom", e:getMessage())
    end)

    it("describes values that have no __tostring like lua.c does", function()
      assert.are.equal("(error object is a table value)", failure_of(function() error({}) end):getMessage())
      assert.are.equal("(error object is a nil value)", failure_of(function() error() end):getMessage())
      assert.are.equal("42", failure_of(function() error(42) end):getMessage())
    end)

    it("turns runtime errors into ErrorExceptions at the faulting line", function()
      local line
      local e = failure_of(function()
        local t
        line = debug.getinfo(1, "l").currentline + 1
        return t.field
      end)
      assert.matches("attempt to index a nil value %(local 't'%)$", e:getMessage())
      assert.are.equal(line, e:getLine())
    end)

    it("passes an Exception raised with error() through as the same object", function()
      local mine = as.Exception("mine")
      assert.are.equal(mine, failure_of(function() error(mine) end))
    end)

    it("keeps the frames of a generator the error came out of", function()
      local e = failure_of(function()
        local gen = coroutine.wrap(function()
          as.sleep(0)
          error("in the generator")
        end)
        gen()
      end)
      local frames = e:getTrace()
      assert.are.equal("error", frames[1]["function"])
      assert.are.equal("coroutine", frames[3].boundary)
    end)
  end)

  describe("wait(), pwait() and pcall()", function()
    it("re-raise the same exception object, catchable by class", function()
      local Mine = as.Exception:extend("Mine")
      local thrown, caught_wait, caught_pwait
      as.run(function()
        local f = as.fork(function()
          thrown = Mine("m")
          error(thrown)
        end)
        local ok
        ok, caught_wait = pcall(as.wait, f)
        assert(not ok)
        ok, caught_pwait = as.pwait(f)
        assert(not ok)
      end)
      assert.are.equal(thrown, caught_wait)
      assert.are.equal(thrown, caught_pwait)
      assert.is_true(Mine:is(caught_wait))
    end)

    it("add the waiter's site when it was not waiting at the throw", function()
      local text
      as.run(function()
        local f = as.fork(function() error(as.Exception("late")) end)
        as.yield()                        -- f fails before anybody waits
        local _, e = pcall(as.wait, f)
        text = tostring(e)
      end)
      assert.matches("\nrethrown by wait%(%) at spec/exception_spec.lua:%d+ in fork #%d+ 'main'\nstack traceback:\n", text)
    end)

    it("as.pcall returns true and the results, or false and an exception of the raise site", function()
      assert.are.same({ true, 1, 2 }, { as.pcall(function(a) return a, 2 end, 1) })
      local line = debug.getinfo(1, "l").currentline + 1
      local ok, e = as.pcall(function() error("boom") end)
      assert.is_false(ok)
      assert.is_true(as.ErrorException:is(e))
      assert.are.equal(line, e:getLine())
      local mine = as.Exception("kept")
      assert.are.same({ false, mine }, { as.pcall(error, mine) })
    end)

    it("as.pcall works across scheduler suspensions", function()
      local ok, v = as.run(function()
        return as.pcall(function() as.sleep(0.001); return "slept" end)
      end)
      assert.is_true(ok)
      assert.are.equal("slept", v)
    end)

    describe("bad arguments", function()
      it("as.pcall needs a value to call", function()
        assert.are.equal("bad argument #1 to 'pcall' (value expected)",
                         error_of(function() as.pcall() end))
      end)
    end)
  end)

  describe("on_unhandled()", function()
    it("reports a failed fork nobody waited for once, with its trace, to stderr #child", function()
      local out = helper.run_child([[
        local as = require "asyncstack"
        as.run(function()
          local f = as.fork(function() error("lost") end)
          f:name("lonely")
          local g = as.fork(function() error("seen") end)
          as.pwait(g)
        end)
      ]])
      local _, count = out:gsub("failed and nobody waited for it", "")
      assert.are.equal(1, count)
      assert.matches("asyncstack: fork #%d+ 'lonely' failed and nobody waited for it:\nasyncstack.ErrorException: [^\n]*lost", out)
      assert.matches("%(root of fork #%d+ 'lonely'%)", out)
      assert.is_nil(out:find("seen", 1, true))
    end)

    it("hands the report to a handler instead, also for collected forks", function()
      local got = {}
      as.on_unhandled(function(e, info) got[#got + 1] = { e:getMessage(), info.id } end)
      as.run(function()
        do as.fork(function() error({}) end) end
        as.yield()
        collectgarbage()
        collectgarbage()
        as.yield()
        assert.are.equal(1, #got)   -- reported by the collector, before run ends
      end)
      as.on_unhandled(nil)
      assert.are.equal(1, #got)
      assert.are.equal("(error object is a table value)", got[1][1])
    end)

    it("survives a handler that fails", function()
      local out = helper.run_child([[
        local as = require "asyncstack"
        as.on_unhandled(function() error("handler broke") end)
        as.run(function() as.fork(function() error("x") end) end)
        print("still alive")
      ]])
      assert.matches("the on_unhandled handler failed: .*handler broke", out)
      assert.matches("still alive", out)
    end)

    describe("bad arguments", function()
      it("rejects a non-function", function()
        assert.are.equal("bad argument #1 to 'on_unhandled' (function or nil expected, got number)",
                         error_of(function() as.on_unhandled(3) end))
      end)
    end)
  end)

  describe("escaping run()", function()
    it("reaches lua5.4's own error printer with its trace #child", function()
      local out, status = helper.run_child([[
        local as = require "asyncstack"
        as.run(function()
          local f = as.fork(function() error("escaped") end)
          f:name("leaker")
          as.wait(f)
        end)
      ]])
      assert.are_not.equal(0, status)
      assert.matches("asyncstack.ErrorException: [^\n]*escaped", out)
      assert.matches("%(root of fork #%d+ 'leaker'%)", out)
    end)
  end)

  describe("hostile values", function()
    local function check(value)
      local ok, e = as.run(function() return as.pwait(as.fork(function() error(value) end)) end)
      assert.is_false(ok)
      assert.are.equal(value, e:getOriginal())
      assert.is_string(tostring(e))
      assert.is_string(e:getTraceAsString())
      return e
    end

    -- error(value, 0): no position prefix, so the message is the value itself
    local function check_raw(value)
      local ok, e = as.run(function() return as.pwait(as.fork(function() error(value, 0) end)) end)
      assert.is_false(ok)
      assert.are.equal(value, e:getOriginal())
      return e
    end

    it("survive a __tostring that raises, yields or returns a non-string", function()
      check(setmetatable({}, { __tostring = function() error("bad tostring") end }))
      check(setmetatable({}, { __tostring = function() coroutine.yield() end }))
      check(setmetatable({}, { __tostring = function() return {} end }))
      check(setmetatable({}, { __tostring = function() as.sleep(1) end }))
    end)

    it("survive __index and __name traps", function()
      local e = check(setmetatable({}, { __index = function() error("trap") end, __name = {} }))
      assert.are.equal("(error object is a table value)", e:getMessage())
      e = check(setmetatable({}, { __name = "MyType" }))
      assert.are.equal("(error object is a MyType value)", e:getMessage())
    end)

    it("bound an enormous message in tostring but keep it whole", function()
      local big = string.rep("x", 1000000)
      local e = check_raw(big)
      assert.are.equal(big, e:getMessage())
      assert.is_true(#tostring(e) < 10000)
      assert.matches("%.%.%. %(995904 more bytes%)", tostring(e))
    end)

    it("bound a very deep stack with an 'N more frames omitted' line", function()
      local function deep(n) if n == 0 then error("bottom") end; return 1 + deep(n - 1) end
      local ok, e = as.run(function() return as.pwait(as.fork(deep, 5000)) end)
      assert.is_false(ok)
      assert.are.equal(256, #e:getTrace())
      assert.matches("\n\t%.%.%.\t%(%d+ more frames omitted%)", tostring(e))
      local omitted = tonumber(tostring(e):match("%((%d+) more frames omitted%)"))
      assert.is_true(omitted >= 5000 - 256)
    end)

    it("survive a stack overflow inside a fork", function()
      local function forever(n) return 1 + forever(n + 1) end
      local ok, e = as.run(function() return as.pwait(as.fork(forever, 1)) end)
      assert.is_false(ok)
      assert.matches("stack overflow", e:getMessage())
      assert.is_string(tostring(e))
    end)
  end)
end)
