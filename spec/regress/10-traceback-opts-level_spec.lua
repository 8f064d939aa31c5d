-- Issue 12 item 9: as.traceback(msg, nil, {level = 2}) ignored opts.level
-- (the positional level, absent, overrode it with 1):
--
--   as.run(function()
--     local function f() return as.traceback("m", nil, { level = 2 }) end
--     print((f()))     --> still starts with f's own line
--   end)
--
-- Fixed: a positional level wins when given; otherwise opts.level counts.
local as = require "asyncstack"

local function first_line(text) return text:match("^[^\n]*\nstack traceback:\n\t([^\n]*)") end

describe("regress 10: as.traceback opts.level", function()
  it("starts opts.level levels up when no positional level is given", function()
    local by_opts, by_arg, default = as.run(function()
      local function f(how)
        if how == "opts" then return as.traceback("m", nil, { level = 2 }) end
        if how == "arg" then return as.traceback("m", 2) end
        return as.traceback("m")
      end
      local a = f("opts")
      local b = f("arg")
      local c = f()
      return a, b, c
    end)
    assert.matches("in local 'f'$", first_line(default))
    assert.matches("%(root of fork #%d+ 'main'%)$", first_line(by_opts))
    -- the same frame (the two calls are on different lines)
    assert.are.equal(first_line(by_arg):gsub(":%d+: in ", ": in "),
                     first_line(by_opts):gsub(":%d+: in ", ": in "))
  end)

  it("lets a positional level win over opts.level", function()
    local text = as.run(function()
      local function f() return as.traceback("m", 1, { level = 2 }) end
      local r = f()
      return r
    end)
    assert.matches("in local 'f'$", first_line(text))
  end)

  it("still rejects a bad opts.level", function()
    assert.has_error(function() as.traceback("m", nil, { level = 0 }) end,
                     "bad option 'level' to 'traceback' (positive integer expected, got 0)")
  end)
end)
