-- Found while writing examples/echo_server.lua (issue 6): as.pcall of a plain
-- error gives an ErrorException whose trace starts with a frame of the
-- `pcall` that init.lua's message handler (to_exception) wraps around
-- core.capture:
--
--   local as = require "asyncstack"
--   local _, e = as.pcall(function() error("x") end)
--   print(tostring(e))
--   --> asyncstack.ErrorException: t.lua:2: x in t.lua:2
--   --> stack traceback:
--   -->     [C]: in upvalue 'pcall'        <- internal, should not be there
--   -->     [C]: in function 'error'
--   -->     t.lua:2: in function <t.lua:2>
--
-- A fork that fails the same way (no as.pcall) has no such frame.
-- Fixed: init.lua's handler calls core.capture directly.
local as = require "asyncstack"

describe("regress: as.pcall's trace", function()
  it("does not start with the message handler's own pcall frame", function()
    local _, e = as.pcall(function() error("x") end)
    assert.is_nil(tostring(e):find("in upvalue 'pcall'", 1, true))
    assert.are.equal("error", e:getTrace()[1]["function"])
  end)
end)
