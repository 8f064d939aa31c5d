local as = require "asyncstack"
local helper = require "spec.helper"
local error_of = helper.error_of

local original = {
  resume = coroutine.resume, wrap = coroutine.wrap, close = coroutine.close,
  traceback = debug.traceback,
}

-- The coroutine library as the bridge installs it (taken while installed).
local function bridged_lib()
  as.install()
  local lib = {}
  for k, v in pairs(coroutine) do lib[k] = v end
  lib.traceback = debug.traceback
  as.uninstall()
  assert(lib.yield ~= coroutine.yield, "the bridge replaces coroutine.yield")
  return lib
end

local function original_lib()
  local lib = {}
  for k, v in pairs(coroutine) do lib[k] = v end
  lib.traceback = debug.traceback
  return lib
end

-- Outcome of a scenario, with threads replaced by a marker so both runs
-- compare. The bridged side runs installed, as users run it (Lua's traceback
-- names C functions by finding them in the loaded modules).
local function outcome(scenario, lib, installed)
  if installed then as.install() end
  local results = table.pack(pcall(scenario, lib))
  if installed then as.uninstall() end
  for i = 1, results.n do
    if type(results[i]) == "thread" then results[i] = "<thread>" end
  end
  return results
end

local scenarios = {
  ["resume passes values both ways and reports a dead coroutine"] = function(co)
    local c = co.create(function(a, b) local x = co.yield(a + b); return x * 2, "end" end)
    local r1 = table.pack(co.resume(c, 1, 2))
    local r2 = table.pack(co.resume(c, 10))
    local r3 = table.pack(co.resume(c))
    return r1, r2, r3, co.status(c)
  end,
  ["resume of the running coroutine fails"] = function(co)
    local c
    c = co.create(function() return co.resume(c) end)
    return co.resume(c)
  end,
  ["resume of a normal coroutine fails"] = function(co)
    local outer
    outer = co.create(function()
      local inner = co.create(function() return co.status(outer), co.resume(outer) end)
      return co.resume(inner)
    end)
    return co.resume(outer)
  end,
  ["resume returns a string error with its position"] = function(co)
    return co.resume(co.create(function() error("boom") end))
  end,
  ["resume returns a table error untouched"] = function(co)
    local t = { "e" }
    local ok, e = co.resume(co.create(function() error(t) end))
    return ok, e == t
  end,
  ["wrap yields, returns, then raises for a dead coroutine with the caller's position"] = function(co)
    local g = co.wrap(function() co.yield(1); co.yield(2); return 3 end)
    return g(), g(), g(), select(2, pcall(g))
  end,
  ["wrap prefixes the caller's position to string errors"] = function(co)
    local g = co.wrap(function() error("inner") end)
    local ok, e = pcall(function() return g() end)
    return ok, e
  end,
  ["wrap keeps table errors untouched"] = function(co)
    local t = {}
    local g = co.wrap(function() error(t) end)
    local ok, e = pcall(g)
    return ok, e == t
  end,
  ["wrap closes a failed coroutine's to-be-closed variables"] = function(co)
    local closed = false
    local g = co.wrap(function()
      local x <close> = setmetatable({}, { __close = function() closed = true end })
      error("fail")
    end)
    pcall(g)
    return closed
  end,
  ["close of a suspended coroutine runs its to-be-closed variables"] = function(co)
    local closed = false
    local c = co.create(function()
      local x <close> = setmetatable({}, { __close = function() closed = true end })
      co.yield()
    end)
    co.resume(c)
    return co.close(c), closed, co.status(c)
  end,
  ["close of a coroutine that failed returns false and the error"] = function(co)
    local c = co.create(function() error({ "x" }) end)
    co.resume(c)
    local ok, e = co.close(c)
    return ok, type(e)
  end,
  ["close of the running coroutine raises"] = function(co)
    local c
    c = co.create(function() return co.close(c) end)
    return co.resume(c)
  end,
  ["close of a normal coroutine raises"] = function(co)
    local outer
    outer = co.create(function()
      return co.resume(co.create(function() return co.close(outer) end))
    end)
    return co.resume(outer)
  end,
  ["isyieldable, running and status are unchanged"] = function(co)
    local inside
    local c = co.create(function() inside = { co.isyieldable(), co.status(co.running()) } end)
    co.resume(c)
    return co.isyieldable(), select(2, co.running()), inside[1], inside[2]
  end,
  ["bad arguments name the call"] = function(co)
    return select(2, pcall(function() co.resume(1) end)),
           select(2, pcall(function() co.wrap(nil) end)),
           select(2, pcall(function() co.close("x") end))
  end,
  ["wrap's upvalue 1 is its coroutine (issue 12 item 2)"] = function(co)
    local g = co.wrap(function() co.yield(co.running()) end)
    local name, t = debug.getupvalue(g, 1)
    local inside = g()
    return name, type(t), t == inside, co.status(t)
  end,
  ["traceback of another thread is Lua's"] = function(co)
    local c = co.create(function() co.yield() end)
    co.resume(c)
    return co.traceback(c, "m"), co.traceback(c, "m", 1), co.traceback(c, {})
  end,
}

