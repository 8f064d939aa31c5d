-- The memory-level walker (src/memwalk.c) through its test-only module
-- (src-test/memwalk_module.c): frames read from memory alone, compared
-- frame by frame with debug.getinfo and debug.traceback, for many program
-- shapes. Runs under busted (make test) and, through
-- src-test/memwalk_runner.lua, under every interpreter of
-- `make test-lua-versions`.

local mw = require("spec.helper").load_memwalk()

local FIELDS = {"source", "what", "currentline", "linedefined", "namewhat",
                "name", "istailcall"}

-- debug.getinfo's view of `co` (or of the caller of this function's caller
-- at `level`) as frames shaped like the walker's.
local function info_frames(co, level, count)
  local out = {}
  for k = 0, (count or math.huge) - 1 do
    local info
    if co then info = debug.getinfo(co, level + k, "Slnt")
    else info = debug.getinfo(level + k + 1, "Slnt") end
    if not info then break end
    out[#out + 1] = {
      source = info.short_src, what = info.what,
      currentline = info.currentline, linedefined = info.linedefined,
      namewhat = info.namewhat,
      name = info.namewhat ~= "" and info.name or nil,
      istailcall = info.istailcall,
    }
  end
  return out
end

-- What luaL_traceback prints after "in " for a walked frame.
local function traceback_desc(f)
  if f.global then return ("function '%s'"):format(f.global)
  elseif f.namewhat ~= "" then return ("%s '%s'"):format(f.namewhat, f.name)
  elseif f.what == "main" then return "main chunk"
  elseif f.what ~= "C" then return ("function <%s:%d>"):format(f.source, f.linedefined)
  else return "?" end
end

