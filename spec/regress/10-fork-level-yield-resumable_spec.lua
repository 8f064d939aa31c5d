-- Issue 12, item 1 (the same defect is issue 13's D8): a fork parked in a
-- fork-level coroutine.yield() could be resumed or closed by another fork.
--
--   local as = require "asyncstack"
--   as.run(function()
--     local t
--     local f = as.fork(function()
--       t = coroutine.running()
--       coroutine.yield()               -- as.yield(): an await point
--       return "mine"
--     end)
--     as.yield()
--     print(coroutine.resume(t))         --> true "mine": f's body ran inside main
--     print(as.pwait(f))                 --> a wrong result, or "cannot resume
--   end)                                 --  dead coroutine" after coroutine.close(t)
--
-- The same calls on a fork parked in as.yield() were refused.
--
-- Where: src/bridge.c, is_parked. It recognises a parked coroutine by the
-- core C function at its level 0, and excluded bridge_yield (a plain yield
-- inside a generator) without telling the fork-level case apart.
--
-- Fixed: at a fork's own level bridge_yield leaves a private mark in its
-- stack slot 1 before it yields to the scheduler, and is_parked treats a
-- coroutine parked in bridge_yield with that mark as parked in as.yield():
-- resume and close are refused with as.yield()'s message. A plain yield
-- (inside a coroutine the fork resumed) is untouched.
local as = require "asyncstack"
local helper = require "spec.helper"

-- Parks a fork with `park` and lets the root try resume and close on its
-- thread; returns what each call gave and how the fork ended.
local function try_foreign(park)
  local out = {}
  as.run(function()
    local t
    local f = as.fork(function()
      t = coroutine.running()
      park()
      out.after_id = as.current():id()
      return "mine"
    end)
    as.yield()
    out.status = coroutine.status(t)
    out.resume = table.pack(coroutine.resume(t))
    out.close = helper.error_of(function() coroutine.close(t) end)
    out.wrap = helper.error_of(function()
      -- a wrap of the same thread: not possible in Lua, so the closest is
      -- resuming it from inside a generator of this fork
      return coroutine.wrap(function() assert(coroutine.resume(t)) end)()
    end)
    out.fork_id = f:id()
    out.result = table.pack(as.pwait(f))
  end)
  return out
end

local REFUSED_RESUME = "cannot resume a coroutine that is blocked in an asyncstack call of a suspended fork"
local REFUSED_CLOSE = "cannot close a coroutine that is blocked in an asyncstack call of a suspended fork"

describe("regression: 10-fork-level-yield-resumable", function()
  it("refuses another fork's coroutine.resume and coroutine.close at a fork-level coroutine.yield", function()
    local out = try_foreign(function() coroutine.yield() end)
    assert.are.equal("suspended", out.status)
    assert.are.same({ false, REFUSED_RESUME, n = 2 }, out.resume)
    assert.are.equal(REFUSED_CLOSE, out.close)
    assert.matches(REFUSED_RESUME, out.wrap, 1, true)
    -- the fork went on by itself, as itself, and its result is its own
    assert.are.equal(out.fork_id, out.after_id)
    assert.are.same({ true, "mine", n = 2 }, out.result)
  end)

  it("refuses them with the very messages given at as.yield()", function()
    local at_yield = try_foreign(function() as.yield() end)
    local at_coyield = try_foreign(function() coroutine.yield() end)
    assert.are.same(at_yield.resume, at_coyield.resume)
    assert.are.equal(at_yield.close, at_coyield.close)
    assert.are.same(at_yield.result, at_coyield.result)
  end)

  it("still lets a fork resume and close its own generators parked in coroutine.yield", function()
    local got = as.run(function()
      local co = coroutine.create(function() coroutine.yield(1); coroutine.yield(2) end)
      local _, a = coroutine.resume(co)
      local _, b = coroutine.resume(co)
      return { a, b, coroutine.close(co), coroutine.status(co) }
    end)
    assert.are.same({ 1, 2, true, "dead" }, got)
  end)

  it("still lets another fork resume a coroutine parked in a plain yield", function()
    -- a coroutine is not a fork: any fork may resume it once it yielded
    local got = as.run(function()
      local co
      local f = as.fork(function()
        co = coroutine.create(function() coroutine.yield("first"); return "second" end)
        coroutine.resume(co)
      end)
      as.wait(f)
      return table.pack(coroutine.resume(co))
    end)
    assert.are.same({ true, "second", n = 2 }, got)
  end)
end)
