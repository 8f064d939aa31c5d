-- Issue 17 (row 17, second round): the error path reads more through the
-- checked Lua layout and allocates less. Where: src/walk.c (a level's
-- function, tail call and source read from its CallInfo, one lua_getinfo
-- per kept frame; a light C function pushed as itself; a root's spawning
-- function found as the next frame's; an error's raise site of a few frames
-- made as one compact userdata), src/backtrace.c (the rethrow's quick look
-- through the layout; both capture forms read), src/exception.c (the
-- rethrow note). What must hold: the text is the same as the lua_getstack
-- path gives (walk_stepping(false) reads every level with lua_getinfo),
-- compact captures read and render as tables do, and bad captures are
-- still refused with the same message.
local as = require "asyncstack"
local core = require "asyncstack.core"

-- An error raised in the innermost of three forks, each waiting for the
-- next, caught by the root: row 17's shape, with a light C function
-- (error) and named and unnamed roots in the trace. run() is called in a
-- coroutine of its own, so that the whole raise site is a few frames (a
-- compact capture), as in the benchmark.
local function chain_error()
  local caught, e = coroutine.wrap(as.run)(function()
    local function raise(x) error("boom " .. x) end
    local function third() raise(1) end
    local function second() local r = as.wait(as.fork(third)); return r end
    local function first() return (as.wait(as.fork(second))) end
    local f = as.fork(first)
    f:name("outer")
    return pcall(as.wait, f)
  end)
  assert.is_false(caught)
  return e
end

describe("regress 17: the error path's layout reads", function()
  local stepping
  setup(function() stepping = core.walk_stepping() end)
  after_each(function() core.walk_stepping(stepping) end)

  it("gives the text and frames the lua_getinfo path gives", function()
    local errs = {}
    for i, on in ipairs { true, false } do
      core.walk_stepping(on)
      errs[i] = chain_error()
    end
    local a, b = errs[1], errs[2]
    local ta, tb = tostring(a), tostring(b)
    assert.are.equal((ta:gsub("fork #%d+", "")), (tb:gsub("fork #%d+", "")))
    assert.matches("\n\t%[C%]: in function 'error'\n", ta)
    assert.matches("in upvalue 'raise'\n", ta)
    assert.matches("in function 'third'  %(root of fork #%d+%)\n", ta)
    assert.matches("%(root of fork #%d+ 'outer'%)\n", ta)
    local fa, fb = a:getTrace(), b:getTrace()
    assert.are.equal(#fa, #fb)
    for i = 1, #fa do
      assert.are.equal(fa[i].line, fb[i].line)
      assert.are.equal(fa[i].file, fb[i].file)
      assert.are.equal(fa[i].linedefined, fb[i].linedefined)
      assert.are.equal(fa[i]["function"], fb[i]["function"])
      assert.are.equal(fa[i].root, fb[i].root)
      assert.are.equal(fa[i].tailcall, fb[i].tailcall)
    end
    -- three waits handed it on, each at a site the trace shows
    assert.are.equal(3, rawget(a, "_rethrows").n)
    for i = 1, 3 do assert.is_false(rawget(a, "_rethrows")[i]) end
  end)

  it("reads a compact raise-site capture as a table capture", function()
    local e = chain_error()
    local raw = rawget(e, "_raw")
    assert.are.equal("userdata", type(raw))     -- the compact form
    local frames = core.expand(raw)
    assert.are.same(e:getTrace(), frames)
    assert.are.equal(core.render(raw, "traceback", "m"),
                     "m\n" .. tostring(e):match("\n(stack traceback:.*)$"))
    assert.matches("^#0 ", core.render(raw, "php"))
  end)

  it("refuses a userdata that is no capture as before", function()
    assert.has_error(function() core.render(io.stdout, "traceback") end,
                     "bad argument #1 to 'render' (table expected, got FILE*)")
    assert.has_error(function() core.expand(io.stdout) end,
                     "bad argument #1 to 'expand' (table expected, got FILE*)")
    assert.are.equal("stack traceback:", core.render({ n = 0 }, "traceback"))
  end)

  it("marks a tail-called frame on both paths", function()
    local texts = {}
    for _, on in ipairs { true, false } do
      core.walk_stepping(on)
      local ok, e = as.run(function()
        local function leaf() error("tail") end
        local function mid() return leaf() end
        return as.pwait(as.fork(mid))
      end)
      assert.is_false(ok)
      texts[#texts + 1] = (tostring(e):gsub("fork #%d+", ""))
    end
    assert.are.equal(texts[1], texts[2])
    assert.matches("%(%.%.%.tail calls%.%.%.%)", texts[1])
  end)
end)
