-- Issue 8, part 3 (wrong states): when run() abandons a fork because the
-- root failed, it closes the fork's root coroutine (its pending
-- to-be-closed variables run), but not the user coroutines the fork was
-- blocked inside: a generator's <close> variables never run, though its
-- frames are part of the fork's async stack. README: "Re-raises the root
-- fork's error (abandoning, and closing, the forks still live)".
--
-- Where: src/sched.c abandon_live: lua_resetthread(f->thread) only. It
-- should close f->astack.frames[depth-1 .. 1] (innermost first, each a
-- parked bridged coroutine) before the root, as Lua's own close would if the
-- bridge did not exist (the resumer's frame is what keeps them alive).
local as = require "asyncstack"

describe("regression: abandon-closes-generators", function()
  it("runs the root coroutine's <close> variables (control)", function()
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

  it("runs the <close> variables of a generator the fork is blocked in", function()
    local closed = {}
    pcall(as.run, function()
      as.fork(function()
        local outer <close> = setmetatable({}, { __close = function() closed[#closed + 1] = "root" end })
        coroutine.wrap(function()
          local inner <close> = setmetatable({}, { __close = function() closed[#closed + 1] = "generator" end })
          as.sleep(10)
        end)()
      end)
      as.yield()
      error("root fails")
    end)
    assert.are.same({ "generator", "root" }, closed)
  end)
end)
