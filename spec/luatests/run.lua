-- spec/luatests/run.lua: Lua 5.4's own test files against the bridge
-- (issue 12, "It must show"). `make luatests` runs it from the repository
-- root:
--
--   lua5.4 spec/luatests/run.lua [--tarball PATH] [--build DIR] [--lua LUA]
--                                [--mode M] [--check-known SECONDS] [file ...]
--
-- It extracts the 5.4.4 test suite (testes/) from the tarball into
-- DIR/luatests/<mode>/ (never into the source tree), applies the reviewed
-- line-anchored edits of spec/luatests/edits.lua for that mode, and runs
-- each file in a child interpreter (--lua, default lua5.4; an absolute
-- path for anything not in PATH) the way testes/all.lua runs it: globals
-- _soft, _port, _nomsg false (test everything), T nil (no ltests), the
-- global `debug` removed, the file loaded through string.dump/load, in
-- two modes:
--
--   install  as.install(), then the file at the top level;
--   fork     as.run(function() dofile(file) end): the file runs inside the
--            root fork, with every coroutine it makes bridged.
--
-- Prints one line per file and mode, every edit applied with its reason,
-- and ends with "luatests: N passed, N failed"; exits 1 when one failed.
-- --check-known SECONDS also runs each file once without each group of
-- "known" edits (same reason), SECONDS at most, and says whether that
-- failure is still there (informative: it does not change the exit status).
local edits = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/edits.lua")

local FILES = { "coroutine.lua", "db.lua", "errors.lua", "calls.lua", "closure.lua" }
local MODES = { "install", "fork" }

