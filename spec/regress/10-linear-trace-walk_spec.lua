-- Issue 12 item 4: traces were quadratic in stack depth inside a fork
-- (0.32 / 1.25 / 4.97 s at depth 20k / 40k / 80k against 0.001 / 0.003 /
-- 0.006 s in plain Lua): the walk called lua_getstack once per level, from
-- the top each time, and as.traceback stored every frame of the stack before
-- its text kept 200 of them.
--
-- Fixed (src/walk.c): the walk steps from each level to its caller (the
-- CallInfo chain, checked once against lua_getstack; lua_getstack per level
-- otherwise), and a text walk keeps only its first and last frames, reading
-- each skipped frame once. Timing is bench row 9 (`make bench`, <= 2x the
-- same trace outside a fork); this spec pins what the deep walks return,
-- on both paths.
local as = require "asyncstack"
local core = require "asyncstack.core"

-- The lua_getstack fallback is quadratic (that is the bug): it is checked
-- at a depth it walks quickly.
local DEPTHS = { stepping = 80000, lua_getstack = 3000 }

local function at_depth(n, fn)
  if n <= 1 then local r = fn() return r end
  local r = at_depth(n - 1, fn)
  return r
end

local function count(text, pattern)
  local _, n = text:gsub(pattern, "")
  return n
end

-- The texts and frame counts of deep walks inside a fork.
local function deep_walks(DEPTH)
  return as.run(function()
    local out = {}
    local f = as.fork(function() at_depth(1000, function() as.sleep(0.01) end) end)
    as.yield()
    out.suspended = #as.fork_backtrace(f)
    at_depth(DEPTH, function()
      out.text = debug.traceback("deep")
      out.limited = as.traceback("deep", 1, { limit = 5 })
      out.frames = #as.debug_backtrace()
      local ok, e = as.pcall(error, "x")
      out.exception = not ok and e
    end)
    as.wait(f)
    return out
  end)
end

describe("regress 10: deep traces inside a fork", function()
  local stepping
  setup(function() stepping = core.walk_stepping() end)
  after_each(function() core.walk_stepping(stepping) end)

  for _, path in ipairs { "stepping", "lua_getstack" } do
    it("keeps the first and last 100 frames of a deep trace (" .. path .. ")", function()
      local DEPTH = DEPTHS[path]
      core.walk_stepping(path == "stepping")
      local out = deep_walks(DEPTH)
      local lines = select(2, out.text:gsub("\n\t", ""))
      -- 100 frames, the skip line, 100 frames; at_depth's frames plus the
      -- measuring function, then the fork's root
      assert.are.equal(201, lines)
      assert.matches("\n\t%.%.%.\t%(skipping " .. (DEPTH + 2 - 200) .. " levels%)\n", out.text)
      assert.matches("%(root of fork #%d+ 'main'%)$", out.text)
      assert.are.equal(DEPTH + 2, out.frames)   -- + the function and the root
      assert.are.equal(1002, out.suspended)
      assert.are.equal(5, count(out.limited, "\n\t[^.]"))
      assert.matches("%(" .. (DEPTH + 2 - 5) .. " more frames omitted%)$", out.limited)
      local trace = out.exception:getTrace()
      assert.are.equal(core.RAISE_SITE_LIMIT, #trace)
    end)
  end

  it("gives the same text on both paths", function()
    core.walk_stepping(true)
    local a = deep_walks(3000)
    core.walk_stepping(false)
    local b = deep_walks(3000)
    assert.are.equal(a.text:gsub("fork #%d+", ""), (b.text:gsub("fork #%d+", "")))
  end)

  it("traces a stack overflow inside a fork as outside", function()
    local function overflow()
      local function f() return 1 + f() end
      local _, tb = xpcall(f, debug.traceback)
      return tb
    end
    -- in a coroutine of its own: an overflowed thread keeps its grown
    -- stack for a while, and the main thread's would skew heap checks
    local outside, inside = coroutine.wrap(overflow)(), as.run(overflow)
    assert.matches("stack overflow", inside)
    assert.matches("%(skipping %d+ levels%)", inside)
    assert.matches("%(skipping %d+ levels%)", outside)
  end)
end)
