-- Issue 13, D12 (the scheduler's part): values were copied off another
-- coroutine with lua_pushvalue onto that coroutine, whose stack may have no
-- room left (a coroutine that returned or raised leaves none): sched.c
-- `fail` on every fork failure (the error value), wait.c `deliver` and
-- wait_all for the results of a fork that returned, channel.c for a blocked
-- sender's value; and fork.c copied a fork's function and arguments onto
-- the caller's stack without making room (found by this spec: 20
-- arguments to as.fork). A C API violation: Lua built with LUA_USE_APICHECK
-- aborts ("lua_pushvalue: ... stack overflow"); the stock lua5.4 does not
-- check and runs on.
--
-- Where: src/module.h as_push_from_thread makes the slot first (and raises
-- in the caller when it cannot); sched.c `fail` moves the error value off
-- the fork's coroutine and back instead of copying it there; as_fork_new
-- checks both stacks first.
--
-- This spec fails only under a Lua with API checks (make test-apicheck);
-- under the stock lua5.4 it checks the outcomes only.
local as = require "asyncstack"

describe("regression: 11-push-onto-full-thread", function()
  it("takes a failed fork's error, and a fork's many results, without pushing onto its coroutine", function()
    local got = as.run(function()
      local out = {}
      local failing = as.fork(function(...) error({ select("#", ...) }) end,
                              1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20)
      local ok, e = as.pwait(failing)
      out[1] = { ok, e:getOriginal()[1] }
      local many = as.fork(function()
        local t = {}
        for i = 1, 200 do t[i] = i end
        return table.unpack(t)
      end)
      local r = table.pack(as.wait(many))
      out[2] = { r.n, r[200] }
      local all = as.wait_all({ many, many })
      out[3] = { all.n, all[1] }
      local ch = as.channel()
      local sender = as.fork(function() ch:send("v") end)
      as.yield()                       -- the sender blocks in send
      out[4] = { ch:recv() }
      as.wait(sender)
      return out
    end)
    assert.are.same({ { false, 20 }, { 200, 200 }, { 2, 1 }, { "v" } }, got)
  end)
end)
