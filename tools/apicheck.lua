-- `make test-apicheck`: every spec file under an interpreter built with
-- LUA_USE_APICHECK and LUAI_ASSERT (build/lua-apicheck/lua), so that a C API
-- misuse aborts at the call.
--
--   lua5.4 tools/apicheck.lua INTERPRETER [busted flags...]
--
-- An abort ends the whole busted process, so each spec file runs in its own
-- process, and when one aborts the runner reports the test that was running
-- (tools/busted_announce.lua), the assertion and the native stack resolved
-- to our functions (src-test/abort_trace.c, addr2line), then runs the file
-- again without that test to find the next one.
--
-- Known failures: tools/apicheck-known.txt lists tests that abort today,
-- each naming the issue-13 defect that causes it. They are reported as
-- "known" (never skipped silently: the runner still runs them and checks that
-- they abort); a listed test that no longer aborts is a failure too ("remove
-- it from the list"), so the list empties as the defects are fixed.
-- Exit status 0 only when nothing failed outside the list.

local interpreter = assert(arg[1], "usage: tools/apicheck.lua INTERPRETER [busted flags]")
local busted_flags = table.concat(arg, " ", 2)
local KNOWN_FILE = "tools/apicheck-known.txt"

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local function lua_pattern_quote(s) return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")) end

-- Known list: "<defect> | <assertion's function> | <our innermost function (file.c)>"
-- per line, e.g. "D12 | lua_pushvalue | fail (sched.c)". An abort matches a
-- line when its signature (see signature()) is that pair.
local known, known_order = {}, {}
do
  local f = io.open(KNOWN_FILE)
  if f then
    for line in f:lines() do
      if not line:match("^%s*#") and line:match("%S") then
        local why, api, site = line:match("^%s*(.-)%s*|%s*(.-)%s*|%s*(.-)%s*$")
        assert(why and site ~= "", KNOWN_FILE .. ": bad line: " .. line)
        local key = api .. " in " .. site
        known[key] = { why = why, key = key, seen = 0 }
        known_order[#known_order + 1] = key
      end
    end
    f:close()
  end
end

local function spec_files()
  local p = assert(io.popen("find spec -name '*_spec.lua' | sort"))
  local files = {}
  for line in p:lines() do files[#files + 1] = line end
  p:close()
  return files
end

-- "/x/core.so(+0x1a2b)[0x...]" -> "function (file:line)" through addr2line.
local resolved_cache = {}
local function resolve(object, offset)
  local key = object .. offset
  if resolved_cache[key] == nil then
    local p = io.popen(("addr2line -f -s -e %s %s 2>/dev/null"):format(shell_quote(object), offset))
    local fn, where = p:read("l"), p:read("l")
    p:close()
    resolved_cache[key] = fn and fn ~= "??" and (fn .. " (" .. (where or "?") .. ")") or false
  end
  return resolved_cache[key]
end

-- Our frames (not the interpreter's, not libc's) of the first native stack
-- in `text`, innermost first, at most 6.
local function native_frames(text)
  local frames = {}
  for object, offset in text:gmatch("abort%-trace: ([^\n(]+)%((%+0x%x+)%)") do
    if object:match("%.so$") and not object:match("/libc[%.%-]") then
      local r = resolve(object, offset:sub(2))
      if r then frames[#frames + 1] = r end
    end
    if #frames >= 6 then break end
  end
  return frames
end

-- An abort's signature: the asserting API function and our innermost
-- function with its file (no line: lines move), e.g.
-- "lua_pushvalue in fail (sched.c)". nil when `text` holds no assertion.
local function abort_of(text)
  local assertion = text:match("[^\n]*Assertion `[^\n]*")
  if not assertion then return nil end
  local frames = native_frames(text)
  local api = assertion:match("%.c:%d+: ([%w_]+): Assertion") or "?"
  local site = "?"
  if frames[1] then
    local fn, file = frames[1]:match("^(%S+) %(([^:)]+)")
    site = fn and (fn .. " (" .. file .. ")") or frames[1]
  end
  return {
    signature = api .. " in " .. site,
    assertion = assertion:gsub("^%s*#?%s*%(?%w*%)?%s*'?", ""),
    frames = frames,
  }
end

local totals = { files = 0, passed = 0, failed = 0, aborts = 0, known = 0 }
local problems, signatures = {}, {}

local function record_abort(file, test, where, a)
  totals.aborts = totals.aborts + 1
  local k = known[a.signature]
  if k then k.seen = k.seen + 1; totals.known = totals.known + 1 else totals.failed = totals.failed + 1 end
  signatures[a.signature] = (signatures[a.signature] or 0) + 1
  local lines = { ("%s %s\n  spec: %s\n  test: %s\n  %s"):format(
    k and "KNOWN ABORT (" .. k.why .. ")" or "ABORT", where, file, tostring(test), a.assertion) }
  for _, fr in ipairs(a.frames) do lines[#lines + 1] = "    " .. fr end
  problems[#problems + 1] = table.concat(lines, "\n")
end

local function run_file(file)
  local filters, done = {}, {}
  for _ = 1, 60 do
    local cmd = ("%s /usr/bin/busted --helper=tools/busted_announce.lua -o TAP %s %s %s 2>&1; echo \"exit=$?\"")
      :format(shell_quote(interpreter), table.concat(filters, " "), busted_flags, shell_quote(file))
    local p = assert(io.popen(cmd))
    local out = "\n" .. p:read("a")
    p:close()
    local status = tonumber(out:match("exit=(%d+)%s*$"))
    local planned = out:match("\n1%.%.(%d+)\n")
    -- Each TAP result with the lines that follow it (a failure's message).
    local failed_here = 0
    local pos = 1
    out = out .. "\n"
    while true do
      local s, e, head = out:find("\n?(n?o?t? ?ok %d+ %- [^\n]*)\n", pos)
      if not s then break end
      local nexts = out:find("\nn?o?t? ?ok %d+ %- ", e) or out:find("\n1%.%.%d+\n", e) or #out
      local body = out:sub(e + 1, nexts)
      local name = head:match("^n?o?t? ?ok %d+ %- (.*)$")
      if head:match("^ok") then
        if not done[name] then totals.passed = totals.passed + 1 end
        done[name] = true
      elseif done[name] then
        failed_here = failed_here + 1  -- failed in an earlier round: already counted
      else
        done[name] = true
        failed_here = failed_here + 1
        local a = abort_of(body)
        if a then
          record_abort(file, name, "(in a child lua5.4 the test started)", a)
        else
          totals.failed = totals.failed + 1
          problems[#problems + 1] = ("FAILED (not an abort) %s: %s\n%s"):format(file, name, body:sub(1, 1500))
        end
      end
      pos = nexts
    end
    if planned then
      if status ~= 0 and failed_here == 0 then
        totals.failed = totals.failed + 1
        problems[#problems + 1] = ("FAILED %s: busted exited %d with no failing test\n%s")
          :format(file, status, out:sub(-2000))
      end
      return
    end
    -- The process died in the middle of a test.
    local current
    for name in out:gmatch("announce: ([^\n]*)") do current = name end
    local a = abort_of(out:sub((out:find("announce: " .. (current or ""), 1, true) or 1)))
      or { signature = "?", assertion = "no assertion message; last lines:\n" .. out:sub(-800), frames = {} }
    record_abort(file, current, "(in busted's process)", a)
    if not current or done[current] then return end
    done[current] = true
    filters[#filters + 1] = "--filter-out=" .. shell_quote("^" .. lua_pattern_quote(current) .. "$")
  end
  problems[#problems + 1] = "FAILED " .. file .. ": gave up after 60 aborts"
  totals.failed = totals.failed + 1
end

-- Parallel: the master starts APICHECK_JOBS workers (default 2), each
-- running every Nth spec file and writing what it found to a file as a Lua
-- chunk; the master merges them and prints the report.
local worker_of = os.getenv("APICHECK_WORKER")
local start = os.time()
if worker_of then
  local k, jobs = worker_of:match("^(%d+)/(%d+)$")
  k, jobs = tonumber(k), tonumber(jobs)
  for i, file in ipairs(spec_files()) do
    if i % jobs == k then
      totals.files = totals.files + 1
      io.write("apicheck: ", file, "\n"); io.flush()
      run_file(file)
    end
  end
  local out = assert(io.open(assert(os.getenv("APICHECK_OUT")), "w"))
  local function dump(v)
    if type(v) == "table" then
      local parts = {}
      for key, x in pairs(v) do parts[#parts + 1] = "[" .. dump(key) .. "]=" .. dump(x) end
      return "{" .. table.concat(parts, ",") .. "}"
    end
    return string.format("%q", v)
  end
  local seen = {}
  for key, k2 in pairs(known) do seen[key] = k2.seen end
  out:write("return ", dump { totals = totals, problems = problems, signatures = signatures, seen = seen })
  out:close()
  os.exit(0)
end

local jobs = tonumber(os.getenv("APICHECK_JOBS")) or 2
local script, outs = {}, {}
for k = 0, jobs - 1 do
  outs[k] = os.tmpname()
  script[#script + 1] = ("APICHECK_WORKER=%d/%d APICHECK_OUT=%s %s %s %s %s &"):format(
    k, jobs, outs[k], shell_quote(arg[-1] or "lua5.4"), shell_quote(arg[0]), shell_quote(interpreter), busted_flags)
end
script[#script + 1] = "wait"
os.execute(table.concat(script, "\n"))
for k = 0, jobs - 1 do
  local chunk = loadfile(outs[k])
  os.remove(outs[k])
  if not chunk then
    totals.failed = totals.failed + 1
    problems[#problems + 1] = ("FAILED: apicheck worker %d/%d wrote no result"):format(k, jobs)
  else
    local r = chunk()
    for key, v in pairs(r.totals) do totals[key] = totals[key] + v end
    for _, p in ipairs(r.problems) do problems[#problems + 1] = p end
    for sig, n in pairs(r.signatures) do signatures[sig] = (signatures[sig] or 0) + n end
    for key, n in pairs(r.seen) do known[key].seen = known[key].seen + n end
  end
end

for _, p in ipairs(problems) do print(p) end
print("apicheck: distinct aborts (assertion in our innermost function), with the tests that hit each:")
local sigs = {}
for sig, n in pairs(signatures) do sigs[#sigs + 1] = sig end
table.sort(sigs)
for _, sig in ipairs(sigs) do
  print(("  %4d  %s%s"):format(signatures[sig], sig, known[sig] and "  [known: " .. known[sig].why .. "]" or "  [NOT KNOWN]"))
end
for _, key in ipairs(known_order) do
  if known[key].seen == 0 then
    totals.failed = totals.failed + 1
    print(("STALE known failure: %s no longer aborts; remove it from %s"):format(key, KNOWN_FILE))
  end
end
print(("apicheck: %d spec files in %ds, %d tests passed, %d aborts (%d known, listed in %s), %d failed")
  :format(totals.files, os.time() - start, totals.passed, totals.aborts, totals.known, KNOWN_FILE, totals.failed))
os.exit(totals.failed == 0 and totals.passed > 0 and 0 or 1)
