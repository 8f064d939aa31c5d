-- The signals asyncstack handles (the dump signal, the crash handler's, and
-- SIGINT during a run), sent while the process blocks in a system call: a
-- read from a fifo, a read from io.popen, epoll_wait and clock_nanosleep
-- (the scheduler's idle waits), in and out of runs (issue 13, "testing that
-- keeps them fixed", item 3). Each case is a child process (tagged #child)
-- that sends itself the signal 0.2 s into a 0.6 s block; `make asan` runs
-- them under ASan too (the children inherit its preload). Closing a state
-- with handlers installed: spec/regress/10-dump-on-signal-after-close_spec
-- and 11-dump-handler-outlives-state_spec (the state host).
local child = require "spec.support.signal_child"

-- Where the process blocks. `in_run`: inside as.run; `fork`: a fork is
-- running (blocked in C) when the signal comes, else the loop is idle.
-- SEND() schedules the signal just before the block (not before the setup:
-- os.execute's system() ignores SIGINT while it waits, and an ASan child is
-- slow to start).
local BLOCKS = {
  { name = "a fifo read outside a run", code = [[
      local fifo = os.tmpname()
      os.remove(fifo)
      assert(os.execute("mkfifo " .. fifo))
      assert(os.execute(("(timeout 5 sh -c 'sleep 0.6; echo done > %s') >/dev/null 2>&1 &")
                        :format(fifo)))
      SEND()
      local f = assert(io.open(fifo))
      print("result:", f:read("l"))
      f:close()
      os.remove(fifo)
  ]] },
  { name = "an io.popen read outside a run", code = [[
      SEND()
      local p = io.popen("exec 2>/dev/null; sleep 0.6; echo done")
      print("result:", p:read("l"))
      p:close()
  ]] },
  { name = "an io.popen read in a fork", in_run = true, fork = "reader", code = [[
      as.run(function()
        as.fork(function()
          SEND()
          local p = io.popen("exec 2>/dev/null; sleep 0.6; echo done")
          print("result:", p:read("l"))
          p:close()
        end):name("reader")
      end)
  ]] },
  { name = "epoll_wait (the loop idle, a fork in wait_fd)", in_run = true, code = [[
      local socket = require "asyncstack.socket"
      local server = assert(socket.bind("127.0.0.1", 0))
      as.run(function()
        SEND()
        server:settimeout(0.6)
        print("result:", select(2, server:accept()))
      end)
  ]] },
  { name = "clock_nanosleep (the loop idle, forks sleeping)", in_run = true, code = [[
      as.run(function()
        SEND()
        as.fork(function() as.sleep(0.6) end)
        as.sleep(0.6)
        print("result:", "slept")
      end)
  ]] },
}

local SIGNALS = {
  { sig = "USR1", setup = "as.dump_on_signal()",
    check = function(block, out, status)
      -- SA_RESTART: the read goes on; the run's safe point dumps
      assert.are.equal(0, status, out)
      assert.matches("\nresult:\t%w+\n", "\n" .. out)
      assert.matches("survived\n$", out)
      if block.in_run then
        assert.matches("asyncstack: dump on signal\nscheduler: ", out)
        if block.fork then assert.matches("fork #%d+ '" .. block.fork .. "' %[running%]", out) end
      else
        assert.is_nil(out:find("dump on signal", 1, true), out)
      end
    end },
  { sig = "SEGV", setup = "assert(as.crash.install())",
    check = function(block, out, status)
      assert.are.equal(128 + 11, status, out)
      assert.matches("^%*%*%* asyncstack: fatal signal 11 %(SIGSEGV%), sent by pid %d+ %*%*%*\n"
                     .. "native stack:\n", out)
      if block.fork then
        assert.matches("\nasync stack %(fork #%d+ '" .. block.fork .. "'%):\n", out)
      else
        assert.matches("\nasync stack: no fork is running\n$", out)
      end
    end },
  { sig = "INT", setup = "",
    check = function(block, out, status)
      -- lua5.4's own handling outside runs, asyncstack's inside: the same
      assert.are.equal(1, status, out)
      assert.matches("lua5.4: [^\n]*interrupted!", out)
      if block.fork then assert.matches("%(root of fork #%d+ '" .. block.fork .. "'%)", out) end
      if block.in_run and not block.fork then assert.matches("%(root of fork #1 'main'%)", out) end
    end },
}

describe("signals into blocking system calls #child", function()
  for _, s in ipairs(SIGNALS) do
    for _, block in ipairs(BLOCKS) do
      it(("SIG%s during %s"):format(s.sig, block.name), function()
        local out, status = child.lua(([[
          local as = require "asyncstack"
          %s
          local function SEND() send_later("%s", 0.2) end
          %s
          print("survived")
        ]]):format(s.setup, s.sig, block.code))
        s.check(block, out, status)
      end)
    end
  end
end)
