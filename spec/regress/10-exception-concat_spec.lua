-- Issue 12 item 10: errors from wait are exceptions (tables), so the string
-- idiom `"failed: " .. err` raised "attempt to concatenate a table value".
--
-- Fixed: exceptions have __concat on both sides; it concatenates tostring(e)
-- (the same text print(e) shows). Other operands raise as Lua does.
local as = require "asyncstack"

describe("regress 10: exceptions and ..", function()
  it("concatenates an exception from wait on either side", function()
    local err = as.run(function()
      local f = as.fork(function() error("boom") end)
      local ok, e = pcall(as.wait, f)
      assert.is_false(ok)
      return e
    end)
    assert.is_true(as.ErrorException:is(err))
    assert.are.equal("failed: " .. tostring(err), "failed: " .. err)
    assert.are.equal(tostring(err) .. "!", err .. "!")
    assert.are.equal("1" .. tostring(err), 1 .. err)
    assert.are.equal(tostring(err) .. tostring(err), err .. err)
  end)

  it("works for subclasses made with extend", function()
    local MyError = as.Exception:extend("app.MyError")
    local e = MyError("bad")
    assert.are.equal("x: " .. tostring(e), "x: " .. e)
  end)

  it("raises for a table on the other side, as Lua's .. does", function()
    local e = as.Exception("bad")
    local ok, msg = pcall(function() return e .. {} end)
    assert.is_false(ok)
    assert.matches("attempt to concatenate a table value$", msg)
    ok, msg = pcall(function() return true .. e end)
    assert.is_false(ok)
    assert.matches("attempt to concatenate a boolean value$", msg)
  end)
end)
