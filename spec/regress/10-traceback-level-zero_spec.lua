-- Issue 12 item 3: debug.traceback(msg, 0) inside a fork treated level 0 as
-- level 1, so the trace lacked the line Lua's own traceback starts with:
--
--   as.run(function() print(debug.traceback("m", 0)) end)
--   --> m
--   --> stack traceback:
--   -->     t.lua:1: in function <t.lua:1>  (root of fork #1 'main')
--   -- Lua: "[C]: in function 'debug.traceback'" first
--
-- Fixed: level 0 keeps the traceback function's own frame (walk.c `self`),
-- named as Lua names it; negative levels give an empty trace, as in Lua.
local as = require "asyncstack"

local function first_line(text) return text:match("^[^\n]*\nstack traceback:\n\t([^\n]*)") end

describe("regress 10: debug.traceback(msg, 0) inside a fork", function()
  it("starts with traceback's own frame, as Lua does outside forks", function()
    local outside = debug.traceback("m", 0)
    local inside = as.run(function() return debug.traceback("m", 0) end)
    assert.are.equal("[C]: in function 'debug.traceback'", first_line(outside))
    assert.are.equal(first_line(outside), first_line(inside))
  end)

  it("counts level 1 as the caller, 2 as its caller", function()
    local function leaf(level) return debug.traceback("m", level) end
    local one, two = as.run(function()
      local a = leaf(1)
      local b = leaf(2)
      return a, b
    end)
    assert.matches("^spec/regress/10%-traceback%-level%-zero_spec%.lua:%d+: in upvalue 'leaf'$", first_line(one))
    assert.matches("%(root of fork #%d+ 'main'%)$", first_line(two))
  end)

  it("gives an empty trace for a negative level, as Lua does", function()
    assert.are.equal("m\nstack traceback:", debug.traceback("m", -1))
    assert.are.equal("m\nstack traceback:", as.run(function() return debug.traceback("m", -1) end))
  end)

  it("names as.traceback itself at level 0", function()
    local text = as.run(function() return as.traceback("m", 0) end)
    -- named by its first field in package.loaded, as Lua names C functions
    assert.matches("^%[C%]: in function 'asyncstack[%.%w]*%.traceback'$", first_line(text))
  end)
end)
