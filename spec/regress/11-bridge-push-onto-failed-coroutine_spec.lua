-- Issue 13, D12 (the bridge's part): on every error out of a bridged
-- coroutine inside a fork, bridge_finish copied the error with
-- lua_pushvalue(co, -1) onto the failed coroutine, whose stack may have no
-- room left: a C API violation. Lua built with LUA_USE_APICHECK aborts
-- ("lua_pushvalue: Assertion `(L->top <= L->ci->top) && "stack
-- overflow"' failed"); the stock lua5.4 does not check and runs on.
--
-- Where: src/bridge.c, bridge_finish.
-- Fixed: the error object is moved to the resumer first (lua_xmove only
-- takes from co) and copied there.
--
-- This spec fails only under a Lua with API checks (make test-apicheck,
-- issue 13 part 2; or any lua5.4 built with -DLUA_USE_APICHECK): there the
-- process aborted at the first scenario before the fix. Under the stock
-- lua5.4 it checks the outcomes only.
local as = require "asyncstack"

describe("regression: 11-bridge-push-onto-failed-coroutine", function()
  it("takes the error of a failed coroutine without pushing onto it", function()
    local got = as.run(function()
      local out = {}
      -- a resume whose coroutine fails with its stack filled by arguments
      local co = coroutine.create(function(...) error({ select("#", ...) }) end)
      local ok, e = coroutine.resume(co, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
                                     13, 14, 15, 16, 17, 18, 19, 20, 21, 22)
      out[1] = { ok, e[1] }
      -- a wrap that fails with locals on its stack, then one after a sleep
      local g = coroutine.wrap(function()
        local t = {}
        for j = 1, 30 do t[j] = j end
        error("flat", 0)
      end)
      out[2] = { pcall(g) }
      local ok2, ex = as.pcall(function()
        local gg = coroutine.wrap(function() as.sleep(0); error("deep", 0) end)
        gg()
      end)
      out[3] = { ok2, ex:getMessage():match("deep$") }   -- wrap adds a position
      return out
    end)
    assert.are.same({ { false, 22 }, { false, "flat" }, { false, "deep" } }, got)
  end)
end)
