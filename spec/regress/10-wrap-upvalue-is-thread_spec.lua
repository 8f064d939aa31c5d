-- Issue 12, item 2: debug.getupvalue(coroutine.wrap(f), 1) returned a
-- userdata (asyncstack's module state) after install() and inside run(),
-- even outside forks; in Lua it is the coroutine, and code uses it to get a
-- wrap's thread.
--
--   local as = require "asyncstack"
--   as.install()
--   print(debug.getupvalue(coroutine.wrap(print), 1))   --> "" userdata: 0x...
--
-- Where: src/bridge.c, bridge_wrap: every core C function has the state as
-- upvalue 1 (module.h AS_STATE_UPVALUE), the wrap closure included.
--
-- Fixed: the wrap closure has the coroutine as upvalue 1 and the state as
-- upvalue 2; as_is_internal_function (src/core.c) asks the bridge which
-- upvalue holds the state (as_bridge_state_upvalue), so traces still hide it.
-- (Like every bridged function, it still has an upvalue Lua's has not:
-- debug.getupvalue(g, 2) is the state. Keeping the state elsewhere, in the
-- registry, cost 11 % more instructions per generator call.)
local as = require "asyncstack"

local function wrap_thread(g)
  local name, value = debug.getupvalue(g, 1)
  return name, type(value), value
end

describe("regression: 10-wrap-upvalue-is-thread", function()
  local original_wrap = coroutine.wrap

  it("gives the coroutine as upvalue 1, as Lua's wrap does, after install()", function()
    local plain = { wrap_thread(original_wrap(print)) }
    as.install()
    local ok, name, kind = pcall(wrap_thread, coroutine.wrap(print))
    as.uninstall()
    assert.is_true(ok)
    assert.are.same({ plain[1], plain[2] }, { name, kind })
    assert.are.equal("thread", kind)
  end)

  it("is the very coroutine the generator runs in, inside a fork", function()
    local same, status_before, status_after = as.run(function()
      local inside
      local g = coroutine.wrap(function() inside = coroutine.running(); coroutine.yield() end)
      local _, t = debug.getupvalue(g, 1)
      local before = coroutine.status(t)
      g()
      return inside == t, before, coroutine.status(t)
    end)
    assert.is_true(same)
    assert.are.equal("suspended", status_before)
    assert.are.equal("suspended", status_after)
  end)

  it("keeps the wrap out of traces", function()
    local text = as.run(function()
      local g = coroutine.wrap(function() coroutine.yield(debug.traceback("tb")) end)
      return g()
    end)
    -- the wrap's C frame is ours: hidden, as before
    assert.is_nil(text:find("[C]: in function 'g'", 1, true))
    assert.is_nil(text:find("[C]: in ?\n", 1, true))
    assert.matches("%[coroutine resumed at spec/regress/10%-wrap%-upvalue%-is%-thread_spec.lua:%d+", text)
  end)
end)
