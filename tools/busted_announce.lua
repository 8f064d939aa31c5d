-- Busted helper (--helper=tools/busted_announce.lua): writes
-- "announce: <full test name>" to stderr as each test starts, flushed, so a
-- runner whose process aborts in the middle of a test (an API check, an ASan
-- report) knows which test it was. Names are built as busted's TAP output
-- builds them (describe and it names joined by spaces).
local busted = require "busted"

local function full_name(element)
  local names = { element.name or element.descriptor }
  local parent = busted.parent(element)
  while parent and (parent.name or parent.descriptor) and parent.descriptor ~= "file" do
    table.insert(names, 1, parent.name or parent.descriptor)
    parent = busted.parent(parent)
  end
  return table.concat(names, " ")
end

busted.subscribe({ "test", "start" }, function(element)
  io.stderr:write("announce: ", full_name(element), "\n")
  io.stderr:flush()
  return nil, true
end)
