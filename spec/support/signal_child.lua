-- Child processes for the signal specs (spec/signals_spec.lua and the
-- regression specs of issues 12 and 13): a lua5.4 script that sends itself
-- signals at set times, or the state host (src-test/statehost.c). Each runs
-- under `timeout`, so a hang is a failure (status 137), not a stuck suite.
local M = {}

local core_path = assert(package.searchpath("asyncstack.core", package.cpath))
local build_dir = assert(core_path:match("^(.-)/?asyncstack/core%.so$"))
if build_dir == "" then build_dir = "." end
M.build_dir = build_dir
-- then the caller's path (LuaSocket: under `make test-apicheck` the child's
-- interpreter has no Debian paths of its own, so ";;" alone misses them)
M.cpath = ("%s/?.so;%s/test/?.so;%s"):format(build_dir, build_dir, os.getenv("LUA_CPATH") or ";;")
M.path = os.getenv("LUA_PATH") or "lua/?.lua;lua/?/init.lua;;"
M.host = build_dir .. "/test/statehost"
M.under_asan = os.getenv("ASYNCSTACK_ASAN") == "1"

-- Prepended to every script: PID, and send_later(sig, secs), which has a
-- shell send SIG to this process after secs seconds.
local PRELUDE = [[
local PID = assert(tonumber(io.open("/proc/self/stat"):read("a"):match("^%d+")))
local function send_later(sig, secs)
  assert(os.execute(("(sleep %s; kill -%s %d) >/dev/null 2>&1 &"):format(secs, sig, PID)))
end
]]

local function shell(cmd, limit)
  local full = ("exec 2>/dev/null; ulimit -c 0; (LUA_PATH='%s' LUA_CPATH='%s' timeout -s KILL %d %s 2>&1); echo \"status=$?\"")
    :format(M.path, M.cpath, limit or 20, cmd)
  local p = assert(io.popen(full))
  local out = p:read("a")
  p:close()
  -- the status line is the shell's last word, but a process the child
  -- started may still write after it (e.g. a popen'ed shell whose reader
  -- died: SIGPIPE is ignored in busted, and such ignoring is inherited)
  local status = tonumber(out:match(".*status=(%d+)\n"))
  return (out:gsub("status=%d+\n", "", 1)), status
end

-- Runs Lua source `script` (after the prelude) in lua5.4 with `args`;
-- returns stdout and stderr together, and the exit status as the shell
-- reports it (128 + n when signal n ended it).
function M.lua(script, limit, args)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(PRELUDE, script)
  f:close()
  local out, status = shell(("lua5.4 %s %s"):format(path, args or ""), limit)
  os.remove(path)
  return out, status
end

-- Runs a shell command line with the repository's paths.
M.shell = shell

-- Runs the state host with these arguments (each quoted for the shell).
function M.statehost(...)
  local args = {}
  for i, a in ipairs({...}) do args[i] = "'" .. tostring(a):gsub("'", "'\\''") .. "'" end
  return shell(M.host .. " " .. table.concat(args, " "))
end

-- State-host code that loads asyncstack as `as` in the state.
M.REQUIRE = 'as = require "asyncstack"'

return M
