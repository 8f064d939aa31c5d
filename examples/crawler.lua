-- A crawler on asyncstack.socket: one fork per URL, all waited for with a
-- timeout. One URL never answers; when the timeout fires, the report says
-- which fork is late and where it is blocked.
--
--   lua5.4 examples/crawler.lua
--
-- The site it crawls is served by this same process, from a fork: a tiny
-- HTTP/1.0 server on 127.0.0.1 whose /slow page never answers.

local as = require "asyncstack"
local socket = require "asyncstack.socket"

---------------------------------------------------------------- the site

local PAGES = {
  ["/"] = "<h1>home</h1>",
  ["/about"] = "<p>a tiny site for a crawler</p>",
  ["/news"] = ("<li>news</li>"):rep(100),
}

local function respond(conn, status, body)
  conn:send(("HTTP/1.0 %s\r\nContent-Length: %d\r\n\r\n%s"):format(status, #body, body))
end

local function serve_page(conn)
  local request = conn:receive("*l")                -- "GET /path HTTP/1.0"
  repeat local header = conn:receive("*l") until header == "" or header == nil
  local path = request and request:match("^GET (%S+) HTTP/1%.%d$")
  if path == "/slow" then
    conn:receive("*a")           -- never answers: reads until the client hangs up
  elseif PAGES[path] then
    respond(conn, "200 OK", PAGES[path])
  else
    respond(conn, "404 Not Found", "no such page")
  end
  conn:close()
end

local function serve_site(server)
  while true do
    local conn = server:accept()
    if not conn then return end                    -- the server socket was closed
    as.fork(serve_page, conn):name("page server")
  end
end

------------------------------------------------------------- the crawler

-- Reads the status line and the headers; returns the status code.
local function read_head(conn)
  local status_line, err = conn:receive("*l")
  if not status_line then return nil, err end
  repeat local header = conn:receive("*l") until header == "" or header == nil
  return tonumber(status_line:match("^HTTP/1%.%d (%d%d%d)"))
end

-- GET url -> status code, body length (or nil, error)
local function fetch(url)
  local host, port, path = url:match("^http://([^:/]+):(%d+)(/.*)$")
  local conn <close>, err = socket.connect(host, tonumber(port), 5)
  if not conn then return nil, err end
  conn:send(("GET %s HTTP/1.0\r\nHost: %s\r\n\r\n"):format(path, host))
  local status
  status, err = read_head(conn)
  if not status then return nil, err end
  local body = conn:receive("*a")
  return status, #body
end

as.run(function()
  local server = assert(socket.bind("127.0.0.1", 0))
  local _, port = server:getsockname()
  local site = as.fork(serve_site, server)
  site:name("site")

  local paths = { "/", "/about", "/slow", "/news", "/missing" }
  local forks = {}
  for i, path in ipairs(paths) do
    forks[i] = as.fork(fetch, ("http://127.0.0.1:%s%s"):format(port, path))
    forks[i]:name("fetch " .. path)
  end

  local ok, e = as.pcall(as.wait_all, forks, 1.0)
  if not ok then
    print("wait_all failed: " .. e:getMessage())
    print(tostring(e))
    -- The exception was raised here, in the waiter. Where the late fork
    -- is blocked is on its own stack: the dump shows every live fork there.
    io.write(as.dump())
  end

  print("results:")
  for i, f in ipairs(forks) do
    if f:status() == "done" then
      local status, size = as.wait(f)
      print(("  GET %-8s -> %s, %d bytes"):format(paths[i], status, size))
    else
      print(("  GET %-8s -> still %s, cancelled"):format(paths[i], f:status()))
      f:cancel()                    -- its socket is closed by <close>
      as.pwait(f)
    end
  end
  server:close()                    -- ends the site's accept loop
end)
