-- Issue 14: the published debug descriptor (src/debuglayout.h) and the
-- memory-level walker of every fork (src/memwalk_forks.c), read from this
-- process's own memory through the test-only module asyncstack_memwalk and
-- compared with what the in-process introspection says (as.tasks(): its
-- backtraces are debug_backtrace / fork_backtrace frames): same forks, names,
-- statuses, await kinds, spawners, spawn sites, waiters, and the same frames
-- (file, line, function name) one by one, for hand-written shapes and for
-- the random programs of spec/random/generator.lua at each of their trace
-- points. Runs under busted (make test) and, through
-- src-test/memwalk_runner.lua, under every interpreter of
-- `make test-lua-versions`.
local as = require "asyncstack"

local mw = require("spec.helper").load_memwalk()
local CORE = package.searchpath("asyncstack.core", package.cpath)
local PROGRAMS = math.tointeger(tonumber(os.getenv("ASYNCSTACK_MEMWALK_PROGRAMS") or "")) or 40
local FIRST_SEED = 8100001

-- The differences between the memory view `mem` (mw.forks) and the task
-- list `tasks` (as.tasks()), taken on one line by the running fork, as a
-- list of strings (empty: they agree).
local function differences(mem, tasks)
  local out = {}
  local function bad(fmt, ...) out[#out + 1] = string.format(fmt, ...) end
  if mem.status ~= "complete" then bad("walk %s: %s", mem.status, tostring(mem.error)) end
  local by_id = {}
  for _, m in ipairs(mem.forks) do by_id[m.id] = m end
  if #mem.forks ~= #tasks then bad("%d forks from memory, %d tasks", #mem.forks, #tasks) end
  for _, t in ipairs(tasks) do
    local m = by_id[t.id]
    if not m then
      bad("fork #%d: not found in memory", t.id)
    else
      local function same(what, a, b)
        if a ~= b then bad("fork #%d: %s is %s from memory, %s in process", t.id, what, tostring(a), tostring(b)) end
      end
      same("name", m.name, t.name)
      same("status", m.status, t.status)
      if t.await then same("await kind", m.await, t.await.kind) end
      if t.status == "waiting" and t.await and t.await.kind == "wait" and not t.combinator then
        same("awaited fork", m.await_target, t.waiting_for and t.waiting_for[1])
      end
      same("spawner", m.spawner, t.spawned_by or 0)
      if t.spawn then
        same("spawn file", m.spawn_source, t.spawn.file)
        same("spawn line", m.spawn_line, t.spawn.line)
      end
      local mw_, tw = {}, {}
      for i, id in ipairs(m.waiters) do mw_[i] = id end
      for i, id in ipairs(t.waiters or {}) do tw[i] = id end
      table.sort(mw_); table.sort(tw)
      same("waiters", table.concat(mw_, ","), table.concat(tw, ","))
      same("walk", m.walk, "complete")
      local frames = m.frames
      if t.status == "running" and frames[1] and frames[1].what == "C" and frames[1].name == "forks" then
        table.remove(frames, 1)   -- mw.forks itself
      end
      local bt = t.backtrace or {}
      same("frame count", #frames, #bt)
      for i = 1, math.min(#frames, #bt) do
        local a, b = frames[i], bt[i]
        local function fsame(what, x, y)
          if x ~= y then
            bad("fork #%d frame %d: %s is %s from memory, %s in process", t.id, i, what, tostring(x), tostring(y))
          end
        end
        fsame("file", a.file, b.file)
        fsame("line", a.line, b.line or -1)
        fsame("function", a.name, b["function"])
        fsame("namewhat", a.namewhat, b.namewhat)
      end
    end
  end
  return out
end

local function check_here()
  local mem, tasks = mw.forks(CORE), as.tasks()
  local diffs = differences(mem, tasks)
  assert.are.equal("", table.concat(diffs, "\n"))
  return mem
end

describe("the debug descriptor (issue 14)", function()
  it("is found by its exported symbol and by its ELF section, at one address", function()
    local by_symbol, by_section = mw.descriptor(CORE)
    assert.truthy(by_symbol ~= 0)
    assert.are.equal(by_symbol, by_section)
  end)

  it("says the running interpreter's release and that its layout is verified", function()
    local status, release, message = as.debug_layout()
    local ident = mw.release()
    assert.are.equal("verified", status, message)
    assert.are.equal(ident:match("Lua (5%.4%.%d+)"), release)
    assert.matches("^verified", message)
  end)

  it("says 'unverified' for a faked wrong release, and everything else keeps working", function()
    local minor = tonumber(mw.release():match("Lua 5%.4%.(%d+)"))
    local fake = minor <= 2 and "5.4.4" or "5.4.0"   -- a layout that differs
    local lo = 0
    while arg and arg[lo - 1] do lo = lo - 1 end
    local interpreter = arg and lo < 0 and arg[lo] or "lua5.4"
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write([[
      package.cpath = ]] .. ("%q"):format(package.cpath) .. [[
      package.path = ]] .. ("%q"):format(package.path) .. [[
      local as = require "asyncstack"
      local mw = require "asyncstack_memwalk"
      local status, release, message = as.debug_layout()
      print("layout", status, release, message)
      print("run", as.run(function() return as.wait(as.fork(function() as.sleep(0) return 7 end)) end))
      print("trace", #as.debug_backtrace() > 0)
      as.run(function()
        local mem = mw.forks(package.searchpath("asyncstack.core", package.cpath))
        print("walker", mem.status, mem.error)
      end)
    ]])
    f:close()
    local p = assert(io.popen(("ASYNCSTACK_DEBUG_LUA_RELEASE=%s %s %s 2>&1"):format(fake, interpreter, script)))
    local out = p:read("a")
    p:close()
    os.remove(script)
    assert.matches("layout\tunverified\t" .. fake:gsub("%.", "%%.") .. "\tunverified: ", out)
    assert.matches("run\t7\n", out)
    assert.matches("trace\ttrue\n", out)
    assert.matches("walker\tfailed\tthe Lua layout is unverified", out)
  end)

  it("lists no scheduler outside run()", function()
    local mem = mw.forks(CORE)
    assert.are.equal("complete", mem.status)
    assert.are.equal(0, mem.nscheds)
    assert.are.equal(0, #mem.forks)
  end)
end)

describe("the memory walker of every fork (issue 14)", function()
  it("agrees with as.tasks() for sleeping, waiting, nested and named forks", function()
    local seen
    as.run(function()
      local function nap(t) as.sleep(t) end
      local function worker(n) nap(0.05) return n end
      local M = {}
      function M.method(self, t) local r = as.sleep(t) return r end
      local gen = coroutine.wrap(function()
        coroutine.yield(1)
        M:method(0.05)
      end)
      local a = as.fork(worker, 1)
      local b = as.fork(function() gen(); gen() end)
      b:name("generator")
      local c = as.fork(function() return as.wait(a) end)
      local d = as.fork(function() return as.wait_all({ a, b }) end)
      local ch = as.channel()
      local e = as.fork(function() return ch:recv() end)
      as.yield()
      seen = check_here()
      ch:send(1)
      as.wait_all({ a, b, c, d, e })
    end)
    assert.truthy(#seen.forks >= 6)
  end)

  it("names a root function by its global name, else the upvalue it is spawned through", function()
    local function by_upvalue() as.sleep(0.01) end
    as.run(function()
      local a = as.fork(by_upvalue)
      local b = as.fork(string.rep == nil and print or function() as.sleep(0.01) end)
      as.yield()
      local mem = check_here()
      for _, f in ipairs(mem.forks) do
        if f.id == a:id() then assert.are.equal("by_upvalue", f.frames[1].name) end
        if f.id == b:id() then assert.is_nil(f.frames[1].name) end
      end
      as.wait_all({ a, b })
    end)
  end)

  it("agrees with as.tasks() at every trace point of random programs", function()
    local generator = require "spec.random.generator"
    local checks, failures = 0, {}
    for i = 1, PROGRAMS do
      local seed = FIRST_SEED + i - 1
      local prog = generator.generate(seed)
      generator.run(prog, { at_trace = function()
        local mem, tasks = mw.forks(CORE), as.tasks()
        checks = checks + 1
        local diffs = differences(mem, tasks)
        if #diffs > 0 and #failures < 5 then
          failures[#failures + 1] = ("seed %d: %s"):format(seed, table.concat(diffs, "; "))
        end
      end })
    end
    assert.are.equal("", table.concat(failures, "\n"))
    assert.truthy(checks > PROGRAMS / 2, "trace points reached: " .. checks)
  end)
end)
