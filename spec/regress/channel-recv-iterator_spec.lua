-- Found by the reliability work (issue 8, channels in the random programs):
-- README's idiom for draining a channel,
--
--   for v in ch.recv, ch do print(v) end
--
-- works only by accident. A generic `for` calls ch.recv(ch, previous_value),
-- and recv's second argument is its timeout: every value received becomes
-- the timeout of the next recv. README's own example sends 1, 2, 3, so it
-- waits with timeouts of 1 and 2 seconds; other values break the loop:
--
--   local as = require "asyncstack"
--   as.run(function()
--     local ch = as.channel(8)
--     as.fork(function()
--       for _, v in ipairs { "a", "b" } do ch:send(v); as.sleep(0.002) end
--       ch:close()
--     end)
--     for v in ch.recv, ch do print(v) end
--   end)
--   --> a, then: bad argument #2 to 'for iterator' (number expected, got string)
--
-- With a 0 the next recv times out (as.Timeout) if the value is not already
-- buffered; a negative number raises "timeout must be a non-negative
-- number"; a table raises too.
--
-- Where: the documented idiom (README "Channels, combinators, cancellation,
-- fds") against src/channel.c channel_recv. Either document
-- `for v in function() return ch:recv() end do`, or give channels an
-- iterator (ch:values(), or __call) that calls recv without a timeout.
--
-- Fixed: channels have __call (ch() is ch:recv() without a timeout) and
-- README documents `for v in ch do`; the random programs' consumers drain
-- with it too (and with a closure, and recv in a loop).
local as = require "asyncstack"

local function drain(values)
  return pcall(as.run, function()
    local ch = as.channel(8)
    as.fork(function()
      for _, v in ipairs(values) do
        ch:send(v)
        as.sleep(0.002)
      end
      ch:close()
    end)
    local got = {}
    for v in ch do got[#got + 1] = v end   -- the idiom README documents now
    return got
  end)
end

describe("regression: channel-recv-iterator", function()
  it("README's `for v in ch` drains a channel of strings", function()
    local ok, got = drain { "a", "b" }
    assert.is_true(ok, tostring(got))
    assert.are.same({ "a", "b" }, got)
  end)

  it("README's `for v in ch` drains a channel of zeros and negative numbers", function()
    local ok, got = drain { 0, -1, 2 }
    assert.is_true(ok, tostring(got))
    assert.are.same({ 0, -1, 2 }, got)
  end)
end)
