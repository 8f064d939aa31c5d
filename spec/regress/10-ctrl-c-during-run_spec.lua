-- Issue 12 item 6: Ctrl-C did nothing while as.run ran (lua5.4's SIGINT hook
-- is set on the main thread, which runs no Lua code while forks run); a
-- second Ctrl-C killed the process with no trace. Fixed: during run()
-- SIGINT is asyncstack's (src/signals.c). It raises "interrupted!" in the
-- running fork (hooked, as lua.c hooks the main thread), or, when the loop
-- is idle, at the root fork's await point; a fork that dies of it hands its
-- error to the root; run() then abandons the other forks (their <close>
-- handlers run) and raises it, so lua5.4 prints "lua5.4: ...interrupted!"
-- with the trace and exits with status 1, as it does for a Ctrl-C outside
-- forks. A second Ctrl-C ends the process, as in lua5.4.
local child = require "spec.support.signal_child"

-- What plain lua5.4 does on Ctrl-C: "lua5.4: <where>interrupted!", a
-- traceback, exit status 1.
local function assert_interrupted(out, status)
  assert.are.equal(1, status, out)
  assert.matches("lua5.4: [^\n]*interrupted!", out)
  assert.matches("\nstack traceback:\n", out)
end

local CLOSER = [[
local function closer(what)
  return setmetatable({}, { __close = function() io.stderr:write("closed ", what, "\n") end })
end
]]

describe("regression: Ctrl-C during as.run (issue 12 item 6) #child", function()
  it("matches what lua5.4 itself does outside forks", function()
    local out, status = child.lua([[
      send_later("INT", 0.3)
      local function spin() while true do end end
      spin()
    ]])
    assert_interrupted(out, status)
  end)

  it("interrupts the root when the loop is idle in its sleep", function()
    local out, status = child.lua(CLOSER .. [[
      local as = require "asyncstack"
      send_later("INT", 0.3)
      as.run(function()
        as.fork(function() local c <close> = closer("sleeper"); as.sleep(30) end):name("sleeper")
        local c <close> = closer("main")
        as.sleep(30)
      end)
    ]])
    assert_interrupted(out, status)
    assert.matches("closed main\n", out)
    assert.matches("closed sleeper\n", out)
    assert.matches("%(root of fork #1 'main'%)", out)
  end)

  it("interrupts the root when the loop is idle in epoll_wait", function()
    local out, status = child.lua(CLOSER .. [[
      local as = require "asyncstack"
      local socket = require "asyncstack.socket"
      local server = assert(socket.bind("127.0.0.1", 0))
      send_later("INT", 0.3)
      as.run(function()
        local c <close> = closer("main")
        server:accept()
      end)
    ]])
    assert_interrupted(out, status)
    assert.matches("closed main\n", out)
  end)

  it("raises in a spinning fork, with its async trace, and ends the run", function()
    local out, status = child.lua(CLOSER .. [[
      local as = require "asyncstack"
      send_later("INT", 0.3)
      as.run(function()
        as.fork(function() local c <close> = closer("sleeper"); as.sleep(30) end):name("sleeper")
        as.fork(function()
          local c <close> = closer("spinner")
          while true do end
        end):name("spinner")
        as.sleep(30)
      end)
    ]])
    assert_interrupted(out, status)
    assert.matches("%(root of fork #%d+ 'spinner'%)", out)
    assert.matches("closed spinner\n", out)
    assert.matches("closed sleeper\n", out)
    -- handed to the root: no separate unhandled-failure report
    assert.is_nil(out:find("unhandled", 1, true), out)
  end)

  it("cuts short a blocking read in a fork, as lua5.4 does", function()
    local out, status = child.lua([[
      local as = require "asyncstack"
      send_later("INT", 0.3)
      as.run(function()
        as.fork(function()
          local p = io.popen("exec 2>/dev/null; sleep 2")
          p:read("a")
        end):name("reader")
        as.sleep(30)
      end)
    ]])
    assert_interrupted(out, status)
    assert.matches("%(root of fork #%d+ 'reader'%)", out)
  end)

  it("leaves a fork that catches it running, as pcall does in Lua", function()
    local out, status = child.lua([[
      local as = require "asyncstack"
      send_later("INT", 0.3)
      as.run(function()
        local ok, err = pcall(function() while true do end end)
        print("caught:", ok, tostring(err):match("interrupted!"))
      end)
      print("run returned")
    ]])
    assert.are.equal(0, status, out)
    assert.matches("caught:\tfalse\tinterrupted!\nrun returned\n", out)
  end)

  it("gives SIGINT back to lua5.4 when run returns", function()
    local out, status = child.lua([[
      local as = require "asyncstack"
      as.run(function() as.sleep(0.01) end)
      send_later("INT", 0.3)
      local function spin() while true do end end
      spin()
    ]])
    assert_interrupted(out, status)
    assert.is_nil(out:find("asyncstack", 1, true), out)
  end)

  it("interrupts the oldest live fork once the root has returned", function()
    local out, status = child.lua([[
      local as = require "asyncstack"
      send_later("INT", 0.3)
      as.run(function()
        as.fork(function() as.sleep(30) end):name("first")
        as.fork(function() as.sleep(30) end):name("second")
      end)
      print("survived")
    ]])
    assert_interrupted(out, status)
    assert.matches("%(root of fork #%d+ 'first'%)", out)
    assert.is_nil(out:find("survived", 1, true), out)
  end)

  it("a second Ctrl-C ends the process, as in lua5.4", function()
    local out, status = child.lua([[
      local as = require "asyncstack"
      send_later("INT", 0.3)
      send_later("INT", 1.0)
      as.run(function()
        as.fork(function()
          local stuck <close> = setmetatable({}, { __close = function()
            io.stderr:write("cleanup spins\n")
            while true do end
          end })
          as.sleep(30)
        end)
        as.sleep(30)
      end)
    ]])
    assert.are.equal(128 + 2, status, out)
    assert.matches("cleanup spins\n", out)
  end)

  it("stops examples/echo_server.lua on one Ctrl-C", function()
    local out, status = child.shell("sh -c 'lua5.4 examples/echo_server.lua & pid=$!; sleep 0.5; "
                                    .. "kill -INT $pid; wait $pid'")
    assert_interrupted(out, status)
    assert.matches("^listening on ", out)
  end)
end)
