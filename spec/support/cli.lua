-- Shared by spec/cli_*_spec.lua and spec/gdb_*_spec.lua (issue 15): the
-- `asyncstack` command's path, child programs started in the background
-- (spec/fixtures/cli_child.lua and examples), running commands, and
-- parsers for what the command and as.dump() print.
local socket = require "socket"
local assert = require "luassert"   -- busted's, as in the specs

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

local made = {}

function M.tmpdir()
  local p = assert(io.popen("mktemp -d /tmp/asyncstack-cli.XXXXXX"))
  local d = p:read("l")
  p:close()
  made[#made + 1] = d
  return d
end

-- Removes every directory tmpdir() made (cores included): after_each.
function M.cleanup()
  for i = #made, 1, -1 do
    if made[i]:match("^/tmp/asyncstack%-cli%.") then os.execute("rm -rf " .. made[i]) end
    made[i] = nil
  end
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
  local cmd = ("cd %s && %s env LUA_PATH='%s' LUA_CPATH='%s' %s lua5.4 %s </dev/null >%s/log 2>&1 & echo $!")
    :format(os.getenv("PWD") or ".", wrapper or "", M.lpath, M.cpath, env or "", script_and_args, dir)
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

-- Asserts that process `pid` runs on and nobody traces it (after a --stop
-- read: the tool resumed it and detached).
function M.assert_resumed(pid)
  local state, tracer = M.proc_state(pid)
  assert.are.equal("R", state)
  assert.are.equal(0, tracer)
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

-- The tool's ps rows (JSON) by fork id.
function M.ps_json(target, extra)
  local out, status, err = M.tool_run(("ps %s --format json %s"):format(target, extra or ""))
  assert.are.equal(0, status, err)
  local doc = M.json(out)
  local by_id = {}
  for _, f in ipairs(doc.forks) do by_id[f.id] = f end
  return doc, by_id
end

-- What the child's own task says it waits on, as the tool's target text.
local function target_of(t)
  if type(t.waiting_for) == "string" then return t.waiting_for end
  if t.waiting_for and t.combinator then
    local ids = {}
    for i, id in ipairs(t.waiting_for) do ids[i] = "#" .. id end
    return ("forks %s (%s)"):format(table.concat(ids, ", "), t.combinator)
  end
  if t.waiting_for then return "fork #" .. t.waiting_for[1] end
end

-- Compares the tool's view of every fork with the child's; `blocker` is
-- the fork that took the snapshot (running then), `now_status` what it is
-- while the tool reads it.
function M.compare(view, doc, by_id, blocker_status, awaited_by_blocker)
  assert.are.equal(#view.tasks, #doc.forks)
  assert.are.equal("complete", doc.walk)
  for _, t in ipairs(view.tasks) do
    local m = by_id[t.id]
    assert.is_not_nil(m, "fork #" .. t.id .. " missing")
    assert.are.equal(t.name, m.name ~= "" and m.name or nil)
    assert.are.equal("complete", m.walk)
    if t.status == "running" then
      assert.are.equal(blocker_status, m.status)
    else
      assert.are.equal(t.status, m.status, "status of fork #" .. t.id)
      assert.are.equal(t.await and t.await.kind, m.await and m.await.kind)
      local want = target_of(t)
      if want then assert.are.equal(want, m.await.target:gsub(", timeout in .*$", "")) end
      if t.await and t.await.file then
        assert.are.equal(t.await.file, m.site.file)
        assert.are.equal(t.await.line, m.site.line)
      else
        assert.is_nil(m.site)
      end
    end
    assert.are.equal(t.spawned_by or 0, m.spawned_by)
    assert.are.equal(t.spawn.file, m.spawn.file)
    assert.are.equal(t.spawn.line, m.spawn.line)
    local tw, mw = {}, {}
    for i, id in ipairs(t.waiters or {}) do tw[i] = id end
    if t.id == awaited_by_blocker then tw[#tw + 1] = 1 end  -- main waits for it now
    for i, id in ipairs(m.waiters) do mw[i] = id end
    table.sort(tw); table.sort(mw)
    assert.are.same(tw, mw, "waiters of fork #" .. t.id)
  end
end

-- bt --all frames against the dump's frame lines, fork by fork (the
-- running fork's C frame on top, where the child blocks in C, dropped).
function M.compare_frames(view, target, drop_c_on)
  local out, status, err = M.tool_run(("bt %s --all"):format(target))
  assert.are.equal(0, status, err)
  local bt, order = M.parse_bt(out)
  local dump = M.parse_dump(view.dump)
  assert.are.equal(#view.tasks, #order)
  for id, lines in pairs(dump) do
    local got = bt[id]
    assert.is_not_nil(got, "fork #" .. id .. " has no trace")
    if id == drop_c_on and got[1] and got[1]:match("^%[C%]") then table.remove(got, 1) end
    assert.are.same(lines, got, "frames of fork #" .. id)
  end
  return bt
end

return M
