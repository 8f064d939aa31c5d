-- Issue 17: asyncstack.socket paid an epoll_ctl ADD and DEL, an fstat and
-- an fcntl around every wait (5.1 syscalls per echoed line, 3 is the
-- target). Where: src/fdwait.c (core.wait_io, core.forget_fd) and
-- lua/asyncstack/socket.lua. A socket's fd now stays registered
-- (level-triggered) between waits, trusted through the token wait_io hands
-- back; close() drops it before the fd goes; a socket whose reads run ahead
-- of its peer waits before reading. These cases pin what must not change:
-- data that arrives while nobody waits is read, a zero timeout still reads
-- what is there, a number reused behind the socket's back gets a working
-- registration, and close wakes a blocked reader with "closed".
local as = require "asyncstack"
local core = require "asyncstack.core"
local socket = require "asyncstack.socket"

-- A connected pair of wrapped sockets.
local function pair()
  local server = assert(socket.bind("127.0.0.1", 0))
  local _, port = server:getsockname()
  local client = assert(socket.connect("127.0.0.1", tonumber(port)))
  local peer = assert(server:accept())
  server:close()
  return client, peer
end

-- Runs fn in a fork; a case that hangs fails after 10 s instead.
local function run(fn)
  return as.run(function() return as.wait(as.fork(fn), 10) end)
end

describe("regress: socket fds stay registered between waits", function()
  it("reads what arrived while nobody waited, line after line", function()
    local client, peer = pair()
    local got = {}
    run(function()
      local writer = as.fork(function()
        for i = 1, 5 do
          peer:send("line " .. i .. "\n")
          as.sleep(0.005)
        end
      end)
      got[1] = client:receive()          -- waits: its reads now run ahead
      as.sleep(0.05)                     -- the rest arrives meanwhile
      for i = 2, 5 do got[i] = client:receive() end
      as.wait(writer)
    end)
    assert.are.same({ "line 1", "line 2", "line 3", "line 4", "line 5" }, got)
    client:close(); peer:close()
  end)

  it("a zero timeout still reads what is there after a wait", function()
    local client, peer = pair()
    local first, second, third
    run(function()
      as.fork(function() as.sleep(0.01); peer:send("a\n") end)
      first = client:receive()           -- waited: reads run ahead now
      peer:send("b\n")
      as.sleep(0.02)
      client:settimeout(0)
      second = { client:receive() }
      third = { client:receive() }
    end)
    assert.are.equal("a", first)
    assert.are.same({ "b" }, second)
    assert.are.same({ nil, "timeout", "" }, third)
    client:close(); peer:close()
  end)

  it("a byte count the prefix already holds returns at once after a wait", function()
    local client, peer = pair()
    local first, from_prefix
    run(function()
      as.fork(function() as.sleep(0.01); peer:send("a\n") end)
      first = client:receive()           -- waited: reads run ahead now
      from_prefix = { client:receive(2, "xy") }
    end)
    assert.are.equal("a", first)
    assert.are.same({ "xy" }, from_prefix)
    client:close(); peer:close()
  end)

  it("a socket closed behind the wrapper's back leaves no stale registration for its number", function()
    local client, peer = pair()
    local server = assert(socket.bind("127.0.0.1", 0))   -- its fd is taken now
    local _, port = server:getsockname()
    local fd = client:getfd()
    local got, reused
    run(function()
      as.fork(function() as.sleep(0.01); peer:send("first\n") end)
      assert.are.equal("first", client:receive())   -- registered, kept
      client._sock:close()                          -- not through the wrapper
      peer:close()
      -- the lowest free numbers go to the next sockets: fd is reused
      local c2 = assert(socket.connect("127.0.0.1", tonumber(port)))
      local p2 = assert(server:accept())
      local reader = c2:getfd() == fd and c2 or p2
      local other = reader == c2 and p2 or c2
      reused = reader:getfd() == fd
      as.fork(function() as.sleep(0.01); other:send("second\n") end)
      got = { reader:receive() }
      reader:close(); other:close()
    end)
    server:close()
    assert.is_true(reused)
    assert.are.same({ "second" }, got)
  end)

  it("close() wakes a reader blocked in it with 'closed' and drops the registration", function()
    local client, peer = pair()
    local results, watched
    run(function()
      local reader = as.fork(function() return client:receive() end)
      as.sleep(0.01)
      client:close()
      results = { as.wait(reader) }
      watched = core.watched_fds()
    end)
    assert.are.same({ nil, "closed", "" }, results)
    assert.are.equal(0, watched)
    peer:close()
  end)

  it("core.wait_io gives timeouts and forget_fd as results, and checks its arguments", function()
    local client, peer = pair()
    local fd = client:getfd()
    local timed, forgotten, bad_mode, outside
    run(function()
      timed = { core.wait_io(fd, "r", 0.01) }
      local waiter = as.fork(function() return core.wait_io(fd, "r") end)
      as.yield()
      core.forget_fd(fd)
      forgotten = { as.wait(waiter) }
      bad_mode = select(2, pcall(core.wait_io, fd, "x"))
    end)
    outside = select(2, pcall(core.wait_io, fd, "r"))
    assert.are.same({ nil, "timeout" }, timed)
    assert.are.same({ nil, "closed" }, forgotten)
    assert.matches("bad argument #2 to '[%w.]*wait_io' %('r' or 'w' expected%)", bad_mode)
    assert.matches("wait_io", outside)
    client:close(); peer:close()
  end)
end)
