-- Shared by the specs: error text without its "file:line: " position prefix.
local helper = {}

function helper.error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error, got success")
  if type(err) == "string" then return (err:gsub("^[^\n:]+:%d+: ", "")) end
  return err
end

-- Runs `script` (Lua source) in a child lua5.4 with the repository's paths;
-- returns its combined output and exit status.
function helper.run_child(script, env)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(script)
  f:close()
  local cpath = os.getenv("LUA_CPATH") or "build/?.so;;"
  local lpath = os.getenv("LUA_PATH") or "lua/?.lua;lua/?/init.lua;;"
  local cmd = ("ulimit -c 0; %s LUA_PATH='%s' LUA_CPATH='%s' lua5.4 %s 2>&1; echo \"status=$?\"")
    :format(env or "", lpath, cpath, path)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  os.remove(path)
  local status = tonumber(out:match("status=(%d+)%s*$"))
  return out:gsub("status=%d+%s*$", ""), status
end

-- A connected pair of loopback TCP sockets (plain LuaSocket, blocking setup,
-- then non-blocking), for the fd specs.
function helper.socket_pair()
  local socket = require "socket"
  local server = assert(socket.bind("127.0.0.1", 0))
  local _, port = server:getsockname()
  local client = assert(socket.connect("127.0.0.1", port))
  local peer = assert(server:accept())
  server:close()
  client:settimeout(0)
  peer:settimeout(0)
  return client, peer
end

-- The test-only memory-walker module (build/test/asyncstack_memwalk.so),
-- found next to the asyncstack.core the paths give.
function helper.load_memwalk()
  local ok, mw = pcall(require, "asyncstack_memwalk")
  if ok then return mw end
  local core = package.searchpath("asyncstack.core", package.cpath)
  local dir = core and core:match("^(.*)/asyncstack/core%.so$") or "build"
  package.cpath = dir .. "/test/?.so;" .. package.cpath
  return require "asyncstack_memwalk"
end

return helper
