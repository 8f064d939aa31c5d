-- Issue 17: an error caught through waiting forks captured a 32-frame
-- trace at every wait that handed it on, though the text never shows the
-- ones whose site the exception's trace already holds (the waiter was
-- waiting when it was raised). Where: src/backtrace.c
-- (as_backtrace_push_rethrow_site), src/walk.c, exception.lua (note_rethrow).
-- Such a rethrow is now noted without a capture; it must still count in
-- "(and N more rethrows)", and a rethrow whose site is not shown must
-- still get its section.
local as = require "asyncstack"

describe("regress: rethrows whose site the trace shows", function()
  it("are counted but get no section", function()
    local ok, e = pcall(as.run, function()
      local function link(d)
        if d == 0 then error("deep") end
        local r = as.wait(as.fork(link, d - 1))
        return r
      end
      local r = as.wait(as.fork(link, 10))
      return r
    end)
    assert.is_false(ok)
    local text = tostring(e)
    -- 11 waits handed it on (10 forks and the root), 8 are kept
    assert.matches("\n%(and 3 more rethrows%)$", text)
    assert.is_nil(text:find("rethrown by", 1, true))
    assert.are.equal(11, rawget(e, "_rethrows").n)
    for i = 1, 8 do assert.is_false(rawget(e, "_rethrows")[i]) end
  end)

  it("keep their capture and section when the waiter was not waiting", function()
    local text, first
    as.run(function()
      local f = as.fork(function() error(as.Exception("late")) end)
      as.yield()
      local _, e = as.pwait(f)
      first = rawget(e, "_rethrows")[1]
      _, e = pcall(as.wait, f)
      text = tostring(e)
    end)
    assert.is_table(first)
    assert.is_table(first.raw)
    local _, sections = text:gsub("\n%l+ by p?wait%(%) at spec/regress/17%-rethrow%-site%-shown_spec.lua:%d+ in fork #%d+ 'main'\nstack traceback:\n", "")
    assert.are.equal(2, sections)
  end)
end)
