-- Scale (issue 8, part 4): a million sleeping forks, a chain of 10,000
-- forks waiting on each other, coroutines nested as deep as Lua allows
-- inside a fork; after each, the Lua heap is back where it started.
--
-- The heavy cases are tagged #slow (valgrind and gc-stress leave them out).
-- ASYNCSTACK_SCALE_REPORT=1 prints the numbers (times, heap sizes); `make
-- scale` runs this file that way.
local as = require "asyncstack"

local REPORT = os.getenv("ASYNCSTACK_SCALE_REPORT") == "1"
local SLACK_KB = 256   -- what the heap may differ by after a full collection

local function heap_kb()
  collectgarbage()
  collectgarbage()
  return collectgarbage("count")
end

local function report(fmt, ...)
  if REPORT then io.stdout:write(("scale: " .. fmt .. "\n"):format(...)) end
end

describe("asyncstack at scale", function()
  it("runs 1,000,000 forks sleeping at the same time; the heap returns #slow", function()
    local N = 1000000
    local before = heap_kb()
    local t0 = as.now()
    local sleeping, most, woke, peak_kb = 0, 0, 0, 0
    local until_time
    local function sleeper()
      sleeping = sleeping + 1
      if sleeping > most then most = sleeping end
      as.sleep(math.max(0, until_time - as.now()))
      sleeping = sleeping - 1
      woke = woke + 1
    end
    local spawn_s
    as.run(function()
      for _ = 1, N do as.fork(sleeper) end
      spawn_s = as.now() - t0
      -- every fork starts and sleeps before the first wakes: starting them
      -- costs about what creating them did
      until_time = as.now() + 2 * spawn_s + 0.5
      as.sleep(spawn_s + 0.25)
      peak_kb = collectgarbage("count")
    end)
    local total_s = as.now() - t0
    local after = heap_kb()
    report("1,000,000 sleeping forks: created in %.2fs, all done in %.2fs; Lua heap %.0f KB before, "
           .. "%.0f KB with every fork asleep (%.0f bytes per fork), %.0f KB after",
           spawn_s, total_s, before, peak_kb, (peak_kb - before) * 1024 / N, after)
    assert.are.equal(N, most)
    assert.are.equal(N, woke)
    assert.is_true(peak_kb - before > N * 0.5, "the forks were not all alive at once")
    assert.is_true(math.abs(after - before) < SLACK_KB,
                   ("heap %.0f KB before, %.0f KB after"):format(before, after))
  end)

  it("runs a chain of 10,000 forks each waiting for the next, traced end to end #slow", function()
    local N = 10000
    local before = heap_kb()
    local t0 = as.now()
    local frames_at_bottom, forks_in_trace
    local total = as.run(function()
      local forks = {}
      -- fork i waits for fork i + 1; the last one traces the whole chain
      local function link(i)
        if i == N then
          as.sleep(0.001)
          local frames = as.debug_backtrace { async = true }
          frames_at_bottom = #frames
          local seen = {}
          forks_in_trace = 0
          for _, fr in ipairs(frames) do
            if fr.fork and not seen[fr.fork] then seen[fr.fork] = true; forks_in_trace = forks_in_trace + 1 end
          end
          return 1
        end
        while not forks[i + 1] do as.yield() end
        return 1 + as.wait(forks[i + 1])
      end
      for i = 1, N do forks[i] = as.fork(link, i) end
      return as.wait(forks[1])
    end)
    local elapsed = as.now() - t0
    local after = heap_kb()
    report("10,000-fork wait chain: %.2fs, %d frames in the async trace at its end; heap %.0f KB before, %.0f KB after",
           elapsed, frames_at_bottom, before, after)
    assert.are.equal(N, total)
    assert.are.equal(N + 1, forks_in_trace)   -- the chain and run()'s root
    assert.is_true(math.abs(after - before) < SLACK_KB,
                   ("heap %.0f KB before, %.0f KB after"):format(before, after))
  end)

  describe("coroutines nested inside a fork", function()
    -- level(n): a coroutine.wrap generator n deep; the innermost sleeps,
    -- which suspends the fork through every level, then traces itself
    local function nested(depth, at_bottom)
      local function level(n)
        if n == 0 then return at_bottom() end
        local r = coroutine.wrap(level)(n - 1)
        return r
      end
      return level(depth)
    end

    -- The deepest nesting inside a fork: found by trying, since it depends
    -- on Lua's C-call limit (LUAI_MAXCCALLS, 200) minus what run() uses.
    local function deepest()
      local lo, hi = 1, 400
      while hi - lo > 1 do
        local mid = (lo + hi) // 2
        if pcall(as.run, function() return nested(mid, function() return true end) end) then lo = mid
        else hi = mid end
      end
      return lo
    end

    it("go as deep as Lua allows, blocked at the bottom, traced through every level", function()
      local before = heap_kb()
      local max = deepest()
      local coroutine_boundaries, result
      result = as.run(function()
        return nested(max, function()
          as.sleep(0.001)   -- suspends the fork through `max` bridged resumes
          local frames = as.debug_backtrace()
          coroutine_boundaries = 0
          for _, fr in ipairs(frames) do
            if fr.boundary == "coroutine" then coroutine_boundaries = coroutine_boundaries + 1 end
          end
          return "bottom"
        end)
      end)
      local after = heap_kb()
      report("nested coroutines in a fork: %d levels at most (plain Lua outside run(): %d)",
             max, (function()
               local function plain(n) if n == 0 then return true end return coroutine.wrap(plain)(n - 1) end
               local lo, hi = 1, 400
               while hi - lo > 1 do
                 local mid = (lo + hi) // 2
                 if pcall(plain, mid) then lo = mid else hi = mid end
               end
               return lo
             end)())
      assert.is_true(max >= 150, "only " .. max .. " levels")
      assert.are.equal("bottom", result)
      assert.are.equal(max, coroutine_boundaries)
      assert.is_true(math.abs(after - before) < SLACK_KB)
    end)

    it("fail with a clean 'C stack overflow' error one level past the limit, or 10,000 deep", function()
      local before = heap_kb()
      local max = deepest()
      for _, depth in ipairs({ max + 1, 10000 }) do
        local ok, e = pcall(as.run, function()
          return nested(depth, function() as.sleep(0); return "bottom" end)
        end)
        assert.is_false(ok)
        assert.is_true(as.ErrorException:is(e))
        assert.matches(": C stack overflow$", e:getMessage())
        -- and the scheduler is fine afterwards
        assert.are.equal("again", as.run(function()
          return nested(10, function() as.sleep(0); return "again" end)
        end))
      end
      local after = heap_kb()
      assert.is_true(math.abs(after - before) < SLACK_KB)
    end)

    it("hold 200 forks blocked 150 coroutines deep at once; the heap returns #slow", function()
      local before = heap_kb()
      local blocked, most = 0, 0
      local results = as.run(function()
        local forks = {}
        for i = 1, 200 do
          forks[i] = as.fork(function()
            return nested(150, function()
              blocked = blocked + 1
              if blocked > most then most = blocked end
              as.sleep(0.02)
              blocked = blocked - 1
              return i
            end)
          end)
        end
        local sum = 0
        for i = 1, 200 do sum = sum + as.wait(forks[i]) end
        return sum
      end)
      local after = heap_kb()
      assert.are.equal(200 * 201 / 2, results)
      assert.are.equal(200, most)
      assert.is_true(math.abs(after - before) < SLACK_KB,
                     ("heap %.0f KB before, %.0f KB after"):format(before, after))
    end)
  end)
end)
