local as = require "asyncstack"
local helper = require "spec.helper"
local error_of = helper.error_of

-- Frames of this file only, as "function@line" (or "?@line").
local function mine(frames)
  local out = {}
  for _, fr in ipairs(frames) do
    if fr.file and fr.file:find("backtrace_spec.lua", 1, true) then
      out[#out + 1] = (fr["function"] or "?") .. "@" .. tostring(fr.line)
    end
  end
  return out
end

local function line_of(pattern)
  local n = 0
  for line in io.lines("spec/backtrace_spec.lua") do
    n = n + 1
    if line:find(pattern, 1, true) then return n end
  end
  error("no line with " .. pattern)
end

describe("asyncstack.backtrace", function()
  describe("debug_backtrace()", function()
    it("gives the fields of each frame, current frame first", function()
      local frames
      local function leaf() frames = as.debug_backtrace() end  -- LEAF_LINE
      as.run(function()
        leaf()
      end)
      local top = frames[1]
      assert.are.equal("leaf", top["function"])
      assert.are.equal("upvalue", top.namewhat)
      assert.are.equal("Lua", top.what)
      assert.are.equal(line_of("-- LEAF_LINE"), top.line)
      assert.matches("backtrace_spec.lua$", top.file)
      assert.are.equal("function", type(top.func))
      assert.is_number(top.fork)
      assert.are.equal("main", top.fork_name)
      assert.is_true(frames[#frames].root)
      assert.are.equal(2, #frames)
    end)

    it("crosses coroutine boundaries down to the fork root and marks them", function()
      local frames
      as.run(function()
        local f = as.fork(function()
          local gen = coroutine.wrap(function()
            as.sleep(0.001)
            local inner = coroutine.create(function()
              as.sleep(0.001)
              frames = as.debug_backtrace()
            end)
            assert(coroutine.resume(inner))
          end)
          gen()
        end)
        f:name("worker")
        as.wait(f)
      end)
      assert.are.equal(3, #frames)
      assert.is_nil(frames[1].boundary)
      assert.are.equal("coroutine", frames[2].boundary)
      assert.are.equal("coroutine", frames[3].boundary)
      assert.is_true(frames[3].root)
      for _, fr in ipairs(frames) do assert.are.equal("worker", fr.fork_name) end
    end)

    it("ends at the fork root unless async is asked for", function()
      local own, async
      as.run(function()
        local f = as.fork(function()
          own = as.debug_backtrace()
          async = as.debug_backtrace { async = true }
        end)
        as.wait(f)
      end)
      assert.are.equal(1, #own)
      assert.is_true(own[1].root)
      -- fork frame, waiter's frame, then run()'s caller
      assert.are.equal("awaited", async[2].boundary)
      assert.are.equal(own[1].fork, async[2].from_fork)
      local last_fork_frame
      for i, fr in ipairs(async) do
        if fr.boundary == "run" then last_fork_frame = i - 1 end
      end
      assert.is_truthy(last_fork_frame)
      assert.is_nil(async[#async].fork)
    end)

    it("follows the spawn site when nobody waits", function()
      local frames
      as.run(function()
        as.fork(function() frames = as.debug_backtrace { async = true } end)  -- SPAWN_LINE
      end)
      assert.are.equal("spawned", frames[2].boundary)
      assert.is_true(frames[2].spawn_site)
      assert.are.equal(line_of("-- SPAWN_LINE"), frames[2].line)
      assert.are.equal(frames[1].fork, frames[2].from_fork)
    end)

    it("lists every fork of a long chain of waiters in order", function()
      local frames
      local function chain(n)
        if n == 0 then
          frames = as.debug_backtrace { async = true }
          return
        end
        as.wait(as.fork(chain, n - 1))
      end
      as.run(chain, 50)
      local forks = {}
      for _, fr in ipairs(frames) do
        if fr.fork and forks[#forks] ~= fr.fork then forks[#forks + 1] = fr.fork end
      end
      assert.are.equal(51, #forks)
      for i = 2, #forks do assert.is_true(forks[i] < forks[i - 1]) end
    end)

    it("caps the frames with limit and skips with level", function()
      local all, capped, skipped
      local function deep(n)
        if n == 0 then
          all = as.debug_backtrace()
          capped = as.debug_backtrace { limit = 3 }
          skipped = as.debug_backtrace { level = 3 }
          return
        end
        deep(n - 1)
      end
      as.run(function() deep(5) end)
      assert.are.equal(3, #capped)
      assert.are.equal(#all - 2, #skipped)
      assert.are.equal(7, #mine(all))  -- deep(0) .. deep(5), the fork's root function
      assert.are.equal(all[3].line, skipped[1].line)
    end)

    it("hides the scheduler and bridge internals", function()
      local frames
      as.run(function()
        local gen = coroutine.wrap(function() frames = as.debug_backtrace { async = true } end)
        gen()
      end)
      for _, fr in ipairs(frames) do
        assert.is_falsy(fr.source and fr.source:find("asyncstack/init.lua", 1, true))
        assert.are_not.equal("debug_backtrace", fr["function"])
        assert.are_not.equal("wrap", fr["function"])
      end
    end)

    it("gives the plain Lua walk outside forks", function()
      local frames = as.debug_backtrace()
      local info = debug.getinfo(1, "Sl")
      assert.are.equal(info.short_src, frames[1].file)
      assert.are.equal(info.currentline - 1, frames[1].line)
      assert.is_nil(frames[1].fork)
      local depth = 0
      while debug.getinfo(depth + 1) do depth = depth + 1 end
      assert.are.equal(depth, #frames)
    end)

    describe("bad arguments", function()
      it("rejects options that are not a table", function()
        assert.are.equal("bad argument #1 to 'debug_backtrace' (table expected, got number)",
                         error_of(function() as.debug_backtrace(1) end))
      end)

      it("rejects bad level and limit options", function()
        assert.are.equal("bad option 'limit' to 'debug_backtrace' (positive integer expected, got 0)",
                         error_of(function() as.debug_backtrace { limit = 0 } end))
        assert.are.equal("bad option 'level' to 'debug_backtrace' (positive integer expected, got string)",
                         error_of(function() as.debug_backtrace { level = "x" } end))
      end)
    end)
  end)

  describe("traceback()", function()
    it("renders the walk in debug.traceback's format with async markers", function()
      local text
      local function leaf() text = as.traceback("msg", 1, { async = true }) end
      as.run(function()
        local f = as.fork(function()
          local gen = coroutine.wrap(function() leaf(); coroutine.yield() end)
          gen()
        end)
        f:name("w")
        as.wait(f)
      end)
      local lines = {}
      for l in text:gmatch("[^\n]+") do lines[#lines + 1] = l end
      assert.are.equal("msg", lines[1])
      assert.are.equal("stack traceback:", lines[2])
      assert.matches("^\tspec/backtrace_spec.lua:%d+: in upvalue 'leaf'$", lines[3])
      assert.matches("^\tspec/backtrace_spec.lua:%d+: in function <spec/backtrace_spec.lua:%d+>$", lines[4])
      assert.matches("^\t%[coroutine resumed at spec/backtrace_spec.lua:%d+ in function <spec/backtrace_spec.lua:%d+>%]$", lines[5])
      assert.matches("%(root of fork #%d+ 'w'%)$", lines[6])
      assert.matches("^\t%[fork #%d+ 'w' awaited by fork #%d+ 'main' at spec/backtrace_spec.lua:%d+ in function <spec/backtrace_spec.lua:%d+>%]$", lines[7])
      assert.matches("%(root of fork #%d+ 'main'%)$", lines[8])
      assert.matches("^\t%[fork #%d+ 'main' started by run%(%) at ", lines[9])
    end)

    it("is exactly debug.traceback outside forks", function()
      local mine_tb, lua_tb = as.traceback("m"), debug.traceback("m")
      -- same frames except the calling line
      assert.are.equal(select(2, lua_tb:gsub("\n", "")), select(2, mine_tb:gsub("\n", "")))
      assert.are.equal((lua_tb:gsub("backtrace_spec.lua:%d+", "")), (mine_tb:gsub("backtrace_spec.lua:%d+", "")))
    end)

    it("returns a non-string message untouched", function()
      local t = {}
      assert.are.equal(t, as.traceback(t))
      as.run(function() assert.are.equal(t, as.traceback(t)) end)
    end)

    it("bounds very long traces with a skipping line", function()
      local text
      local function deep(n)
        if n == 0 then text = as.traceback(); return end
        deep(n - 1)
      end
      as.run(function() deep(500) end)
      assert.matches("\n\t%.%.%.\t%(skipping %d+ levels%)\n", text)
      local n = select(2, text:gsub("\n", ""))
      assert.is_true(n < 210)
    end)

    describe("bad arguments", function()
      it("rejects a non-integer level", function()
        assert.are.equal("bad argument #2 to 'traceback' (number has no integer representation)",
                         error_of(function() as.traceback("m", 1.5) end))
        assert.are.equal("bad argument #3 to 'traceback' (table expected, got string)",
                         error_of(function() as.traceback("m", 1, "x") end))
      end)
    end)
  end)

  describe("fork_backtrace()", function()
    it("shows where a suspended fork waits", function()
      local frames
      as.run(function()
        local f = as.fork(function() as.sleep(0.01) end)  -- SLEEPER_LINE
        as.yield()
        frames = as.fork_backtrace(f)
      end)
      assert.are.equal(1, #frames)
      assert.are.equal(line_of("-- SLEEPER_LINE"), frames[1].line)
    end)

    describe("bad arguments", function()
      it("rejects a non-fork", function()
        assert.are.equal("bad argument #1 to 'fork_backtrace' (asyncstack.Fork expected, got boolean)",
                         error_of(function() as.fork_backtrace(true) end))
      end)
    end)
  end)
end)
