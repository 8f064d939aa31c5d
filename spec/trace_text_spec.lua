-- The trace text is built twice: in C from a raw capture (as.traceback,
-- core.format_trace: the fast path of bench/run.lua row 5) and in Lua from
-- frame tables (trace.format: exceptions, dumps). They must agree byte for
-- byte on every shape a trace can take.
local as = require "asyncstack"
local core = require "asyncstack.core"
local trace = require "asyncstack.trace"

local original_resume = coroutine.resume   -- unbridged: taken before any run()

-- Formats `raw` both ways, checks they agree, returns the text.
local function same_text(raw, msg)
  local c_text = core.format_trace(msg, raw)
  local lua_text = trace.format(msg, core.expand(raw))
  assert.are.equal(lua_text, c_text)
  return c_text
end

local captured
local function capture(opts) captured = core.capture(opts) end

describe("asyncstack.trace_text", function()
  describe("core.format_trace()", function()
    it("agrees with trace.format outside run", function()
      capture()
      local text = same_text(captured)
      assert.matches("^stack traceback:\n\t", text)
      same_text(captured, "a message")
    end)

    it("agrees with trace.format for an empty capture", function()
      local text = same_text({ n = 0 })
      assert.are.equal("stack traceback:", text)
      assert.are.equal("msg\nstack traceback:", same_text({ n = 0 }, "msg"))
    end)

    it("agrees across nested coroutines, tail calls and pcall", function()
      local function leaf() capture({ async = true }) end
      local function middle() return leaf() end          -- tail call
      local function gen()
        pcall(function() middle() end)
        coroutine.yield(1)
      end
      as.run(function()
        local co = coroutine.wrap(function()
          local inner = coroutine.wrap(gen)
          return inner()                                   -- hidden tail call
        end)
        co()
      end)
      local text = same_text(captured, "nested")
      assert.matches("%(%.%.%.tail calls%.%.%.%)", text)
      assert.matches("%[coroutine resumed at ", text)
      assert.matches("%(root of fork #%d+ 'main'%)", text)
    end)

    it("agrees across awaited, combinator, spawned and run boundaries", function()
      local awaited, combined, spawned
      as.run(function()
        local worker = as.fork(function()
          as.sleep(0)
          capture({ async = true })
          awaited = captured
        end)
        worker:name("worker")
        as.wait(worker)
      end)
      as.run(function()
        local a = as.fork(function()
          as.sleep(0)
          capture({ async = true })
          combined = captured
        end)
        as.wait_all({ a, as.fork(function() as.sleep(0.01) end) })
      end)
      as.run(function()
        as.fork(function()
          capture({ async = true })
          spawned = captured
        end)
        as.sleep(0.01)
      end)
      local text = same_text(awaited)
      assert.matches("%[fork #%d+ 'worker' awaited by fork #%d+ 'main' at ", text)
      assert.matches("started by run%(%)", text)
      assert.matches("in wait_all %(index 1%)", same_text(combined))
      assert.matches("spawned by", same_text(spawned))
    end)

    it("agrees for a coroutine resumed outside the bridge", function()
      as.run(function()
        local co = coroutine.create(function() capture({ async = true }) end)
        original_resume(co)
      end)
      assert.matches("outside the asyncstack bridge", same_text(captured))
    end)

    it("agrees when frames are omitted or skipped", function()
      local function deep(n, opts)
        if n == 0 then capture(opts) return 0 end
        local r = deep(n - 1, opts)
        return r
      end
      as.run(function()
        deep(250)
        assert.matches("%(skipping %d+ levels%)", same_text(captured))
        deep(10, { limit = 3 })
        assert.matches("more frames omitted", same_text(captured))
      end)
    end)

    it("agrees when a fork's root is named by a module or an upvalue", function()
      -- the registry's table: busted gives specs a package.loaded of their own
      local loaded = debug.getregistry()._LOADED
      local module = {}
      loaded["trace_text_fixture"] = module
      function module.root_fn() capture({ async = true }) end
      local function upvalue_root() capture({ async = true }) end
      local texts = {}
      as.run(function()
        as.wait(as.fork(module.root_fn))
        texts.module = captured
        as.wait(as.fork(upvalue_root))
        texts.upvalue = captured
      end)
      -- names are looked up when the text is made, not at capture
      local module_text = same_text(texts.module)
      loaded["trace_text_fixture"] = nil
      assert.matches("function 'trace_text_fixture.root_fn'", module_text)
      assert.matches("in function 'upvalue_root'  %(root of", same_text(texts.upvalue))
    end)
  end)

  describe("as.traceback()", function()
    it("gives the text trace.format gives for the same frames", function()
      local text, frames
      as.run(function()
        local co = coroutine.wrap(function()
          text, frames = as.traceback("here"), as.debug_backtrace()
        end)
        co()
      end)
      -- the two calls are on one line: same frames, same lines
      assert.are.equal(trace.format("here", frames), text)
    end)

    it("uses a 'format' hook when the policy sets one", function()
      local got_msg, got_frames
      core.set_hook("format", function(msg, frames)
        got_msg, got_frames = msg, frames
        return "custom text"
      end)
      local ok, text = pcall(as.run, function() return as.traceback("m") end)
      core.set_hook("format", nil)
      assert.is_true(ok, text)
      assert.are.equal("custom text", text)
      assert.are.equal("m", got_msg)
      assert.are.equal("table", type(got_frames[1]))
    end)
  end)
end)
