-- An echo server on asyncstack.socket: one fork per connection.
--
--   lua5.4 examples/echo_server.lua [port]      (port 0 or none: any free port)
--
-- Line protocol: each line comes back as it was sent. The line "poison"
-- makes the handler fail deep inside a helper: the server logs that
-- connection's async trace to stderr, closes the connection and keeps
-- serving the others. The line "quit" stops the server: it stops accepting
-- and exits once the open connections are closed.

local as = require "asyncstack"
local socket = require "asyncstack.socket"

local port = tonumber(arg and arg[1]) or 0

-- A deep accept queue: when a burst of connects overflows it, the kernel
-- drops SYNs and those clients retry a second later.
local server = assert(socket.bind("127.0.0.1", port, 1024))
local _, bound_port = server:getsockname()
print(("listening on 127.0.0.1:%s"):format(bound_port))
io.stdout:flush()

-- The "business logic", a few calls deep so that a failure has a trace.
local function check_line(line)
  if line == "poison" then error("poisoned line received") end
  return line
end

local function reply_for(line)
  return check_line(line) .. "\n"
end

-- Serves one connection until the client closes it (or says "quit").
local function handle(conn)
  while true do
    local line, err = conn:receive("*l")
    if not line then return err end              -- "closed", usually
    if line == "quit" then
      server:close()                             -- wakes the accept loop
      return "quit"
    end
    local ok, send_err = conn:send(reply_for(line))
    if not ok then return send_err end
  end
end

-- One fork per connection, named after the peer, and a small supervisor
-- fork that waits for it: when the handler fails, pwait hands over the
-- exception, whose trace runs from the raise site through the handler's
-- fork to this supervisor and the accept loop. Logging it here keeps one
-- bad connection from stopping the server.
local function supervise(conn, label)
  local handler = as.fork(handle, conn)
  handler:name(label)
  local ok, e = as.pwait(handler)
  conn:close()
  if not ok then
    io.stderr:write(("echo_server: %s failed:\n%s\n"):format(label, tostring(e)))
    io.stderr:flush()
  end
end

as.run(function()
  as.current():name("accept loop")
  while true do
    local conn, err = server:accept()
    if not conn then
      if err == "closed" then break end          -- "quit" closed the server
      io.stderr:write("echo_server: accept failed: ", err, "\n")
      as.sleep(0.1)                              -- e.g. out of fds: back off
    else
      local ip, peer_port = conn:getpeername()
      local label = ("conn %s:%s"):format(ip, peer_port)
      as.fork(supervise, conn, label):name("supervisor")
    end
  end
end)
