-- bench/echo.lua: row 15 of bench/run.lua, a TCP line echo on 127.0.0.1:
-- one server per library (asyncstack, cqueues, luv, copas) and one client
-- program, the same for every server.
--
-- As a program:
--   lua5.4 bench/echo.lua server KIND            KIND: asyncstack cqueues luv copas
--       binds 127.0.0.1 on a free port, prints "PORT PID", serves until killed
--   lua5.4 bench/echo.lua client PORT CLIENTS LINES
--       CLIENTS connections, each sending LINES lines one at a time and
--       waiting for each echo before the next (request/response); prints
--       "ok REQUESTS SECONDS" (wall time) or fails
-- As a module (dofile, no arguments) it returns the driver bench/run.lua
-- uses: E.measure(kind, opts) starts the server, runs the client against
-- it and returns the server's CPU seconds over the client's run (from
-- /proc/PID/task/*/schedstat, the server alone, start-up excluded), and
-- with opts.counter its system calls over the client's run: counted by
-- `perf stat -e raw_syscalls:sys_enter -p PID` (a counter in the kernel,
-- which hardly slows the server), or by `strace -c -f -p PID`, which gives
-- each call's count but slows the server several times over, and so
-- changes how many calls it makes (a slow server finds more data waiting
-- on each read). Each is a separate run: the CPU runs have no counter.
--
-- The client is plain LuaSocket with socket.select over every connection,
-- so it is the same code for every server. Every process runs under
-- `timeout`, and every wait of the driver is bounded: a stuck server or
-- client fails the row instead of hanging `make bench`.

local LINE = "the quick brown fox jumps over the lazy dog %6d %6d"

local function own_pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("n")
  f:close()
  return pid
end

local function announce(port)
  io.stdout:write(string.format("%d %d\n", port, own_pid()))
  io.stdout:flush()
end

------------------------------------------------------------------ servers

local servers = {}

-- asyncstack: asyncstack.socket (LuaSocket whose calls suspend the fork),
-- one fork per connection reading a line and sending it back.
function servers.asyncstack()
  local as = require "asyncstack"
  local socket = require "asyncstack.socket"
  local server = assert(socket.bind("127.0.0.1", 0, 128))
  local _, port = server:getsockname()
  announce(tonumber(port))
  as.run(function()
    while true do
      local conn = assert(server:accept())
      as.fork(function()
        while true do
          local line = conn:receive("*l")
          if not line then break end
          conn:send(line .. "\n")
        end
        conn:close()
      end)
    end
  end)
end

-- cqueues: cqueues.socket, one coroutine per connection, lines() and
-- write() (flushed: a line is the response).
function servers.cqueues()
  local cqueues = require "cqueues"
  local csocket = require "cqueues.socket"
  local server = assert(csocket.listen { host = "127.0.0.1", port = 0, backlog = 128 })
  local _, _, port = server:localname()
  local q = cqueues.new()
  q:wrap(function()
    for conn in server:clients() do
      q:wrap(function()
        for line in conn:lines("*l") do
          conn:write(line, "\n")
          conn:flush()
        end
        conn:close()
      end)
    end
  end)
  announce(port)
  assert(q:loop())
end

-- luv: libuv's callbacks: read_start on each connection, each complete
-- line written back as it comes.
function servers.luv()
  local uv = require "luv"
  local server = uv.new_tcp()
  assert(server:bind("127.0.0.1", 0))
  assert(server:listen(128, function(err)
    assert(not err, err)
    local conn = uv.new_tcp()
    server:accept(conn)
    local pending = ""
    conn:read_start(function(rerr, data)
      if rerr or not data then conn:close() return end
      if pending == "" and data:byte(-1) == 10 then
        conn:write(data)                 -- whole lines: the usual case
        return
      end
      pending = pending .. data
      local last = pending:match(".*\n()")
      if last then
        conn:write(pending:sub(1, last - 1))
        pending = pending:sub(last)
      end
    end)
  end))
  announce(server:getsockname().port)
  uv.run()
end

-- copas: copas.addserver with a handler per connection, copas.wrap'ped
-- socket receive("*l") and send.
function servers.copas()
  local dir = (arg and arg[0] or ""):match("^(.*)[/\\][^/\\]*$") or "."
  local P = dofile(dir .. "/peers.lua")
  local copas = P.load("copas")
  local socket = require "socket"
  local server = assert(socket.bind("127.0.0.1", 0, 128))
  local _, port = server:getsockname()
  copas.addserver(server, function(raw)
    local conn = copas.wrap(raw)
    while true do
      local line = conn:receive("*l")
      if not line then break end
      conn:send(line .. "\n")
    end
  end)
  announce(tonumber(port))
  copas.loop()
end

------------------------------------------------------------------ client

local function client(port, nclients, nlines)
  local socket = require "socket"
  local conns, sent, prefix = {}, {}, {}
  for c = 1, nclients do
    local s = assert(socket.connect("127.0.0.1", port))
    s:setoption("tcp-nodelay", true)
    s:settimeout(0)
    conns[c] = s
  end
  local index = {}
  local function send_next(c)
    sent[c] = (sent[c] or 0) + 1
    local line = LINE:format(c, sent[c]) .. "\n"
    local s, i = conns[c], 1
    while i <= #line do
      local last, err, partial = s:send(line, i)
      if last then break end
      if err ~= "timeout" then error("client send: " .. err, 0) end
      i = partial + 1
      socket.select(nil, { s }, 5)
    end
  end
  local active = {}
  for c = 1, nclients do
    index[conns[c]] = c
    active[c] = conns[c]
    send_next(c)
  end
  local t0 = socket.gettime()
  local done = 0
  while #active > 0 do
    local readable, _, err = socket.select(active, nil, 10)
    if err then error("client: no echo for 10 s (" .. err .. ")", 0) end
    local finished = false
    for _, s in ipairs(readable) do
      local c = index[s]
      while true do
        local line, rerr, partial = s:receive("*l", prefix[c])
        if line then
          prefix[c] = nil
          if line ~= LINE:format(c, sent[c]) then
            error(string.format("client %d: echo %q, sent line %d", c, line, sent[c]), 0)
          end
          done = done + 1
          if sent[c] < nlines then send_next(c) else finished = true; index[s] = false end
          break
        elseif rerr == "timeout" then
          prefix[c] = partial ~= "" and partial or nil
          break
        else
          error(string.format("client %d: %s after %d lines", c, rerr, sent[c] - 1), 0)
        end
      end
    end
    if finished then
      local still = {}
      for _, s in ipairs(active) do
        if index[s] then still[#still + 1] = s else s:close() end
      end
      active = still
    end
  end
  local elapsed = socket.gettime() - t0
  if done ~= nclients * nlines then
    error(string.format("client: %d echoes, expected %d", done, nclients * nlines), 0)
  end
  print(string.format("ok %d %.6f", done, elapsed))
end

------------------------------------------------------------------ main

local mode = ...
if mode == "server" then
  local kind = select(2, ...)
  local serve = servers[kind]
  if not serve then error("echo.lua server: unknown kind " .. tostring(kind), 0) end
  serve()
  return
elseif mode == "client" then
  local _, port, n, lines = ...
  client(assert(tonumber(port)), assert(tonumber(n)), assert(tonumber(lines)))
  return
elseif mode ~= nil then
  error("usage: echo.lua server KIND | client PORT CLIENTS LINES", 0)
end

------------------------------------------------------------------ driver

local E = {}

E.kinds = { "asyncstack", "cqueues", "luv", "copas" }
-- the peer (bench/peers.lua) each server needs, beyond LuaSocket
E.needs = { asyncstack = "socket", cqueues = "cqueues", luv = "luv", copas = "copas" }

local LIMIT = 120          -- seconds any one process may run

local function sh(cmd)
  local ok = os.execute(cmd)
  return ok
end

local function read_all(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function sleep(s) os.execute("sleep " .. s) end

local function stat_fields(pid)
  local s = read_all("/proc/" .. pid .. "/stat")
  if not s then return nil end
  -- the command name is in parentheses and may hold spaces: split after it
  local rest = s:match("%)%s+(.*)$")
  local f = {}
  for w in rest:gmatch("%S+") do f[#f + 1] = w end
  return f                             -- f[1] is field 3 (state)
end

-- CPU seconds of process `pid`, all its threads: the scheduler's run time
-- in nanoseconds (/proc/PID/task/TID/schedstat, first field) where the
-- kernel has it, else utime + stime of /proc/PID/stat in clock ticks (10 ms
-- steps: fine over 100,000 requests, coarse for --quick).
local CLK_TCK
local function cpu_seconds(pid)
  local p = io.popen("ls /proc/" .. pid .. "/task 2>/dev/null")
  local ns, seen = 0, false
  for tid in p:lines() do
    local s = read_all("/proc/" .. pid .. "/task/" .. tid .. "/schedstat")
    local run = s and tonumber(s:match("^(%d+)"))
    if run then ns, seen = ns + run, true end
  end
  p:close()
  if seen then return ns / 1e9 end
  CLK_TCK = CLK_TCK or tonumber(io.popen("getconf CLK_TCK"):read("l")) or 100
  local f = assert(stat_fields(pid), "echo server " .. pid .. " is gone")
  return (tonumber(f[12]) + tonumber(f[13])) / CLK_TCK   -- utime + stime
end

local function alive(pid)
  local f = stat_fields(pid)
  return f ~= nil and f[1] ~= "Z"
end

local function wait_until(what, limit, test)
  local waited = 0
  while not test() do
    if waited >= limit then error("echo: timed out waiting for " .. what, 0) end
    sleep(0.02)
    waited = waited + 0.02
  end
end

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Starts the server of `kind`; returns its port and pid.
local function start_server(kind, tmp, interp, script)
  local out, err = tmp .. "/" .. kind .. ".port", tmp .. "/" .. kind .. ".err"
  os.remove(out)
  sh(string.format("timeout -k 2 %d %s %s server %s > %s 2> %s &", LIMIT, q(interp),
                   q(script), kind, q(out), q(err)))
  local port, pid
  wait_until(kind .. " server to start (" .. err .. ")", 20, function()
    local s = read_all(out)
    if s then port, pid = s:match("^(%d+) (%d+)\n") end
    if not port and (read_all(err) or "") ~= "" then
      error("echo: " .. kind .. " server failed: " .. read_all(err), 0)
    end
    return port ~= nil
  end)
  return tonumber(port), tonumber(pid)
end

local function stop_server(pid)
  sh("kill " .. pid .. " 2>/dev/null")
  local ok = pcall(wait_until, "server to stop", 5, function() return not alive(pid) end)
  if not ok then sh("kill -9 " .. pid .. " 2>/dev/null") end
end

local function run_client(interp, script, port, clients, lines)
  local p = assert(io.popen(string.format("timeout -k 2 %d %s %s client %d %d %d 2>&1",
                            LIMIT, q(interp), q(script), port, clients, lines)))
  local out = p:read("a")
  p:close()
  local n, secs = out:match("ok (%d+) (%S+)")
  if not n then error("echo client failed: " .. out, 0) end
  return tonumber(n), tonumber(secs)
end

-- `strace -c` output: the calls column of each syscall, and the total.
local function parse_strace(text)
  local calls, total = {}, nil
  for line in text:gmatch("[^\n]+") do
    local pct, secs, usecs, n, rest = line:match("^%s*([%d.]+)%s+([%d.]+)%s+(%d+)%s+(%d+)%s+(.*)$")
    if pct then
      local name = rest:match("(%S+)%s*$")
      if name == "total" then total = tonumber(n) else calls[name] = tonumber(n) end
    end
    local _ = secs, usecs
  end
  return total, calls
end

-- `perf stat -x,` output: the total (raw_syscalls:sys_enter) and the count
-- of each syscalls:sys_enter_NAME event.
local function parse_perf(text)
  local calls, total = {}, nil
  for n, event in text:gmatch("\n(%d+),[^,\n]*,([^,\n]+)") do
    if event == "raw_syscalls:sys_enter" then total = tonumber(n)
    else
      local name = event:match("^syscalls:sys_enter_(.+)$")
      if name and tonumber(n) > 0 then calls[name] = tonumber(n) end
    end
  end
  return total, calls
end

-- The perf events: every system call (the total), and one counter for
-- each call an event loop is likely to make (those this kernel has
-- tracepoints for), so that the breakdown needs no strace.
local PERF_CALLS = { "read", "write", "readv", "writev", "recvfrom", "sendto", "recvmsg",
  "sendmsg", "epoll_wait", "epoll_pwait", "epoll_ctl", "select", "pselect6", "poll",
  "ppoll", "fcntl", "newfstatat", "fstat", "statx", "accept", "accept4", "setsockopt",
  "getsockopt", "close", "futex", "ioctl", "clock_gettime", "getpid" }
local perf_events
function E.perf_events()
  if perf_events then return perf_events end
  local list = { "raw_syscalls:sys_enter" }
  for _, name in ipairs(PERF_CALLS) do
    for _, root in ipairs { "/sys/kernel/tracing", "/sys/kernel/debug/tracing" } do
      local f = io.open(root .. "/events/syscalls/sys_enter_" .. name .. "/format")
      if f then
        f:close()
        list[#list + 1] = "syscalls:sys_enter_" .. name
        break
      end
    end
  end
  perf_events = table.concat(list, ",")
  return perf_events
end

-- Whether process `pid` holds a perf event (perf stat has attached).
local function has_perf_event(pid)
  local p = io.popen("ls -l /proc/" .. pid .. "/fd 2>/dev/null")
  local text = p:read("a")
  p:close()
  return text:match("perf_event") ~= nil
end

-- opts: interp, script, tmp, clients, lines, counter (nil, "perf" or
-- "strace": how the server's system calls are counted over the client's run).
-- Returns { cpu = server CPU seconds, requests = n, wall = client seconds,
--           syscalls = total and calls = { name = count } (with a counter;
--           perf counts the calls of E.perf_events() only) }.
function E.measure(kind, opts)
  local port, pid = start_server(kind, opts.tmp, opts.interp, opts.script)
  local result = {}
  local ok, err = pcall(function()
    local file = opts.counter and (opts.tmp .. "/" .. kind .. "." .. opts.counter)
    if file then os.remove(file) end
    if opts.counter == "strace" then
      sh(string.format("timeout -k 2 %d strace -c -f -q -o %s -p %d > /dev/null 2>&1 &",
                       LIMIT, q(file), pid))
      wait_until("strace to attach", 10, function()
        local st = read_all("/proc/" .. pid .. "/status") or ""
        return (tonumber(st:match("TracerPid:%s*(%d+)")) or 0) ~= 0
      end)
    elseif opts.counter == "perf" then
      -- perf stat -p ends when the server does (the server is under timeout)
      local p = io.popen(string.format("perf stat -x, -e %s -p %d -o %s > /dev/null 2>&1 & echo $!",
                                       E.perf_events(), pid, q(file)))
      local perf_pid = tonumber(p:read("l"))
      p:close()
      wait_until("perf stat to attach", 10, function() return has_perf_event(perf_pid) end)
    end
    local cpu0 = cpu_seconds(pid)
    result.requests, result.wall = run_client(opts.interp, opts.script, port,
                                              opts.clients, opts.lines)
    result.cpu = cpu_seconds(pid) - cpu0
    if opts.counter == "strace" then
      stop_server(pid)
      wait_until("strace's summary", 10, function()
        return (read_all(file) or ""):match("total") ~= nil
      end)
      result.syscalls, result.calls = parse_strace(read_all(file))
    elseif opts.counter == "perf" then
      stop_server(pid)
      local text
      wait_until("perf stat's count", 10, function()
        text = read_all(file) or ""
        return text:match("\n%d+,[^\n]*raw_syscalls:sys_enter") ~= nil
      end)
      result.syscalls, result.calls = parse_perf(text)
    end
  end)
  stop_server(pid)
  if not ok then error(err, 0) end
  return result
end

local function have(cmd)
  local p = io.popen("command -v " .. cmd .. " 2>/dev/null")
  local s = p:read("l")
  p:close()
  return s ~= nil and s ~= ""
end

function E.have_strace() return have("strace") end

-- perf stat counting the raw_syscalls:sys_enter tracepoint: installed, and
-- allowed here (perf_event_paranoid, tracefs)?
function E.have_perf()
  if not have("perf") then return false end
  local p = io.popen("perf stat -x, -e " .. E.perf_events() .. " -- true 2>&1")
  local out = p:read("a")
  p:close()
  return out:match("\n?(%d+),[^\n]*raw_syscalls:sys_enter") ~= nil
end

return E
