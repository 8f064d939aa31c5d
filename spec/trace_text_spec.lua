-- Golden texts of every view of a trace (issue 11): the one renderer
-- (src/render.c) writes all of them, so each is pinned here byte for byte.
-- spec/fixtures/golden_trace.lua is a program with known lines; it runs in
-- a plain coroutine so that the frames below it are not the spec's. Fork
-- ids (process-wide counters) are shown as #N.
local as = require "asyncstack"
local core = require "asyncstack.core"

local LEAF = "\tgolden:5: in function 'golden_mod.leaf'\n"
local DEEP = "stack traceback:\n" .. LEAF .. "\tgolden:13: in upvalue 'deep'\n"
  .. string.rep("\tgolden:14: in upvalue 'deep'\n", 98)
  .. "\t...\t(skipping 54 levels)\n"
  .. string.rep("\tgolden:14: in upvalue 'deep'\n", 98)
  .. "\tgolden:43: in function <golden:32>  (root of fork #N 'main')\n"
  .. "\t[fork #N 'main' started by run() at golden:51 in main chunk]\n"
  .. "\tgolden:51: in main chunk"

local GOLDEN = {
    nested = [[
stack traceback:
	golden:5: in function 'golden_mod.leaf'
	golden:6: in function <golden:6>
	(...tail calls...)
	golden:9: in function <golden:9>
	[C]: in function 'pcall'
	golden:9: in function <golden:8>
	[coroutine resumed at golden:20 in function <golden:18>]
	golden:20: in function <golden:18>
	[coroutine resumed at golden:22 in function 'worker']
	golden:22: in function 'worker'  (root of fork #N 'worker')
	[fork #N 'worker' awaited by fork #N 'main' at golden:35 in function <golden:32>]
	golden:35: in function <golden:32>  (root of fork #N 'main')
	[fork #N 'main' started by run() at golden:51 in main chunk]
	golden:51: in main chunk]],
    awaited = [[
stack traceback:
	golden:5: in function 'golden_mod.leaf'
	golden:24: in function 'worker'  (root of fork #N 'worker')
	[fork #N 'worker' awaited by fork #N 'main' at golden:35 in function <golden:32>]
	golden:35: in function <golden:32>  (root of fork #N 'main')
	[fork #N 'main' started by run() at golden:51 in main chunk]
	golden:51: in main chunk]],
    combined = [[
stack traceback:
	golden:5: in function 'golden_mod.leaf'
	golden:28: in function 'combined'  (root of fork #N)
	[fork #N awaited by fork #N 'main' in wait_all (index 1) at golden:36 in function <golden:32>]
	golden:36: in function <golden:32>  (root of fork #N 'main')
	[fork #N 'main' started by run() at golden:51 in main chunk]
	golden:51: in main chunk]],
    spawned = [[
stack traceback:
	golden:5: in function 'golden_mod.leaf'
	golden:30: in function 'spawned'  (root of fork #N)
	[fork #N spawned by fork #N 'main' at golden:37 in function <golden:32>]
	[fork #N 'main' started by run() at golden:51 in main chunk]
	golden:51: in main chunk]],
    module_root = [[
stack traceback:
	golden:5: in function 'golden_mod.leaf'
	golden:50: in function 'golden_mod.module_root'  (root of fork #N)
	[fork #N awaited by fork #N 'main' at golden:39 in function <golden:32>]
	golden:39: in function <golden:32>  (root of fork #N 'main')
	[fork #N 'main' started by run() at golden:51 in main chunk]
	golden:51: in main chunk]],
    upvalue_root = [[
stack traceback:
	golden:5: in function 'golden_mod.leaf'
	golden:31: in function 'upvalue_root'  (root of fork #N)
	[fork #N awaited by fork #N 'main' at golden:40 in function <golden:32>]
	golden:40: in function <golden:32>  (root of fork #N 'main')
	[fork #N 'main' started by run() at golden:51 in main chunk]
	golden:51: in main chunk]],
    unbridged = [[
stack traceback:
	golden:5: in function 'golden_mod.leaf'
	golden:41: in function <golden:41>
	[coroutine resumed outside the asyncstack bridge]
	[C]: in function 'coroutine.resume'
	golden:42: in function <golden:32>  (root of fork #N 'main')
	[fork #N 'main' started by run() at golden:51 in main chunk]
	golden:51: in main chunk]],
    deep = DEEP,
    deep_limit = [[
stack traceback:
	golden:5: in function 'golden_mod.leaf'
	golden:13: in upvalue 'deep'
	golden:14: in upvalue 'deep'
	...	(10 more frames omitted)]],
    outside = [[
stack traceback:
	golden:5: in function 'golden_mod.leaf'
	golden:52: in main chunk]],
    traceback = [[
message
stack traceback:
	golden:25: in function 'worker'  (root of fork #N 'worker')]],
    dump_lines = [[
	#0 golden:35 in function <golden:32>
	#0 golden:26 in function 'worker']],
    dump_view = [[
	#0 golden:5 in function 'golden_mod.leaf'
	#1 golden:6 in function <golden:6>
	#2 golden:9 in function <golden:9>
	#3 [C] in function 'pcall'
	#4 golden:9 in function <golden:8>
	[coroutine resumed at golden:20 in function <golden:18>]
	#5 golden:20 in function <golden:18>
	[coroutine resumed at golden:22 in function 'worker']
	#6 golden:22 in function 'worker'
	#7 golden:35 in function <golden:32>
	#8 golden:51 in main chunk]],
    tostring = [[
asyncstack.Exception: broken in golden:29
stack traceback:
	golden:29: in function 'failing'  (root of fork #N)
	[fork #N spawned by fork #N 'main' at golden:45 in function <golden:32>]
	[fork #N 'main' started by run() at golden:51 in main chunk]
	golden:51: in main chunk
rethrown by wait() at golden:47 in fork #N 'main'
stack traceback:
	golden:47: in function <golden:32>  (root of fork #N 'main')]],
    php = [[
#0 golden(29): failing()
#1 golden(45): {closure}()
#2 golden(51): {main chunk}
#3 {main}]],
}

-- Runs the fixture; returns its captures and texts. golden_mod stays in
-- package.loaded (the registry's: busted gives specs one of their own)
-- until `finish` is called: names are looked up when text is made.
local function run_fixture()
  local M, out = {}, {}
  local loaded = debug.getregistry()._LOADED
  loaded.golden_mod = M
  local src = assert(io.open("spec/fixtures/golden_trace.lua")):read("a")
  local co = coroutine.create(assert(load(src, "=golden")))
  assert(coroutine.resume(co, as, core, M, out))
  return out, function() loaded.golden_mod = nil end
end

local function ids(text) return (text:gsub("fork #%d+", "fork #N")) end

local function dump_lines(dump)
  local t = {}
  for l in dump:gmatch("\t[^\n]*") do t[#t + 1] = l end
  return table.concat(t, "\n")
end

describe("asyncstack.trace_text", function()
  local out, finish
  setup(function() out, finish = run_fixture() end)
  teardown(function() finish() end)

  describe("traceback view (core.render(raw, 'traceback'))", function()
    for _, key in ipairs { "nested", "awaited", "combined", "spawned", "module_root",
                           "upvalue_root", "unbridged", "deep", "deep_limit", "outside" } do
      it("gives the exact text of the '" .. key .. "' trace", function()
        assert.are.equal(GOLDEN[key], ids(core.render(out[key], "traceback")))
      end)
    end

    it("puts the message first, and shows an empty capture", function()
      assert.are.equal("stack traceback:", core.render({ n = 0 }, "traceback"))
      assert.are.equal("msg\nstack traceback:", core.render({ n = 0 }, "traceback", "msg"))
      assert.are.equal("a message\n" .. GOLDEN.outside,
                       ids(core.render(out.outside, "traceback", "a message")))
    end)

    it("keeps the shapes the old two-copy spec checked", function()
      local text = ids(core.render(out.nested, "traceback"))
      assert.matches("%(%.%.%.tail calls%.%.%.%)", text)
      assert.matches("%[coroutine resumed at ", text)
      assert.matches("%(root of fork #N 'main'%)", text)
      assert.matches("%[fork #N 'worker' awaited by fork #N 'main' at ",
                     ids(core.render(out.awaited, "traceback")))
      assert.matches("in wait_all %(index 1%)", core.render(out.combined, "traceback"))
      assert.matches("spawned by", core.render(out.spawned, "traceback"))
      assert.matches("outside the asyncstack bridge", core.render(out.unbridged, "traceback"))
      assert.matches("%(skipping %d+ levels%)", core.render(out.deep, "traceback"))
      assert.matches("more frames omitted", core.render(out.deep_limit, "traceback"))
      assert.matches("function 'golden_mod.module_root'", core.render(out.module_root, "traceback"))
      assert.matches("in function 'upvalue_root'  %(root of", core.render(out.upvalue_root, "traceback"))
    end)
  end)

  describe("as.traceback()", function()
    it("gives the exact text inside a fork", function()
      assert.are.equal(GOLDEN.traceback, ids(out.traceback))
    end)

    it("gives the text of the capture of the same frames", function()
      local text, raw
      as.run(function()
        local co = coroutine.wrap(function()
          text, raw = as.traceback("here"), core.capture()
        end)
        co()
      end)
      -- the two calls are on one line: same frames, same lines
      assert.are.equal(core.render(raw, "traceback", "here"), text)
    end)
  end)

  describe("dump view", function()
    it("gives the exact frame lines of as.dump()", function()
      assert.are.equal(GOLDEN.dump_lines, dump_lines(out.dump))
    end)

    it("gives the exact frame lines of a capture", function()
      assert.are.equal(GOLDEN.dump_view, ids(core.render(out.nested, "dump")))
    end)
  end)

  describe("exception views", function()
    it("gives the exact tostring, rethrow section included", function()
      assert.are.equal(GOLDEN.tostring, ids(tostring(out.exception)))
    end)

    it("gives the exact getTraceAsString", function()
      assert.are.equal(GOLDEN.php, out.exception:getTraceAsString())
    end)
  end)

  describe("core.render()", function()
    it("rejects a bad view and a bad capture", function()
      assert.has_error(function() core.render({ n = 0 }, "nope") end,
                       "bad argument #2 to 'render' (invalid option 'nope')")
      assert.has_error(function() core.render(nil, "traceback") end,
                       "bad argument #1 to 'render' (table expected, got nil)")
    end)
  end)
end)
