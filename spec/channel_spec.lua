local as = require "asyncstack"
local helper = require "spec.helper"
local error_of = helper.error_of

describe("asyncstack.channel", function()
  describe("channel()", function()
    it("makes buffered channels that keep order", function()
      local got = as.run(function()
        local ch = as.channel(3)
        for i = 1, 3 do ch:send(i) end          -- fits: nobody blocks
        assert.are.equal(3, ch:len())
        assert.are.equal(3, ch:cap())
        local out = {}
        for _ = 1, 3 do out[#out + 1] = ch:recv() end
        return out
      end)
      assert.are.same({ 1, 2, 3 }, got)
    end)

    it("blocks a sender on a full buffer until a receiver takes a value", function()
      local log = {}
      as.run(function()
        local ch = as.channel(1)
        local producer = as.fork(function()
          for i = 1, 3 do ch:send(i); log[#log + 1] = "sent " .. i end
        end)
        as.yield()
        assert.are.equal("waiting", producer:status())
        for _ = 1, 3 do
          local v = ch:recv()       -- before indexing log: recv may block
          log[#log + 1] = "got " .. v
        end
        as.wait(producer)
      end)
      assert.are.same({ "sent 1", "got 1", "got 2", "sent 2", "sent 3", "got 3" }, log)
    end)

    it("is a rendezvous with capacity 0", function()
      local order = {}
      as.run(function()
        local ch = as.channel()
        as.fork(function()
          order[#order + 1] = "send starts"
          ch:send("x")
          order[#order + 1] = "send returned"
        end)
        as.yield()
        local v = ch:recv()
        order[#order + 1] = "recv " .. v
        as.yield()
      end)
      assert.are.same({ "send starts", "recv x", "send returned" }, order)
    end)

    it("serves blocked receivers first-in first-out", function()
      local got = {}
      as.run(function()
        local ch = as.channel()
        for i = 1, 3 do
          as.fork(function()
            local v = ch:recv()
            got[#got + 1] = i .. ":" .. v
          end)
        end
        as.yield()
        for _, v in ipairs({ "a", "b", "c" }) do ch:send(v) end
      end)
      assert.are.same({ "1:a", "2:b", "3:c" }, got)
    end)

    it("shows a blocked send or recv as an await point in dumps and traces", function()
      local text, frames
      as.run(function()
        local ch = as.channel()
        local f = as.fork(function() ch:recv() end)   -- RECV_LINE
        f:name("reader")
        as.yield()
        text = as.dump { fork = f:id() }
        frames = as.fork_backtrace(f)
        ch:close()
      end)
      assert.matches("^fork #%d+ 'reader' %[waiting on channel #%d+ %(recv%) for %d+ms%]", text)
      assert.matches("channel_spec.lua$", frames[1].file)
    end)
  end)

  describe("close()", function()
    it("lets buffered values drain, then recv gives nil, 'closed'", function()
      local out = as.run(function()
        local ch = as.channel(2)
        ch:send("a")
        assert.is_true(ch:close())
        assert.is_false(ch:close())
        assert.is_true(ch:is_closed())
        return { ch:recv(), select("#", ch:recv()), (select(2, ch:recv())) }
      end)
      assert.are.same({ "a", 2, "closed" }, out)
    end)

    it("wakes blocked receivers with nil, 'closed' and makes blocked senders raise", function()
      local recv_result, send_error
      as.run(function()
        local a, b = as.channel(), as.channel()
        local r = as.fork(function() recv_result = { a:recv() } end)
        local s = as.fork(function() send_error = error_of(function() b:send(1) end) end)
        as.yield()
        a:close()
        b:close()
        as.wait(r)
        as.wait(s)
      end)
      assert.are.same({ nil, "closed" }, recv_result)
      assert.matches("^send: channel #%d+ was closed while sending$", send_error)
    end)

    it("iterates with a generic for until closed (ch() is ch:recv())", function()
      local sum = as.run(function()
        local ch = as.channel(4)
        as.fork(function() for i = 1, 10 do ch:send(i) end; ch:close() end)
        local total = 0
        for v in ch do total = total + v end
        return total
      end)
      assert.are.equal(55, sum)
    end)

    it("closes on leaving a <close> scope", function()
      local ch
      as.run(function()
        do
          local scoped <close> = as.channel(1)
          ch = scoped
        end
      end)
      assert.is_true(ch:is_closed())
    end)
  end)

  describe("timeouts", function()
    it("raise as.Timeout from send and recv, leaving the channel usable", function()
      local recv_err, send_err, after = nil, nil, nil
      as.run(function()
        local ch = as.channel()
        recv_err = error_of(function() ch:recv(0.01) end)
        send_err = error_of(function() ch:send(1, 0.01) end)
        as.fork(function() ch:send("later") end)
        after = ch:recv(1)
      end)
      assert.is_true(as.Timeout:is(recv_err))
      assert.matches("^recv: timed out on channel #%d+$", recv_err:getMessage())
      assert.matches("^send: timed out on channel #%d+$", send_err:getMessage())
      assert.are.equal("later", after)
    end)
  end)

  describe("bad arguments", function()
    it("rejects a bad capacity", function()
      assert.are.equal("bad argument #1 to 'channel' (capacity must be a non-negative integer)",
                       error_of(function() as.channel(-1) end))
      assert.are.equal("bad argument #1 to 'channel' (number has no integer representation)",
                       error_of(function() as.channel(1.5) end))
      assert.are.equal("bad argument #1 to 'channel' (number expected, got string)",
                       error_of(function() as.channel("x") end))
    end)

    it("rejects nil values, bad timeouts and a bad self", function()
      local ch = as.channel(1)
      assert.are.equal("bad argument #1 to 'send' (non-nil value expected)",
                       error_of(function() ch:send(nil) end))
      assert.are.equal("bad argument #2 to 'send' (timeout must be a non-negative number)",
                       error_of(function() ch:send(1, -1) end))
      assert.are.equal("bad argument #1 to 'recv' (timeout must be a non-negative number)",
                       error_of(function() ch:recv(0 / 0) end))
      assert.are.equal("bad argument #1 to 'recv' (asyncstack.Channel expected, got table)",
                       error_of(function() ch.recv({}) end))
    end)

    it("refuses a send after close and blocking outside run()", function()
      local ch = as.channel()
      assert.matches("^recv: not inside asyncstack.run%(%)$", error_of(function() ch:recv() end))
      ch:close()
      assert.matches("^send: channel #%d+ is closed$", error_of(function() ch:send(1) end))
    end)
  end)
end)
