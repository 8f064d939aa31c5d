-- Shared by spec/cli_*_spec.lua and spec/gdb_*_spec.lua (issue 15): the
-- `asyncstack` command's path, child programs started in the background
-- (spec/fixtures/cli_child.lua and examples), running commands, and
-- parsers for what the command and as.dump() print.
local socket = require "socket"

local M = {}

M.under_asan = os.getenv("ASYNCSTACK_ASAN") == "1"

local core = assert(package.searchpath("asyncstack.core", package.cpath))
M.build = core:match("^(.*)/asyncstack/core%.so$") or "build"
M.core_so = core
M.tool = M.build .. "/bin/asyncstack"
M.lpath = os.getenv("LUA_PATH") or "lua/?.lua;lua/?/init.lua;;"
M.cpath = os.getenv("LUA_CPATH") or (M.build .. "/?.so;;")

-- Runs a shell command; returns its stdout+stderr and exit status.
function M.sh(cmd)
  local p = assert(io.popen("(" .. cmd .. ") 2>&1; echo \"status=$?\""))
  local out = p:read("a")
  p:close()
  local status = tonumber(out:match("status=(%d+)%s*$"))
  return (out:gsub("status=%d+%s*$", "")), status
end

-- Runs the tool with `args` (a string); stdout and stderr apart.
function M.tool_run(args, prefix)
  local err = os.tmpname()
  local p = assert(io.popen(("%s %s %s 2>%s; echo \"status=$?\""):format(prefix or "", M.tool, args, err)))
  local out = p:read("a")
  p:close()
  local f = io.open(err)
  local errtext = f and f:read("a") or ""
  if f then f:close() end
  os.remove(err)
  local status = tonumber(out:match("status=(%d+)%s*$"))
  return (out:gsub("status=%d+%s*$", "")), status, errtext
end

function M.tmpdir()
  local p = assert(io.popen("mktemp -d /tmp/asyncstack-cli.XXXXXX"))
  local d = p:read("l")
  p:close()
  return d
end

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end
M.exists = exists

-- Polls until `fn()` is true (at most `seconds`).
function M.wait_until(fn, seconds)
  local deadline = socket.gettime() + (seconds or 20)
  while socket.gettime() < deadline do
    local v = fn()
    if v then return v end
    socket.sleep(0.02)
  end
  return nil
end

-- Starts `lua5.4 script args...` in the background (its own env prefix,
-- e.g. "ASYNCSTACK_DEBUG_LUA_RELEASE=5.4.0"); returns its pid.
function M.spawn(script_and_args, env, wrapper)
  local dir = M.tmpdir()
  local cmd = ("cd %s && %s env %s LUA_PATH='%s' LUA_CPATH='%s' lua5.4 %s </dev/null >%s/log 2>&1 & echo $!")
    :format(os.getenv("PWD") or ".", wrapper or "", env or "", M.lpath, M.cpath, script_and_args, dir)
  local p = assert(io.popen(cmd))
  local pid = tonumber(p:read("l"))
  p:close()
  return pid, dir
end

-- Starts spec/fixtures/cli_child.lua in MODE and waits for its own view.
function M.start(mode, opts)
  opts = opts or {}
  local dir = M.tmpdir()
  local out = dir .. "/view.lua"
  local fifo = dir .. "/fifo"
  if mode == "ccall" then os.execute("mkfifo " .. fifo) end
  local pid = M.spawn(("spec/fixtures/cli_child.lua %s %s %s"):format(mode, out, opts.arg or fifo),
                      opts.env, opts.wrapper)
  local view = M.wait_until(function() return exists(out) and dofile(out) end, opts.timeout or 60)
  assert(view, "the child wrote no view (mode " .. mode .. ")")
  assert(view.pid == pid or opts.wrapper, "pid mismatch")
  view.pid = view.pid or pid
  view.dir = dir
  return view
end

function M.kill(pid)
  if pid then os.execute("kill -9 " .. pid .. " 2>/dev/null") end
  M.wait_until(function()
    local f = io.open("/proc/" .. pid .. "/stat")
    if not f then return true end
    local st = f:read("l")
    f:close()
    return st == nil or st:match("^%d+ %b() ([ZX])") ~= nil
  end, 10)
end

