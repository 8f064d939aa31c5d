-- Issue 8, part 3 ("the process never crashes"), found by
-- spec/bad_input_spec.lua: pure Lua code can crash the process through the
-- Fork metatable, which getmetatable(fork) hands out (no __metatable field).
-- Its __gc, fork_gc, takes lua_touserdata(L, 1) on trust: given a table
-- (setmetatable({}, getmetatable(fork)), collected later) or called
-- directly with a non-userdata, it dereferences NULL (SIGSEGV).
--
-- Where: src/fork.c fork_gc (and the same pattern in src/core.c state_gc,
-- src/sched.c sched_gc, whose metatables are reachable through the debug
-- library: debug.getupvalue(as.run, 1), debug.getregistry()). Check the
-- argument with luaL_testudata (liolib's __gc raises instead, through
-- luaL_checkudata), or hide the metatable with a __metatable field.
--
-- Each reproducer runs in a child process, since it killed the process.
-- Fixed: the __gc functions check their argument (as_fork_test, luaL_testudata).
local helper = require "spec.helper"


describe("regression: fork-metatable-gc-crash", function()
  it("survives a table given the Fork metatable, once it is collected #child", function()
    local out, status = helper.run_child([[
      local as = require "asyncstack"
      local mt
      as.run(function() mt = getmetatable(as.current()) end)
      setmetatable({}, mt)
      collectgarbage()
      collectgarbage()
      print("survived")
    ]])
    assert.are.equal(0, status)
    assert.are.equal("survived\n", out)
  end)

  it("survives the Fork metatable's __gc called with a table #child", function()
    local out, status = helper.run_child([[
      local as = require "asyncstack"
      local mt
      as.run(function() mt = getmetatable(as.current()) end)
      print(pcall(mt.__gc, {}))
      print("survived")
    ]])
    assert.are.equal(0, status)
    assert.matches("survived\n$", out)
  end)
end)