-- The "in ..." parts of a traceback, without tail-call marks; nil when
-- luaL_traceback skipped levels (deep stacks).
local function traceback_descs(tb)
  local out = {}
  for line in tb:gmatch("\n\t([^\n]*)") do
    if line:find("^%.%.%.") then return nil end
    if line ~= "(...tail calls...)" then
      out[#out + 1] = line:match(": in (.*)$") or line
    end
  end
  return out
end

-- Compares walked frames with getinfo frames and traceback lines; returns
-- nil or a message naming the first difference.
local function difference(walked, status, infos, tb)
  if status ~= "complete" then return "walk status " .. tostring(status) end
  if #walked ~= #infos then
    return ("%d frames walked, %d from debug.getinfo"):format(#walked, #infos)
  end
  for i, f in ipairs(walked) do
    for _, k in ipairs(FIELDS) do
      if f[k] ~= infos[i][k] then
        return ("frame %d (%s:%s): %s is %s from memory, %s from debug.getinfo")
          :format(i, infos[i].source, tostring(infos[i].currentline), k,
                  tostring(f[k]), tostring(infos[i][k]))
      end
    end
  end
  local descs = tb and traceback_descs(tb)
  if descs then
    if #descs ~= #walked then
      return ("%d traceback lines, %d frames"):format(#descs, #walked)
    end
    for i, f in ipairs(walked) do
      if traceback_desc(f) ~= descs[i] then
        return ("frame %d: traceback says %q, walker %q"):format(i, descs[i], traceback_desc(f))
      end
    end
  end
  return nil
end

-- The running thread, as seen from the function calling snapshot(): all
-- three views are taken on one line, so their current lines agree.
local function snapshot()
  local w, st = mw.frames(nil, 1, 5000); local infos = info_frames(nil, 1); local tb = debug.traceback("", 1)
  return difference(w, st, infos, tb), w
end

-- A coroutine (suspended, or normal) compared as a whole.
local function co_difference(co)
  local w, st = mw.frames(co, 0, 5000)
  return difference(w, st, info_frames(co, 0), debug.traceback(co)), w
end

-- Runs `body` in a coroutine, which calls check() wherever it wants a
-- running-thread comparison; then yields and is compared suspended.
local function run_shape(body)
  local diffs = {}
  local function check()
    local d = snapshot()
    if d then diffs[#diffs + 1] = d end
  end
  local co = coroutine.create(body)
  local ok, err = coroutine.resume(co, check)
  assert(ok, err)
  assert.are.equal("suspended", coroutine.status(co), "the shape yields")
  local d, walked = co_difference(co)
  if d then diffs[#diffs + 1] = "suspended: " .. d end
  assert.are.equal(nil, diffs[1])
  return walked, co
end

describe("asyncstack.memwalk", function()
  describe("release()", function()
    it("finds the running interpreter's release and its layout", function()
      local ident, releases = mw.release()
      assert.matches("^%$LuaVersion: Lua 5%.4%.%d", ident)
      local minor = ident:match("Lua 5%.4%.(%d+)")
      assert.truthy(releases, "a layout for " .. ident)
      assert.truthy(releases:find("5.4." .. minor, 1, true) or
                    releases:match("5%.4%.(%d) %- 5%.4%.(%d)"), releases)
    end)
  end)

  describe("verify()", function()
    it("verifies the running release's layout against lua_getinfo", function()
      local ok, msg = mw.verify()
      assert.is_true(ok, msg)
      assert.matches("^verified %(layout of Lua 5%.4%.", msg)
    end)

    it("says unverified for a release whose layout differs", function()
      local minor = tonumber(mw.release():match("Lua 5%.4%.(%d+)"))
      -- 5.4.1's lua_State is 8 bytes shorter before base_ci than 5.4.3+'s;
      -- 5.4.8's CIST bits differ from 5.4.0/5.4.1's
      local wrong = minor >= 3 and 1 or 8
      local ok, msg = mw.verify(wrong)
      assert.is_false(ok)
      assert.matches("^unverified: ", msg)
      assert.truthy(msg:find("5.4." .. wrong, 1, true), msg)
    end)

    it("rejects a release with no layout", function()
      local ok, err = pcall(mw.verify, 9)
      assert.is_false(ok)
      assert.matches("bad argument #1 to '[%w_.]+' %(no layout for this release%)", err)
    end)
  end)

  describe("frames()", function()
    it("matches debug.getinfo for nested local calls", function()
      run_shape(function(check)
        local function c() check(); coroutine.yield() end
        local function b() c() end
        local function a() b() end
        a()
      end)
    end)

    it("matches for tail calls", function()
      local walked = run_shape(function(check)
        local function c() check(); coroutine.yield(); return 1 end
        local function b() return c() end
        local function a() return b() end
        a()
      end)
      local tails = 0
      for _, f in ipairs(walked) do if f.istailcall then tails = tails + 1 end end
      assert.are.equal(1, tails)
    end)

    it("matches for vararg functions", function()
      run_shape(function(check)
        local function v(...) local n = select("#", ...); check(); coroutine.yield(); return n end
        local function w(...) local r = v(1, ...) return r end
        w(2, 3, nil)
      end)
    end)

    it("matches for methods, fields, upvalues and string constants", function()
      local walked = run_shape(function(check)
        local obj = {}
        function obj:m() check(); coroutine.yield() end
        local t = {f = function() obj:m() end}
        local function up() t.f() end
        local function outer() local r = up(); return r end
        outer()
      end)
      local kinds = {}
      for _, f in ipairs(walked) do kinds[#kinds + 1] = f.namewhat .. ":" .. tostring(f.name) end
      local s = table.concat(kinds, " ")
      assert.truthy(s:find("method:m", 1, true), s)
      assert.truthy(s:find("field:f", 1, true), s)
      assert.truthy(s:find("upvalue:up", 1, true), s)
      assert.truthy(s:find("local:outer", 1, true), s)
    end)

    it("matches for indexed calls and a local _ENV", function()
      run_shape(function(check)
        local arr = {check}
        arr[1]()
        local key = "k"
        local t = {k = check}
        t[key]()
        t["k"]()
        local i = 1
        arr[i]()
        do
          local _ENV = {check = check}
          check()
        end
        coroutine.yield()
      end)
    end)

    it("matches for globals and for functions found in package.loaded", function()
      _G.memwalk_spec_global = function() coroutine.yield() end
      package.loaded.memwalk_spec_mod = {deep = function(check) check(); _G.memwalk_spec_global() end}
      local ok, err = pcall(run_shape, function(check)
        local alias = package.loaded.memwalk_spec_mod.deep
        alias(check)
      end)
      _G.memwalk_spec_global = nil
      package.loaded.memwalk_spec_mod = nil
      assert(ok, err)
    end)

    it("names a function by its package.loaded entry as luaL_traceback does", function()
      _G.memwalk_spec_global = function() coroutine.yield() end
      package.loaded.memwalk_spec_mod = {deep = function() local g = _G.memwalk_spec_global; g() end}
      local co = coroutine.create(function()
        local alias = package.loaded.memwalk_spec_mod.deep
        alias()
      end)
      coroutine.resume(co)
      local w, st = mw.frames(co)
      _G.memwalk_spec_global = nil
      package.loaded.memwalk_spec_mod = nil
      assert.are.equal("complete", st)
      assert.are.equal("coroutine.yield", w[1].global)
      assert.are.equal("memwalk_spec_global", w[2].global)
      assert.are.equal("local", w[2].namewhat)
      assert.are.equal("memwalk_spec_mod.deep", w[3].global)
      assert.are.equal("alias", w[3].name)
      assert.is_nil(w[4].global)
    end)

    it("matches with C functions in the stack (pcall, sort, gsub)", function()
      run_shape(function(check)
        local ok = pcall(function()
          table.sort({3, 1, 2}, function(a, b) check(); return a < b end)
          local s = ("ab"):gsub(".", function(c) check(); return c end)
          return s
        end)
        assert(ok)
        local inner = coroutine.wrap(function() check() end)
        inner()
        pcall(coroutine.yield)
      end)
    end)

    it("matches for metamethods and generic for iterators", function()
      run_shape(function(check)
        local mt = {
          __index = function(_, k) check(); return k end,
          __add = function() check(); return 0 end,
          __lt = function() check(); return true end,
          __le = function() check(); return true end,
          __len = function() check(); return 0 end,
          __concat = function() check(); return "" end,
          __unm = function() check(); return 0 end,
          __eq = function() check(); return true end,
          __call = function() check(); return 0 end,
          __close = function() check() end,
        }
        local a, b = setmetatable({}, mt), setmetatable({}, mt)
        local _ = a.x, a + 1, a < b, a <= b, #a, a .. "s", -a, a == b, a(), 1 < a
        do local c <close> = a end
        for _ in function(_, i) check(); if not i then return 1 end end do end
        coroutine.yield()
      end)
    end)

    it("matches inside a debug hook", function()
      run_shape(function(check)
        local fired = false
        debug.sethook(function()
          if not fired then fired = true; check() end
        end, "l")
        local x = 1
        debug.sethook()
        assert(fired and x == 1)
        coroutine.yield()
      end)
    end)

    it("matches inside a finalizer", function()
      local ran = false
      run_shape(function(check)
        do setmetatable({}, {__gc = function() ran = true; check() end}) end
        collectgarbage()
        collectgarbage()
        coroutine.yield()
      end)
      assert.is_true(ran)
    end)

    it("matches a coroutine that is normal (it resumed another)", function()
      local outer
      local diffs = {}
      outer = coroutine.create(function()
        local inner = coroutine.create(function()
          local d = co_difference(outer)
          if d then diffs[#diffs + 1] = d end
          assert.are.equal("normal", coroutine.status(outer))
        end)
        local function resumer() assert(coroutine.resume(inner)) end
        resumer()
      end)
      assert(coroutine.resume(outer))
      assert.is_nil(diffs[1])
    end)

    it("matches stripped functions (no line info, no names)", function()
      local f = load(string.dump(function(check)
        local function g() check(); coroutine.yield() end
        g()
      end, true))
      local walked = run_shape(f)
      assert.are.equal(-1, walked[2].currentline)
    end)

    it("matches fresh, finished and failed coroutines", function()
      local fresh = coroutine.create(function() end)
      local done = coroutine.create(function() end)
      coroutine.resume(done)
      local failed = coroutine.create(function()
        local function boom() error("boom") end
        boom()
      end)
      assert.is_false(coroutine.resume(failed))
      for _, co in ipairs({fresh, done, failed}) do
        local d, w = co_difference(co)
        assert.is_nil(d)
        assert.are.equal(co == failed and 3 or 0, #w)
      end
    end)

    it("matches sources as luaO_chunkid shortens them", function()
      local long = ("x"):rep(80)
      local chunks = {
        {"@" .. long .. ".lua"}, {"=" .. long}, {"=short"}, {"@short.lua"},
        {"local check = ...\ncheck() coroutine.yield()"},  -- [string "..."] with a newline
        {"local check = ... check() coroutine.yield() --" .. long},
      }
      for _, c in ipairs(chunks) do
        local src = c[2] or "local check = ...\ncheck()\ncoroutine.yield()"
        local name = c[1]
        if not name:find("^[@=]") then src, name = name, nil end
        local fn = assert(load(src, name))
        run_shape(fn)
      end
    end)

    it("matches lines in long functions (absolute line info)", function()
      local lines = {"local check = ...", "local x = 0"}
      for i = 1, 400 do lines[#lines + 1] = ("x = x + %d"):format(i) end
      lines[#lines + 1] = ("\n"):rep(300) .. "check()"
      for i = 1, 300 do lines[#lines + 1] = ("x = x - %d"):format(i) end
      lines[#lines + 1] = "check() coroutine.yield()"
      run_shape(assert(load(table.concat(lines, "\n"), "=long")))
    end)

    it("walks thousands of frames, and says truncated when given fewer", function()
      local function deep(n) if n == 0 then coroutine.yield() else local r = deep(n - 1) return r end end
      -- Lua 5.4.0 - 5.4.2 count Lua calls against their C-stack limit
      -- (about 2000 levels): go as deep as the release allows
      local depth, co = 5000
      repeat
        co = coroutine.create(deep)
        local ok = coroutine.resume(co, depth)
        if not ok then depth = depth - 1000 end
      until ok
      assert.truthy(depth >= 1000, "at least a thousand frames")
      local w, st = mw.frames(co, 0, 200000)
      assert.are.equal("complete", st)
      assert.are.equal(depth + 2, #w)  -- yield + depth + 1 calls of deep
      assert.are.equal(#w, mw.depth(co))
      local infos = info_frames(co, 0, 40)
      local tailinfos = info_frames(co, #w - 40, 40)
      local head, tail = {}, {}
      for i = 1, 40 do head[i] = w[i]; tail[i] = w[#w - 40 + i] end
      assert.is_nil(difference(head, "complete", infos))
      assert.is_nil(difference(tail, "complete", tailinfos))
      local some, st2 = mw.frames(co, 10, 100)
      assert.are.equal("truncated", st2)
      assert.are.equal(100, #some)
      assert.are.equal(w[11].currentline, some[1].currentline)
    end)

    it("reads through process_vm_readv the same frames as through memcpy", function()
      local co = coroutine.create(function() local function f() coroutine.yield() end f() end)
      coroutine.resume(co)
      local a, sa = mw.frames(co, 0, 100, "memcpy")
      local b, sb = mw.frames(co, 0, 100, "vm")
      assert.are.equal(sa, sb)
      assert.are.same(a, b)
    end)

    it("survives reads that fail or return corrupted bytes", function()
      local co = coroutine.create(function(check)
        local obj = {}
        function obj:m() local function f() coroutine.yield() end f() end
        local t = {f = function() pcall(obj.m, obj) end}
        t.f()
      end)
      coroutine.resume(co)
      local complete, truncated, failed = mw.fuzz(co, 1234, 1500)
      assert.are.equal(1500, complete + truncated + failed)
      assert.truthy(failed > 0, "some walks fail")
      assert.truthy(complete > 0, "some walks complete")
      local w, st = mw.frames(co)  -- and the coroutine is intact
      assert.are.equal("complete", st)
      assert.are.equal(6, #w)
    end)

    it("walks a coroutine of another process through process_vm_readv #child", function()
      -- the child runs this interpreter, so that it has the same layout
      local own = io.open("/proc/self/stat"):read("l"):match("^(%d+)")
      local exe = io.popen("readlink /proc/" .. own .. "/exe"):read("l")
      if not (exe and exe:match("[^/]*$"):find("lua")) then exe = "lua5.4" end
      local flag = os.tmpname()
      os.remove(flag)
      local script = os.tmpname()
      local f = assert(io.open(script, "w"))
      f:write(([=[
        local co = coroutine.create(function(x)
          local t = {}
          function t.inner() coroutine.yield() end
          t.inner()
        end)
        coroutine.resume(co)
        for level = 0, 100 do
          local i = debug.getinfo(co, level, "Slnt")
          if not i then break end
          print(("frame %%s|%%d|%%d|%%s|%%s|%%s"):format(i.short_src, i.currentline,
            i.linedefined, i.what, i.namewhat, i.name or ""))
        end
        print("pid " .. io.open("/proc/self/stat"):read("l"):match("^(%%d+)"))
        print("thread " .. string.format("%%p", co))
        io.stdout:flush()
        for _ = 1, 200 do
          if io.open(%q) then break end
          os.execute("sleep 0.05")
        end
      ]=]):format(flag))
      f:close()
      local p = io.popen(("'%s' '%s'"):format(exe, script))
      local expected, pid, thread = {}, nil, nil
      for line in p:lines() do
        if line:find("^frame ") then expected[#expected + 1] = line:sub(7)
        elseif line:find("^pid ") then pid = tonumber(line:sub(5))
        elseif line:find("^thread ") then thread = tonumber(line:sub(8):gsub("^0x", ""), 16); break end
      end
      local ok, w, st = pcall(mw.walk_address, thread, "vm", pid)
      io.open(flag, "w"):close()
      p:close()
      os.remove(flag)
      os.remove(script)
      assert(ok, w)
      assert.are.equal("complete", st)
      local got = {}
      for i, fr in ipairs(w) do
        got[i] = ("%s|%d|%d|%s|%s|%s"):format(fr.source, fr.currentline, fr.linedefined,
          fr.what, fr.namewhat, fr.name or "")
      end
      assert.are.equal(3, #expected)
      assert.are.same(expected, got)
    end)

    it("gives failed, not a crash, for addresses that are not a thread", function()
      local function address(v) return tonumber(string.format("%p", v):sub(3), 16) end
      for _, addr in ipairs({0, 8, 0x7ffffffff000, address({}), address("a string"),
                             address(print), address(function() end) + 3}) do
        local w, st = mw.walk_address(addr, "vm")
        assert.are.equal("failed", st, ("address 0x%x"):format(addr))
        assert.truthy(#w <= 1)
      end
    end)
  end)
end)