-- /proc/PID/status's State and TracerPid.
function M.proc_state(pid)
  local f = io.open("/proc/" .. pid .. "/status")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text:match("State:%s*(%a)"), tonumber(text:match("TracerPid:%s*(%d+)"))
end

-- A small JSON decoder (objects, arrays, strings, numbers, booleans, null)
-- for `asyncstack ps --format json`.
function M.json(text)
  local pos = 1
  local function ws() pos = text:find("[^ \t\r\n]", pos) or #text + 1 end
  local value
  local function str()
    local out, i = {}, pos + 1
    while true do
      local c = text:sub(i, i)
      if c == '"' then break end
      if c == "\\" then
        local e = text:sub(i + 1, i + 1)
        if e == "u" then
          out[#out + 1] = utf8.char(tonumber(text:sub(i + 2, i + 5), 16))
          i = i + 6
        else
          out[#out + 1] = ({ n = "\n", t = "\t", r = "\r", b = "\b", f = "\f" })[e] or e
          i = i + 2
        end
      else
        out[#out + 1] = c
        i = i + 1
      end
    end
    pos = i + 1
    return table.concat(out)
  end
  function value()
    ws()
    local c = text:sub(pos, pos)
    if c == "{" then
      local t = {}
      pos = pos + 1
      ws()
      if text:sub(pos, pos) == "}" then pos = pos + 1 return t end
      while true do
        ws()
        local k = str()
        ws()
        assert(text:sub(pos, pos) == ":", "json: ':' expected at " .. pos)
        pos = pos + 1
        t[k] = value()
        ws()
        c = text:sub(pos, pos)
        pos = pos + 1
        if c == "}" then return t end
        assert(c == ",", "json: ',' expected at " .. pos)
      end
    elseif c == "[" then
      local t = {}
      pos = pos + 1
      ws()
      if text:sub(pos, pos) == "]" then pos = pos + 1 return t end
      while true do
        t[#t + 1] = value()
        ws()
        c = text:sub(pos, pos)
        pos = pos + 1
        if c == "]" then return t end
        assert(c == ",", "json: ',' expected at " .. pos)
      end
    elseif c == '"' then
      return str()
    elseif text:sub(pos, pos + 3) == "true" then pos = pos + 4 return true
    elseif text:sub(pos, pos + 4) == "false" then pos = pos + 5 return false
    elseif text:sub(pos, pos + 3) == "null" then pos = pos + 4 return nil
    else
      local num = text:match("^-?[%d.eE+-]+", pos)
      assert(num, "json: value expected at " .. pos)
      pos = pos + #num
      return math.tointeger(tonumber(num)) or tonumber(num)
    end
  end
  local v = value()
  return v
end

-- `asyncstack bt` text: { [fork id] = { "file:line in desc", ... } }, and
-- the list of ids in order. Tail-call markers are left out.
function M.parse_bt(text)
  local forks, order, cur = {}, {}, nil
  for line in text:gmatch("[^\n]*") do
    local id = line:match("^fork #(%d+)")
    if id then
      cur = {}
      forks[tonumber(id)] = cur
      order[#order + 1] = tonumber(id)
    elseif cur and line:match("^\t") and not line:match("^\t%[") and
           not line:match("%(%.%.%.tail calls%.%.%.%)") then
      local loc, desc = line:match("^\t(.-): in (.-)  %(root of") 
      if not loc then loc, desc = line:match("^\t(.-): in (.*)$") end
      if loc then cur[#cur + 1] = loc .. " in " .. desc end
    end
  end
  return forks, order
end

-- as.dump() text: { [fork id] = { "file:line in desc", ... } }.
function M.parse_dump(text)
  local forks, cur = {}, nil
  for line in text:gmatch("[^\n]*") do
    local id = line:match("^fork #(%d+)")
    if id then
      cur = {}
      forks[tonumber(id)] = cur
    elseif cur then
      local rest = line:match("^\t#%d+ (.*)$")
      if rest then cur[#cur + 1] = rest end
    end
  end
  return forks
end

-- The lines of a traceback text after "stack traceback:" (tabs kept).
function M.trace_lines(text)
  local out, on = {}, false
  for line in text:gmatch("[^\n]*") do
    if line == "stack traceback:" then on = true
    elseif on then
      if line == "" then break end
      out[#out + 1] = line
    end
  end
  return out
end

return M
