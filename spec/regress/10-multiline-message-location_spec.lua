-- Issue 12 item 7: tostring(e) appended " in file:line" to the LAST line of a
-- multi-line message (the end of the dump an as.Deadlock carries), and
-- repeated a location the message already started with:
--
--   local ok, e = pcall(as.run, function() error("negative price") end)
--   print(e)   --> asyncstack.ErrorException: t.lua:6: negative price in t.lua:6
--
-- Fixed: the location goes on the first line ("Class: first line in
-- file:line", before a trailing colon), the other lines stay as they are,
-- and a location the message starts with is not repeated.
local as = require "asyncstack"

local HERE = "spec/regress/10%-multiline%-message%-location_spec%.lua"

describe("regress 10: exception header with a multi-line message", function()
  it("puts the location on the first line of a deadlock's message", function()
    local ok, e = pcall(as.run, function()
      local ch = as.channel()
      as.fork(function() ch:recv() end)
      ch:recv()
    end)
    assert.is_false(ok)
    assert.is_true(as.Deadlock:is(e))
    local text = tostring(e)
    local first, second = text:match("^([^\n]*)\n([^\n]*)\n")
    assert.matches("^asyncstack%.Deadlock: run: deadlock: 2 forks are blocked and none can make progress in "
                   .. HERE .. ":%d+:$", first)
    assert.are.equal("scheduler: 2 forks (2 waiting), run queue 0, 0 timers, 0 fds", second)
    -- the dump's last line is the dump's, and the trace follows it
    local last_dump_line = e:getMessage():match("([^\n]*)$")
    assert.is_truthy(text:find(last_dump_line .. "\nstack traceback:\n", 1, true))
  end)

  it("keeps the other lines of a message as they are", function()
    local e = as.Exception("first\nsecond\nthird")
    local line = debug.getinfo(1, "l").currentline - 1
    local text = tostring(e)
    assert.are.equal(("asyncstack.Exception: first in %s:%d\nsecond\nthird\nstack traceback:")
                       :format(HERE:gsub("%%", ""), line), text:match("^(.-stack traceback:)"))
  end)

  it("does not repeat the location a plain error's message starts with", function()
    local ok, e = pcall(as.run, function() error("negative price") end)
    local line = debug.getinfo(1, "l").currentline - 1
    assert.is_false(ok)
    local expected = ("asyncstack.ErrorException: %s:%d: negative price"):format(HERE:gsub("%%", ""), line)
    assert.are.equal(expected, tostring(e):match("^[^\n]*"))
  end)

  it("keeps a different location the message starts with", function()
    local e = as.Exception("t.lua:6: negative price")
    local line = debug.getinfo(1, "l").currentline - 1
    assert.are.equal(("asyncstack.Exception: t.lua:6: negative price in %s:%d"):format(HERE:gsub("%%", ""), line),
                     tostring(e):match("^[^\n]*"))
  end)
end)
