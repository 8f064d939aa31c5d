-- Issue 8, found by the random programs (tools/replay.lua 230 --strict):
-- a plain error raised two coroutine.wrap levels deep loses the inner
-- generator's frames. README promises "when the error came out of a
-- generator through coroutine.wrap, the generator's frames are kept too".
--
-- Where: src/bridge.c, bridge_finish. Each bridged resume that sees its
-- coroutine fail captures a fresh trace (as_backtrace_push_fork) and
-- stash_error_trace overwrites the stash. By the time the outer wrap's
-- coroutine fails, the inner coroutine has been popped off the async stack,
-- so the outer capture starts at the outer generator and replaces the inner
-- one, which had the raise site. The capture made nearest to the raise site
-- should be kept (and carried to the prefixed string value) instead.
local as = require "asyncstack"

local function first_lua_frame(frames)
  for _, fr in ipairs(frames) do
    if fr.what ~= "C" then return fr end
  end
end

describe("regression: nested-wrap-trace", function()
  local function inner() error({ code = 1 }) end
  local function outer() coroutine.wrap(inner)() end

  it("keeps the inner generator's frames for a plain error through two wraps (as.pcall)", function()
    local ok, e = as.run(function()
      return as.pcall(function() coroutine.wrap(outer)() end)
    end)
    assert.is_false(ok)
    assert.are.equal(inner, first_lua_frame(e:getTrace()).func)
  end)

  it("keeps the inner generator's frames when the error fails a fork", function()
    local ok, e = as.run(function()
      return as.pwait(as.fork(function() coroutine.wrap(outer)() end))
    end)
    assert.is_false(ok)
    assert.are.equal(inner, first_lua_frame(e:getTrace()).func)
  end)

  it("keeps them for a string error too, whose text each wrap prefixes", function()
    local function inner_s() error("deep") end
    local function outer_s() coroutine.wrap(inner_s)() end
    local ok, e = as.run(function()
      return as.pcall(function() coroutine.wrap(outer_s)() end)
    end)
    assert.is_false(ok)
    assert.are.equal(inner_s, first_lua_frame(e:getTrace()).func)
  end)
end)
