-- asyncstack.socket: LuaSocket TCP that suspends forks. Unit specs on
-- loopback pairs, then the echo server end to end in child processes
-- (tagged #child, which `make valgrind` excludes).
local as = require "asyncstack"
local socket = require "asyncstack.socket"
local luasocket = require "socket"
local helper = require "spec.helper"
local error_of = helper.error_of

-- A listening socket on a free loopback port, and the port.
local function listener(backlog)
  local server = assert(socket.bind("127.0.0.1", 0, backlog))
  local _, port = server:getsockname()
  return server, tonumber(port)
end

-- A connected pair of wrapped sockets (set up outside forks: blocking).
local function pair()
  local server, port = listener()
  local client = assert(socket.connect("127.0.0.1", port))
  local peer = assert(server:accept())
  server:close()
  return client, peer
end

-- Runs fn in a fork and fails the spec if the run takes over 10 s.
local function run(fn)
  return as.run(function()
    local worker = as.fork(fn)
    return as.wait(worker, 10)
  end)
end

describe("asyncstack.socket", function()
  describe("require", function()
    it("is not loaded by asyncstack, which does not need LuaSocket #child", function()
      local out, status = helper.run_child([[
        local as = require "asyncstack"
        print(package.loaded.socket, package.loaded["asyncstack.socket"], as.socket)
      ]])
      assert.are.equal(0, status, out)
      assert.are.equal("nil\tnil\tnil\n", out)
    end)

    it("touches no globals", function()
      local before = {}
      for k in pairs(_G) do before[k] = true end
      package.loaded["asyncstack.socket"] = nil
      require "asyncstack.socket"
      for k in pairs(_G) do assert.is_true(before[k], "new global " .. tostring(k)) end
    end)
  end)

  describe("tcp()", function()
    it("gives an asyncstack.Socket around a LuaSocket master", function()
      local s = socket.tcp()
      assert.matches("^asyncstack%.Socket %(tcp{master}: 0x%x+%)$", tostring(s))
      assert.are.equal("asyncstack.Socket", getmetatable(s).__name)
      assert.are.equal(1, s:close())
      assert.matches("^asyncstack%.Socket %(tcp{master}: 0x%x+, closed%)$", tostring(s))
    end)
  end)

  describe("connect() and accept()", function()
    it("connect in forks while other forks run, and accept wraps the client", function()
      local server, port = listener()
      local log = {}
      run(function()
        local acceptor = as.fork(function()
          local conn = assert(server:accept())
          log[#log + 1] = "accepted"
          return conn
        end)
        as.fork(function() log[#log + 1] = "other fork ran" end)
        as.yield()                             -- the acceptor is now blocked in accept
        local client = assert(socket.connect("127.0.0.1", port))
        local conn = as.wait(acceptor)
        assert.are.equal("asyncstack.Socket", getmetatable(conn).__name)
        local _, client_port = client:getsockname()
        local _, peer_port = conn:getpeername()
        assert.are.equal(tostring(client_port), tostring(peer_port))
        client:close(); conn:close()
      end)
      server:close()
      assert.are.same({ "other fork ran", "accepted" }, log)
    end)

    it("method connect works on tcp() and returns 1", function()
      local server, port = listener()
      run(function()
        local s = socket.tcp()
        assert.are.equal(1, s:connect("127.0.0.1", port))
        assert.is_true(math.type(s:getfd()) == "integer" and s:getfd() >= 0)
        s:close()
      end)
      server:close()
    end)

    it("returns nil and LuaSocket's message when refused", function()
      local server, port = listener()
      server:close()                         -- nobody listens there now
      local results = { run(function() return socket.connect("127.0.0.1", port) end) }
      assert.are.same({ nil, "connection refused" }, results)
    end)

    it("returns nil, 'timeout' when the connection does not complete in time", function()
      -- A full accept queue makes the kernel drop further SYNs on loopback.
      local server, port = listener(1)
      local kept, result, elapsed = {}, nil, nil
      run(function()
        for _ = 1, 8 do                      -- the queue holds backlog + 1
          local t0 = as.now()
          local c, err = socket.connect("127.0.0.1", port, 0.1)
          if not c then
            result, elapsed = err, as.now() - t0
            break
          end
          kept[#kept + 1] = c
        end
      end)
      for _, c in ipairs(kept) do c:close() end
      server:close()
      assert.are.equal("timeout", result)
      assert.is_true(elapsed >= 0.09 and elapsed < 2, tostring(elapsed))
    end)

    it("accept returns nil, 'timeout' after the socket's timeout", function()
      local server = listener()
      server:settimeout(0.02)
      local results = { run(function() return server:accept() end) }
      server:close()
      assert.are.same({ nil, "timeout" }, results)
    end)

    it("accept in a fork gives nil, 'closed' when another fork closes the server", function()
      local server = listener()
      local results, dump
      run(function()
        local acceptor = as.fork(function()
          local conn, err = server:accept()     -- no tail call: its line shows in the dump
          return conn, err
        end)
        acceptor:name("acceptor")
        as.sleep(0.01)
        dump = as.dump()
        server:close()
        results = { as.wait(acceptor) }
        assert.are.equal("done", acceptor:status())
      end)
      assert.are.same({ nil, "closed" }, results)
      -- the wait is shown at the caller's line; frames of socket.lua are hidden
      assert.matches("fork #%d+ 'acceptor' %[waiting on fd %d+ %(read%) for %d+ms%]  spawned by [^\n]*\n"
                     .. "\t#0 spec/socket_spec.lua:%d+ in function <spec/socket_spec.lua:%d+>\n", dump)
    end)
  end)

  describe("receive()", function()
    local client, peer
    before_each(function() client, peer = pair() end)
    after_each(function() client:close(); peer:close() end)

    -- peer writes `chunks` with a pause between each; returns what fn gives.
    local function with_writer(chunks, fn)
      return run(function()
        as.fork(function()
          for _, chunk in ipairs(chunks) do
            as.sleep(0.01)
            if chunk == false then peer:close() else peer:send(chunk) end
          end
        end)
        return fn()
      end)
    end

    it("reads a line sent in several pieces", function()
      local results = { with_writer({ "hel", "lo wor", "ld\r", "\nnext\n" }, function()
        return client:receive("*l"), client:receive("l")
      end) }
      assert.are.same({ "hello world", "next" }, results)
    end)

    it("reads a byte count across several writes, with and without a prefix", function()
      local a, b = with_writer({ "ab", "cd", "efgh", "ij" }, function()
        return client:receive(5), client:receive(7, ">>")
      end)
      assert.are.equal("abcde", a)
      assert.are.equal(">>fghij", b)
    end)

    it("reads everything up to the peer's close with '*a' and 'a'", function()
      local all = with_writer({ "one\n", "two\n", ("x"):rep(100000), false }, function()
        return client:receive("*a")
      end)
      assert.are.equal("one\ntwo\n" .. ("x"):rep(100000), all)
      assert.are.same({ nil, "closed", "" }, { run(function() return client:receive("a") end) })
    end)

    it("returns nil, 'closed' and the partial line when the peer closes mid-line", function()
      local results = { with_writer({ "no newline", false }, function() return client:receive("*l") end) }
      assert.are.same({ nil, "closed", "no newline" }, results)
    end)

    it("returns nil, 'timeout' and the partial result; the partial can be passed back as prefix", function()
      local results = {}
      run(function()
        client:settimeout(0.03)
        peer:send("par")
        results.line = { client:receive("*l") }
        peer:send("tial")
        results.count = { client:receive(10) }
        peer:send("xyz")
        results.all = { client:receive("*a") }
        peer:send("ly done\n")
        results.resumed = { client:receive("*l", "partial") }
      end)
      assert.are.same({ nil, "timeout", "par" }, results.line)
      assert.are.same({ nil, "timeout", "tial" }, results.count)
      assert.are.same({ nil, "timeout", "xyz" }, results.all)
      assert.are.same({ "partially done" }, results.resumed)
    end)

    it("limits the whole call with 't' and each wait with 'b'", function()
      local t_result, t_elapsed, b_result, b_elapsed
      with_writer({}, function()
        client:settimeout(0.1)               -- "t": the whole call
        as.fork(function() for _ = 1, 4 do as.sleep(0.04); peer:send("x") end end)
        local t0 = as.now()
        t_result = { client:receive("*l") }
        t_elapsed = as.now() - t0
        client:settimeout(nil)
        client:settimeout(0.1, "b")          -- "b": each wait, so trickling data keeps it alive
        as.fork(function() for _ = 1, 4 do as.sleep(0.04); peer:send("y") end end)
        t0 = as.now()
        b_result = { client:receive("*l") }
        b_elapsed = as.now() - t0
      end)
      assert.are.equal("timeout", t_result[2])
      assert.is_true(t_elapsed >= 0.09 and t_elapsed < 0.5, tostring(t_elapsed))
      assert.matches("^x+$", t_result[3])
      assert.are.equal(("timeout"), b_result[2])
      assert.is_true(b_elapsed > 0.2, tostring(b_elapsed))
      assert.matches("y$", b_result[3])
    end)

    it("gives nil, 'closed' to a fork blocked in it when another fork closes the socket", function()
      local results
      run(function()
        local reader = as.fork(function() return client:receive("*l") end)
        as.sleep(0.01)
        client:close()
        results = { as.wait(reader) }
      end)
      assert.are.same({ nil, "closed", "" }, results)
    end)

    it("gives nil, 'closed' on a socket closed before", function()
      client:close()
      assert.are.same({ nil, "closed", "" }, { run(function() return client:receive() end) })
    end)

    it("refuses a second fork reading the same socket", function()
      local err
      run(function()
        local reader = as.fork(function() return client:receive("*l") end)
        reader:name("reader")
        as.yield()
        err = error_of(function() client:receive("*l") end)
        reader:cancel()
        as.pwait(reader)
      end)
      assert.matches("^receive: fork #%d+ 'reader' is already waiting to read on this socket "
                     .. "%(one reader and one writer at a time%)$", err)
    end)

    it("is usable in a later run after a run abandoned the fork blocked in it", function()
      local ok = pcall(as.run, function()
        as.fork(function() client:receive("*l") end)
        as.yield()
        error("the root fails: run() abandons the reader")
      end)
      assert.is_false(ok)
      peer:send("next run\n")
      assert.are.equal("next run", run(function() return client:receive("*l") end))
    end)

    it("lets a cancel through as as.Cancelled, and the socket stays usable", function()
      local e, after
      run(function()
        local reader = as.fork(function() return client:receive("*l") end)
        as.yield()
        reader:cancel()
        local _
        _, e = as.pwait(reader)
        peer:send("still here\n")
        after = client:receive()
      end)
      assert.is_true(as.Cancelled:is(e))
      assert.are.equal("still here", after)
    end)
  end)

  describe("send()", function()
    local client, peer
    before_each(function() client, peer = pair() end)
    after_each(function() client:close(); peer:close() end)

    it("sends more than the socket buffers hold while the reader is slow", function()
      local data = ("0123456789abcdef"):rep(2 ^ 18)       -- 4 MiB
      local sent, got
      run(function()
        local reader = as.fork(function()
          local parts = {}
          for _ = 1, 4 do
            as.sleep(0.01)
            parts[#parts + 1] = peer:receive(2 ^ 20)
          end
          return table.concat(parts)
        end)
        sent = client:send(data)
        got = as.wait(reader)
      end)
      assert.are.equal(#data, sent)
      assert.are.equal(math.type(sent), "integer")
      assert.is_true(got == data)
    end)

    it("sends the range i..j as LuaSocket does, returning the last index", function()
      local results = {}
      run(function()
        results[1] = client:send("abcdef", 2, 4)
        results[2] = client:send("abcdef", -2)
        results[3] = peer:receive(5)
      end)
      assert.are.same({ 4, 6, "bcdef" }, results)
    end)

    it("returns nil, 'timeout' and the last byte sent; sending from there completes", function()
      local data = ("z"):rep(2 ^ 24)                      -- more than loopback buffers
      local first, total
      run(function()
        client:settimeout(0.05)
        first = { client:send(data) }
        local reader = as.fork(function() return #peer:receive(#data) end)
        client:settimeout(nil)
        assert.are.equal(#data, client:send(data, first[3] + 1))
        total = as.wait(reader)
      end)
      assert.are.equal(nil, first[1])
      assert.are.equal("timeout", first[2])
      assert.is_true(first[3] > 0 and first[3] < #data, tostring(first[3]))
      assert.are.equal(#data, total)
    end)

    it("returns nil, 'closed' on a closed socket", function()
      client:close()
      assert.are.same({ nil, "closed", 0 }, { run(function() return client:send("x") end) })
    end)
  end)

  describe("outside forks", function()
    it("blocks as LuaSocket does: connect, accept, send, receive", function()
      local server, port = listener()
      local client = assert(socket.connect("127.0.0.1", port, 1))
      local peer = assert(server:accept())
      assert.are.equal(6, client:send("hello\n"))
      assert.are.equal("hello", peer:receive("*l"))
      client:close()
      assert.are.same({ nil, "closed", "" }, { peer:receive("*a") })
      peer:close(); server:close()
    end)

    it("keeps the socket's timeouts: nil, 'timeout' and the partial", function()
      local client, peer = pair()
      peer:send("abc")
      client:settimeout(0.05)
      local t0 = luasocket.gettime()
      assert.are.same({ nil, "timeout", "abc" }, { client:receive("*l") })
      assert.is_true(luasocket.gettime() - t0 >= 0.04)
      client:close(); peer:close()
    end)

    it("switches between fork and plain use of one socket", function()
      local client, peer = pair()
      run(function() client:send("from a fork\n") end)
      assert.are.equal("from a fork", peer:receive())
      peer:send("from outside\n")
      assert.are.equal("from outside", run(function() return client:receive() end))
      client:close(); peer:close()
    end)
  end)

  describe("other methods", function()
    it("<close> closes the socket", function()
      local server, port = listener()
      local inner
      do
        local s <close> = assert(socket.connect("127.0.0.1", port))
        inner = s
      end
      assert.are.equal(-1, inner:getfd())
      server:close()
    end)

    it("wrap() adopts a LuaSocket TCP object", function()
      local raw = luasocket.tcp()
      local s = socket.wrap(raw)
      assert.matches("^asyncstack%.Socket %(tcp{master}", tostring(s))
      s:close()
    end)

    it("passes LuaSocket's own calls through", function()
      local client, peer = pair()
      assert.are.equal(1, client:setoption("tcp-nodelay", true))
      assert.is_true(client:getoption("tcp-nodelay"))
      assert.are.equal(1, client:shutdown("send"))
      assert.are.same({ nil, "closed", "" }, { peer:receive("*a") })
      client:close(); peer:close()
    end)
  end)

  describe("bad arguments", function()
    local s = socket.tcp()
    local server = listener()
    local cases = {
      { function() s:receive({}) end, "bad argument #1 to 'receive' ('*l', '*a' or a byte count expected, got table)" },
      { function() s:receive("*x") end, "bad argument #1 to 'receive' (invalid pattern '*x': '*l', '*a' or a byte count expected)" },
      { function() s:receive(-1) end, "bad argument #1 to 'receive' (byte count must be a non-negative integer)" },
      { function() s:receive(1.5) end, "bad argument #1 to 'receive' (byte count must be a non-negative integer)" },
      { function() s:receive("*l", {}) end, "bad argument #2 to 'receive' (string expected, got table)" },
      { function() s:send() end, "bad argument #1 to 'send' (string expected, got nil)" },
      { function() s:send("x", "y") end, "bad argument #2 to 'send' (integer expected, got string)" },
      { function() s:send("x", 1, 2.5) end, "bad argument #3 to 'send' (integer expected, got non-integral number)" },
      { function() s:connect() end, "bad argument #1 to 'connect' (string expected, got nil)" },
      { function() s:connect("127.0.0.1") end, "bad argument #2 to 'connect' (number or string expected, got nil)" },
      { function() s:settimeout("x") end, "bad argument #1 to 'settimeout' (number or nil expected, got string)" },
      { function() s:settimeout(0 / 0) end, "bad argument #1 to 'settimeout' (number or nil expected, got nan)" },
      { function() s:settimeout(1, "x") end, "bad argument #2 to 'settimeout' (invalid mode 'x': 'b' or 't' expected)" },
      { function() s.receive("x") end, "calling 'receive' on bad self (asyncstack.Socket expected, got string)" },
      { function() s.close(nil) end, "calling 'close' on bad self (asyncstack.Socket expected, got nil)" },
      { function() server:receive() end, "calling 'receive' on bad self (tcp{client} expected)" },
      { function() s:accept() end, "calling 'accept' on bad self (tcp{server} expected)" },
      { function() socket.connect({}, 1) end, "bad argument #1 to 'connect' (string expected, got table)" },
      { function() socket.connect("127.0.0.1") end, "bad argument #2 to 'connect' (number or string expected, got nil)" },
      { function() socket.connect("127.0.0.1", 1, "soon") end, "bad argument #3 to 'connect' (number or nil expected, got string)" },
      { function() socket.bind(nil, 1) end, "bad argument #1 to 'bind' (string expected, got nil)" },
      { function() socket.bind("127.0.0.1", {}) end, "bad argument #2 to 'bind' (number or string expected, got table)" },
      { function() socket.wrap(io.stdout) end, "bad argument #1 to 'wrap' (LuaSocket TCP object expected, got FILE*)" },
    }
    for _, case in ipairs(cases) do
      it("rejects: " .. case[2], function()
        assert.are.equal(case[2], error_of(case[1]))
      end)
    end

    it("points at the caller's line", function()
      for _, fn in ipairs({ function() s:receive({}) end, function() s:send(nil) end,
                            function() s:settimeout("x") end, function() socket.connect(nil, 1) end,
                            function() s.close(nil) end }) do
        local ok, err = pcall(fn)
        assert.is_false(ok)
        assert.matches("^spec/socket_spec%.lua:%d+: ", err)
      end
    end)
  end)

  describe("examples/echo_server.lua", function()
    local env = ("LUA_PATH='%s' LUA_CPATH='%s'"):format(
      os.getenv("LUA_PATH") or "lua/?.lua;lua/?/init.lua;;", os.getenv("LUA_CPATH") or "build/?.so;;")

    local function read_file(path)
      local f = io.open(path)
      if not f then return "" end
      local text = f:read("a")
      f:close()
      return text
    end

    -- Running, not a zombie: the server is reparented to pid 1 once its
    -- shell exits, and pid 1 may take its time to reap it.
    local function alive(pid)
      local state = read_file(("/proc/%d/stat"):format(pid)):match("^%d+ %b() (%a)")
      return state ~= nil and state ~= "Z"
    end

    -- A plain blocking LuaSocket client, bounded by its timeout.
    local function talk(port, text)
      local c = assert(luasocket.connect("127.0.0.1", port))
      c:settimeout(5)
      c:send(text)
      local line, err = c:receive("*l")
      c:close()
      return line, err
    end

    it("serves 200 concurrent connections, survives a poisoned handler, and quits #child", function()
      local out, err, pidfile = os.tmpname(), os.tmpname(), os.tmpname()
      local pid
      finally(function()
        if pid and alive(pid) then os.execute(("kill %d 2>/dev/null"):format(pid)) end
        os.remove(out); os.remove(err); os.remove(pidfile)
      end)
      -- `timeout` bounds the server even if this process dies without cleaning up
      assert.is_true(os.execute(("%s timeout 60 lua5.4 examples/echo_server.lua 0 >%s 2>%s & echo $! >%s")
                                :format(env, out, err, pidfile)))
      pid = assert(tonumber(read_file(pidfile)))
      local port
      for _ = 1, 200 do                      -- at most 10 s
        port = read_file(out):match("^listening on 127%.0%.0%.1:(%d+)\n")
        if port or not alive(pid) then break end
        luasocket.sleep(0.05)
      end
      assert(port, "the server did not start: " .. read_file(err))

      local load = assert(io.popen(("timeout 30 env %s lua5.4 spec/fixtures/echo_load.lua %s 200 20 2>&1; echo status=$?")
                                   :format(env, port)))
      local report = load:read("a")
      load:close()
      assert.matches("^200 connections, 1200 lines, 0 errors\ntime [%d.]+s\nstatus=0\n$", report)

      assert.are.same({ nil, "closed" }, { talk(port, "poison\n") })
      local log
      for _ = 1, 100 do                      -- the log may lag the close by a moment
        log = read_file(err)
        if log:find("\t%[C%]: in %?\n") then break end
        luasocket.sleep(0.05)
      end
      assert.matches("^echo_server: conn 127%.0%.0%.1:%d+ failed:\n"
                     .. "asyncstack%.ErrorException: examples/echo_server%.lua:%d+: poisoned line received", log)
      assert.matches("in upvalue 'check_line'\n", log)
      assert.matches("in upvalue 'reply_for'\n", log)
      assert.matches("%(root of fork #%d+ 'conn 127%.0%.0%.1:%d+'%)\n", log)
      assert.matches("%[fork #%d+ 'conn 127%.0%.0%.1:%d+' awaited by fork #%d+ 'supervisor'", log)

      assert.are.equal("still serving", talk(port, "still serving\n"))
      talk(port, "quit\n")
      for _ = 1, 100 do                      -- it exits once its connections are closed
        if not alive(pid) then break end
        luasocket.sleep(0.05)
      end
      assert.is_false(alive(pid))
    end)
  end)
end)