describe("asyncstack.bridge", function()
  describe("install()", function()
    it("replaces coroutine.resume/wrap/close/yield and debug.traceback until uninstall()", function()
      local original_yield = coroutine.yield
      as.install()
      assert.are_not.equal(original_yield, coroutine.yield)
      assert.are_not.equal(original.resume, coroutine.resume)
      assert.are_not.equal(original.wrap, coroutine.wrap)
      assert.are_not.equal(original.close, coroutine.close)
      assert.are_not.equal(original.traceback, debug.traceback)
      as.run(function() end)
      assert.are_not.equal(original.resume, coroutine.resume)  -- run keeps it
      as.uninstall()
      assert.are.equal(original.resume, coroutine.resume)
      assert.are.equal(original.wrap, coroutine.wrap)
      assert.are.equal(original.close, coroutine.close)
      assert.are.equal(original.traceback, debug.traceback)
    end)

    it("leaves alone a function the user replaced after install", function()
      as.install()
      local mine = function() end
      coroutine.wrap = mine
      as.uninstall()
      assert.are.equal(mine, coroutine.wrap)
      coroutine.wrap = original.wrap
    end)

    describe("bad arguments", function()
      it("ignores arguments (there are none to get wrong)", function()
        as.install("x")
        as.uninstall(1)
        assert.are.equal(original.resume, coroutine.resume)
      end)
    end)
  end)

  describe("outside forks", function()
    local bridged = bridged_lib()
    local names = {}
    for name in pairs(scenarios) do names[#names + 1] = name end
    table.sort(names)
    for _, name in ipairs(names) do
      it("behaves like Lua: " .. name, function()
        assert.are.same(outcome(scenarios[name], original_lib()),
                        outcome(scenarios[name], bridged, true))
      end)
    end
  end)

  describe("inside forks", function()
    it("passes scheduler suspensions through nested generators and back", function()
      local items = as.run(function()
        local out = {}
        local gen = coroutine.wrap(function()
          for i = 1, 3 do
            as.sleep(0.001)
            local inner = coroutine.wrap(function() as.yield(); coroutine.yield(i * 10) end)
            coroutine.yield(inner())
          end
        end)
        for v in gen do out[#out + 1] = v end
        return out
      end)
      assert.are.same({ 10, 20, 30 }, items)
    end)

    it("lets other forks run while a nested coroutine sleeps", function()
      local log = {}
      as.run(function()
        as.fork(function() log[#log + 1] = "other" end)
        local co = coroutine.create(function() as.sleep(0.001); log[#log + 1] = "nested" end)
        assert(coroutine.resume(co))
        log[#log + 1] = "root"
      end)
      assert.are.same({ "other", "nested", "root" }, log)
    end)

    it("refuses to resume or close a coroutine parked by a suspended fork", function()
      local resumed, closed
      as.run(function()
        local parked
        local f = as.fork(function()
          parked = coroutine.create(function() as.sleep(0.01) end)
          coroutine.resume(parked)
        end)
        as.yield()
        assert.are.equal("suspended", coroutine.status(parked))
        resumed = { coroutine.resume(parked) }
        closed = error_of(function() coroutine.close(parked) end)
        as.wait(f)
      end)
      assert.are.same({ false, "cannot resume a coroutine that is blocked in an asyncstack call of a suspended fork" }, resumed)
      assert.are.equal("cannot close a coroutine that is blocked in an asyncstack call of a suspended fork", closed)
    end)

    it("gives a clear error for a blocking call under an unbridged resume", function()
      local ok, err = as.run(function()
        return original.resume(coroutine.create(function() as.sleep(0) end))
      end)
      assert.is_false(ok)
      assert.matches("sleep: cannot suspend: this coroutine was resumed by an unbridged coroutine.resume", err, 1, true)
    end)

    it("marks an unbridged segment in traces", function()
      local frames = as.run(function()
        local _, fr = original.resume(coroutine.create(function() return as.debug_backtrace() end))
        return fr
      end)
      assert.are.equal("unbridged", frames[2].boundary)
    end)

    it("keeps Lua's error positions for failing generators", function()
      local err = as.run(function()
        local g = coroutine.wrap(function() as.sleep(0); error("gen failed") end)
        local ok, e = pcall(g)
        assert(not ok)
        return e
      end)
      assert.matches("^spec/bridge_spec.lua:%d+: gen failed$", err)
    end)

    it("makes debug.traceback async-aware for the running code", function()
      local text = as.run(function()
        local g = coroutine.wrap(function() coroutine.yield(debug.traceback("tb")) end)
        return g()
      end)
      assert.matches("\t%[coroutine resumed at spec/bridge_spec.lua:%d+", text)
      assert.matches("%(root of fork #%d+ 'main'%)", text)
    end)
  end)
end)
