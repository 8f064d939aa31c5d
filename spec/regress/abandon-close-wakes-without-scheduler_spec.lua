-- Found by the reliability work (issue 8, channels in the random programs):
-- when run() abandons the forks still live (the root failed, or a
-- deadlock), it closes their coroutines with st->sched already NULL. A
-- <close> handler (or pcall cleanup) that closes a channel, sends on it or
-- receives from it then wakes another abandoned fork that is still queued
-- on that channel: as_sched_wake(L, st->sched = NULL, ...) dereferences
-- NULL (unblock -> timer_remove, runq_push) and the process dies of SIGSEGV.
--
--   local as = require "asyncstack"
--   pcall(as.run, function()
--     local ch = as.channel()
--     as.fork(function()
--       local c <close> = ch          -- closes the channel when it unwinds
--       as.sleep(10)
--     end)
--     as.fork(function() ch:recv() end)
--     as.yield()
--     error("root fails: both forks are abandoned")
--   end)
--   print("survived")                  -- never printed: Segmentation fault
--
-- The same with ch:send(1) or ch:recv() in a __close handler, and with a
-- deadlock instead of the root's error. The order matters: the fork holding
-- the channel must be abandoned before the one blocked on it (abandon_live
-- walks the live slots in order; the blocked fork is unlinked from the
-- channel only when its own turn comes).
--
-- Where: src/sched.c abandon_live (and channel.c close/send/recv, which
-- call as_sched_wake with st->sched). Unlink every abandoned fork from what
-- it waits on (unblock) in a first pass before closing any coroutine, or
-- make the wakers do nothing when no scheduler runs.
--
-- The random programs (spec/random/generator.lua, chan op, "tbc" producer)
-- found it: seed 8101948 died this way (its root fails while fork 2, a
-- producer holding its channel in a <close> variable, is live and its
-- consumer, fork 6, waits in recv on that channel; under ASan+UBSan:
-- "src/sched.c:47: member access within null pointer" in runq_push <-
-- as_sched_wake <- channel_close <- abandon_live).
--
-- Fixed (ab6e300): abandoning unblocks every fork first, then closes the
-- coroutines; waking without a scheduler does nothing. The random programs
-- now always hold the "tbc" producer's channel over its sends.
local helper = require "spec.helper"


local SCRIPT = [[
local as = require "asyncstack"
local mode = %q
local ok, err = pcall(as.run, function()
  local ch = as.channel()
  as.fork(function()
    local g <close> = setmetatable({}, { __close = function()
      if mode == "send" then ch:send(1)
      elseif mode == "recv" then ch:recv()
      else ch:close() end
    end })
    as.sleep(math.huge)
  end)
  if mode == "recv" then as.fork(function() ch:send(5) end)
  else as.fork(function() ch:recv() end) end
  as.yield()
  if mode ~= "deadlock" then error("root fails", 0) end
end)
print("survived", ok, type(err))
]]

describe("regression: abandon-close-wakes-without-scheduler", function()
  for _, mode in ipairs { "close", "send", "recv", "deadlock" } do
    it(("survives a <close> handler that does ch:%s on abandonment (%s) #child")
         :format(mode == "deadlock" and "close" or mode, mode == "deadlock" and "a deadlock" or "the root failed"),
       function()
      local out, status = helper.run_child(SCRIPT:format(mode))
      assert.are.equal(0, status, out)
      assert.matches("survived\tfalse\t", out)
    end)
  end
end)
