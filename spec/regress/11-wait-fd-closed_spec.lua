-- Issue 13, D10: wait_fd on an fd that another fork closes. epoll drops a
-- closed file silently, so with no timeout the waiter was never woken and
-- run() blocked in epoll_wait forever; when the number was reused, a new
-- wait on it failed with stale errors ("fd 3 already has a fork waiting",
-- "cannot watch fd 3: No such file or directory").
-- Where: src/fdwait.c. Closing through asyncstack (core.close_fd, or the
-- asyncstack.socket's close, which already woke its waiters) wakes the
-- waiters with an error saying so; a file closed or replaced behind
-- asyncstack's back is found (each registration remembers its file; the
-- idle poller checks the watched fds at most once a second, and wait_fd
-- checks a registration it finds) and its waiters get an error.
local as = require "asyncstack"
local core = require "asyncstack.core"
local socket = require "socket"
local helper = require "spec.helper"

local close_fd = as.close_fd or core.close_fd

local pair = helper.socket_pair

-- A fork that cancels the waiter if the case under test hangs (the loop
-- keeps running while it sleeps), so a lost waiter fails the spec instead
-- of hanging it.
local function watchdog(waiter)
  return as.fork(function()
    as.sleep(10)
    waiter:cancel()
  end)
end

describe("regress: wait_fd on an fd another fork closes", function()
  it("close_fd wakes the waiters with a clear error and closes the fd", function()
    local a, b = pair()
    local fd = a:getfd()
    local ok, err = as.run(function()
      local reader = as.fork(function() return as.wait_fd(fd, "r") end)
      local dog = watchdog(reader)
      local writer = as.fork(function() as.wait_fd(fd, "r", 5) end)  -- second reader is refused
      as.yield()
      assert.is_true(close_fd(fd))
      local r = { as.pwait(reader) }
      as.pwait(writer)
      dog:cancel()
      return table.unpack(r)
    end)
    a:setfd(-1)                   -- the fd is closed already
    b:close()
    assert.is_false(ok)
    assert.matches("wait_fd: fd " .. math.tointeger(fd) .. " was closed while waiting for it %(by close_fd",
                   tostring(err))
  end)

  it("close_fd outside a run closes, and reports a bad fd", function()
    local a, b = pair()
    local fd = a:getfd()
    assert.is_true(close_fd(fd))
    a:setfd(-1)
    b:close()
    local ok, msg, errno = close_fd(fd)
    assert.is_nil(ok)
    assert.matches("close_fd: cannot close fd %d+: Bad file descriptor", msg)
    assert.is_number(errno)
  end)

  it("an fd closed behind asyncstack's back wakes its waiter instead of hanging", function()
    local a, b = pair()
    local ok, err = as.run(function()
      local reader = as.fork(function() return as.wait_fd(a:getfd(), "r") end)
      local dog = watchdog(reader)
      as.yield()
      a:close()                   -- LuaSocket's own close: asyncstack does not see it
      local r = { as.pwait(reader) }
      dog:cancel()
      return table.unpack(r)
    end)
    b:close()
    assert.is_false(ok)
    assert.matches("was closed while waiting for it %(behind asyncstack's back%)", tostring(err))
  end)

  it("a reused fd number gets a fresh wait; the old waiter learns its file is gone", function()
    local a, b = pair()
    local fd = math.tointeger(a:getfd())
    local old_err, got
    as.run(function()
      local old = as.fork(function() return as.wait_fd(fd, "r") end)
      local dog = watchdog(old)
      as.yield()
      a:close()
      local u = assert(socket.udp())
      assert(u:setsockname("127.0.0.1", 0))
      assert.equal(fd, math.tointeger(u:getfd()))   -- the lowest free number: fd again
      local ip, port = u:getsockname()
      local new = as.fork(function()
        assert.is_true(as.wait_fd(fd, "r", 5))
        return u:receive()
      end)
      as.yield()
      assert(u:sendto("fresh", ip, port))
      got = as.wait(new)
      local _
      _, old_err = as.pwait(old)
      dog:cancel()
      u:close()
    end)
    b:close()
    assert.equal("fresh", got)
    assert.matches("was closed while waiting for it %(behind asyncstack's back", tostring(old_err))
  end)
end)
