-- Found by the reliability work (issue 8, cancel next to channels): a
-- channel operation that has completed can still end in as.Cancelled, and
-- the value it moved is lost (or sent twice).
--
-- recv: a sender hands its value to a blocked receiver (give_to_receiver
-- pushes it onto the receiver's stack and wakes it, AS_WAKE_READY; send
-- returns true). If the receiver is cancelled before it runs again,
-- sched_cancel overwrites its wake with AS_WAKE_CANCEL, recv_k raises
-- as.Cancelled, and the value, already taken out of the channel, is gone:
--
--   local as = require "asyncstack"
--   as.run(function()
--     local ch = as.channel()
--     local got = "nothing"
--     local r = as.fork(function() got = ch:recv() end)
--     as.yield()                       -- r blocks in recv
--     assert(ch:send("precious"))      -- true: handed to r
--     r:cancel()                       -- true
--     print(as.pwait(r), got, ch:len()) --> false  Cancelled  nothing  0
--   end)
--
-- send: the same the other way: a receiver takes a blocked sender's value
-- (take_value wakes the sender READY); cancelled before it runs, the
-- sender's send raises as.Cancelled although the value was delivered, and a
-- sender that retries after catching it sends it twice.
--
-- Where: src/sched.c sched_cancel (a RUNNABLE fork's wake READY is
-- overwritten) and the continuations send_k / recv_k. An operation that has
-- completed should return its result and leave the cancel pending
-- (cancel_requested) for the next blocking call, as for a fork cancelling
-- itself; the same holds for a wait whose target has already ended.
--
-- Fixed (d87e716): a fork woken because its operation completed keeps the
-- result; the cancel stays pending for its next blocking call.
local as = require "asyncstack"


describe("regression: channel-value-lost-on-cancel", function()
  it("a value handed to a receiver is not lost when the receiver is cancelled before it runs", function()
    local got, sent, len
    as.run(function()
      local ch = as.channel()
      local r = as.fork(function()
        got = ch:recv()
        as.sleep(0)                      -- the cancel may land here instead
      end)
      as.yield()
      sent = ch:send("precious")
      r:cancel()
      as.pwait(r)
      len = ch:len()
    end)
    assert.is_true(sent)
    assert.are.equal(0, len)
    assert.are.equal("precious", got)    -- today: nil, the value is gone
  end)

  it("a send whose value was taken does not raise Cancelled (its value would be sent twice)", function()
    local outcome, received
    as.run(function()
      local ch = as.channel()
      local s = as.fork(function()
        local ok = ch:send("once")
        outcome = ok
        as.sleep(0)
      end)
      as.yield()                           -- s blocks in send
      received = ch:recv()                 -- takes "once", wakes s
      s:cancel()
      as.pwait(s)
    end)
    assert.are.equal("once", received)
    assert.is_true(outcome)                -- today: send raised as.Cancelled
  end)
end)
