-- Issue 8, found by the random programs (tools/replay.lua 460 --strict: a
-- fork's "<<E2>>" failure got the trace of an earlier program's generator).
--
-- When a plain error leaves a generator through the bridge, its raise-site
-- trace is stashed (src/bridge.c stash_error_trace) for as_bridge_take_stash to
-- pick up when the value ends a fork or reaches as.pcall. If the error is
-- caught by anything else (plain pcall, a resume that returns false), the
-- entry stays, across forks and across run() calls. as_bridge_take_stash
-- matches by value, and equal strings are the same value: a later,
-- unrelated error with the same text gets the old trace, with frames of
-- another fork (or of a run that has ended).
--
-- Where: src/bridge.c stash_error_trace / as_bridge_take_stash (and
-- sched.c fail(), exception.c to_exception which trust it). The
-- stash should not outlive the error's propagation: e.g. stamp it with the
-- fork and the coroutine it came out of and have as_bridge_take_stash check
-- that the error comes out of that very resume, or drop it when the bridged
-- resume/wrap call returns to a caller that handles the error.
local as = require "asyncstack"

describe("regression: stale-error-trace", function()
  local function generator_body() error("boom", 0) end
  local function raiser() error("boom", 0) end

  it("gives a fork's plain error the trace of its own raise site", function()
    local e, spawned_id
    as.run(function()
      pcall(coroutine.wrap(generator_body))      -- caught: the stash entry stays
      local f = as.fork(raiser)
      spawned_id = f:id()
      e = select(2, as.pwait(f))
    end)
    local first = e:getTrace()[2]                -- [1] is [C] error
    assert.are.equal(raiser, first.func)
    assert.are.equal(spawned_id, first.fork)
  end)

  it("does not carry a trace from one run() into the next", function()
    as.run(function() pcall(coroutine.wrap(generator_body)) end)
    local ok, e = as.run(function() return as.pcall(raiser) end)
    assert.is_false(ok)
    assert.are.equal(raiser, e:getTrace()[2].func)
  end)
end)