local opts = { tarball = "../shared/lua/lua-5.4.4-testes.tar.gz", build = "build", lua = "lua5.4" }
local files, modes = {}, {}
do
  local i = 1
  while arg[i] do
    local a = arg[i]
    if a == "--tarball" then i = i + 1; opts.tarball = arg[i]
    elseif a == "--build" then i = i + 1; opts.build = arg[i]
    elseif a == "--lua" then i = i + 1; opts.lua = arg[i]
    elseif a == "--mode" then i = i + 1; modes[#modes + 1] = arg[i]
    elseif a == "--check-known" then i = i + 1; opts.check_known = assert(tonumber(arg[i]), "--check-known SECONDS")
    elseif a:match("%.lua$") then files[#files + 1] = a
    else
      io.stderr:write("usage: lua5.4 spec/luatests/run.lua [--tarball PATH] [--build DIR] " ..
                      "[--lua INTERPRETER] [--mode install|fork] [--check-known SECONDS] [file.lua ...]\n")
      os.exit(2)
    end
    i = i + 1
  end
end
if #files == 0 then files = FILES end
if #modes == 0 then modes = MODES end

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function sh(cmd)
  local ok = os.execute(cmd)
  return ok == true
end

local function die(msg)
  io.stderr:write("luatests: ", msg, "\n")
  print("luatests: 0 passed, 1 failed")
  os.exit(1)
end

local cwd = assert(io.popen("pwd")):read("l")
local function absolute(p) return p:sub(1, 1) == "/" and p or cwd .. "/" .. p end

local tarball = absolute(opts.tarball)
if not io.open(tarball, "rb") then
  die("no test suite at " .. tarball .. " (give --tarball PATH, Lua 5.4.4's lua-5.4.4-tests.tar.gz)")
end
local core = absolute(opts.build) .. "/asyncstack/core.so"
if not io.open(core, "rb") then die("no " .. core .. ": run make first") end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

-- Applies the edits for `file` in `mode` to the text; every edit names its
-- line and the exact text it expects there, so a different test suite
-- fails here instead of being patched at the wrong place.
local edits_in_use = edits

local function patch(text, file, mode, applied)
  local lines = {}
  for l in (text .. "\n"):gmatch("(.-)\r?\n") do lines[#lines + 1] = l end
  if text:sub(-1) == "\n" then lines[#lines] = nil end
  for _, e in ipairs(edits_in_use) do
    if e.file == file and (e.mode == nil or e.mode == mode) then
      if lines[e.line] ~= e.old then
        die(("edit of %s:%d does not apply: expected %q, found %q")
            :format(file, e.line, e.old, tostring(lines[e.line])))
      end
      local new = e.new or ("-- luatests: skipped: " .. e.old)
      assert(not new:find("\n"), "an edit replaces one line by one line (line numbers matter)")
      lines[e.line] = new
      applied[#applied + 1] = e
    end
  end
  return table.concat(lines, "\n") .. "\n"
end

-- The child: all.lua's settings and dofile, then the file in `mode`.
local DRIVER = [[
local mode, file = ...
_soft, _port, _nomsg = false, false, false
T = nil
_G.ARG = arg
local as = require "asyncstack"
local KEEP_DEBUG = %s
if not KEEP_DEBUG then debug = nil end      -- as all.lua: tests require it
local function dofile_dumped(n)              -- as all.lua's dofile
  local f = assert(loadfile(n))
  return assert(load(string.dump(f)))()
end
if mode == "install" then
  as.install()
  dofile_dumped(file)
else
  as.run(function() dofile_dumped(file) end)
end
io.write("luatests-child: ", file, " completed\n")
]]

local lpath = absolute("lua") .. "/?.lua;" .. absolute("lua") .. "/?/init.lua;;"
local cpath = absolute(opts.build) .. "/?.so;;"

-- Extracts a fresh test suite for `mode`; returns its testes directory and
-- the environment entries of edits.lua that apply.
local function prepare(mode)
  local dir = absolute(opts.build) .. "/luatests/" .. mode
  if not sh("rm -rf " .. sh_quote(dir) .. " && mkdir -p " .. sh_quote(dir) ..
            " && tar xzf " .. sh_quote(tarball) .. " -C " .. sh_quote(dir) ..
            " --strip-components=1") then
    die("cannot extract " .. tarball .. " into " .. dir)
  end
  local env = {}
  for _, e in ipairs(edits.env or {}) do
    if e.mode == nil or e.mode == mode then env[#env + 1] = e end
  end
  return dir .. "/testes", env
end

local pristine = {}

-- Runs `file` in `mode` with the edits that apply, except those whose
-- reason is `without` (for --check-known); `limit` seconds at most when
-- given. Returns ok, the child's output, the edits applied.
local function run_file(testes, env, mode, file, without, limit)
  local key = testes .. "/" .. file
  pristine[key] = pristine[key] or read(key)
  local applied, keep_debug = {}, false
  local kept = {}
  for _, e in ipairs(edits) do
    if e.why ~= without then kept[#kept + 1] = e end
  end
  edits_in_use = kept
  write(key, patch(pristine[key], file, mode, applied))
  for _, e in ipairs(env) do
    if e.keep_debug and e.why ~= without then keep_debug = true end
  end
  write(testes .. "/luatests_driver.lua", DRIVER:format(tostring(keep_debug)))
  local log = testes .. "/../" .. file .. ".log"
  local cmd = ("cd %s && LUA_PATH=%s LUA_CPATH=%s %s%s luatests_driver.lua %s %s > %s 2>&1")
    :format(sh_quote(testes), sh_quote(lpath), sh_quote(cpath),
            limit and ("timeout " .. limit .. " ") or "", sh_quote(opts.lua), mode, file,
            sh_quote(log))
  local ok = sh(cmd)
  local out = read(log)
  ok = ok and out:find("luatests-child: " .. file .. " completed", 1, true) ~= nil
  return ok, out, applied
end

local passed, failed = 0, 0

for _, mode in ipairs(modes) do
  local testes, env = prepare(mode)
  for _, e in ipairs(env) do
    print(("  [%s] environment [%s]: %s -- %s"):format(mode, e.kind, e.what, e.why))
  end
  for _, file in ipairs(files) do
    local t0 = os.time()
    local ok, out, applied = run_file(testes, env, mode, file)
    print(("%-6s %-8s %-14s %3ds  %d edit(s)"):format(ok and "ok" or "FAILED", mode, file,
                                                       os.time() - t0, #applied))
    for _, e in ipairs(applied) do
      print(("         %s:%d [%s] %s"):format(file, e.line, e.kind, e.why))
    end
    if ok then
      passed = passed + 1
    else
      failed = failed + 1
      local tail = {}
      for l in out:gmatch("[^\n]+") do tail[#tail + 1] = l end
      for i = math.max(1, #tail - 25), #tail do print("         | " .. tail[i]) end
    end
  end
  -- --check-known: does each known failure still fail without its edits?
  if opts.check_known then
    local seen = {}
    local groups = {}
    for _, e in ipairs(env) do
      if e.kind == "known" and not seen[e.why] then
        seen[e.why] = true
        for _, file in ipairs(files) do groups[#groups + 1] = { why = e.why, file = file } end
      end
    end
    for _, e in ipairs(edits) do
      if e.kind == "known" and (e.mode == nil or e.mode == mode) and not seen[e.why .. e.file] then
        seen[e.why .. e.file] = true
        groups[#groups + 1] = { why = e.why, file = e.file }
      end
    end
    for _, g in ipairs(groups) do
      local ok = run_file(testes, env, mode, g.file, g.why, opts.check_known)
      print(("known  %-8s %-14s %s: %s"):format(mode, g.file,
            ok and "PASSES NOW, remove its edits" or "still fails", g.why))
    end
  end
end
print(("luatests: %d passed, %d failed"):format(passed, failed))
os.exit(failed == 0 and 0 or 1)
