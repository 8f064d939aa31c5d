-- Issue 14 item 4: the crash handler's async section makes no Lua API call
-- and no allocation in the signal handler. build/test/crashhost
-- (src-test/crashhost.c) is a Lua host whose allocator and API lock (every
-- Lua API function takes it on entry) end the process with status 97 once
-- the crash is armed; spec/fixtures/crashhost.lua crashes in a nested
-- coroutine of a fork awaited by another. Before issue 14 the handler read
-- Lua frames with lua_getstack/lua_getinfo and this host stopped it there.
local core_path = assert(package.searchpath("asyncstack.core", package.cpath))
local build_dir = assert(core_path:match("^(.-)/?asyncstack/core%.so$"))
if build_dir == "" then build_dir = "." end
local HOST = build_dir .. "/test/crashhost"
local CHILD_PATH = os.getenv("LUA_PATH") or "lua/?.lua;lua/?/init.lua;;"
local CHILD_CPATH = ("%s/?.so;;"):format(build_dir)
local SIGSEGV_STATUS = 128 + 11

local function run(what, env)
  local cmd = ("exec 2>/dev/null; ulimit -c 0; (%s LUA_PATH='%s' LUA_CPATH='%s' "
               .. "timeout -s KILL 60 %s spec/fixtures/crashhost.lua %s 2>&1); echo \"status=$?\"")
    :format(env or "", CHILD_PATH, CHILD_CPATH, HOST, what)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return (out:gsub("status=%d+%s*$", "")), tonumber(out:match("status=(%d+)%s*$"))
end

describe("the crash handler without the Lua API (issue 14)", function()
  it("the host catches a Lua API call and an allocation after arming (controls) #child", function()
    local out, status = run("api")
    assert.are.equal(97, status, out)
    assert.matches("crashhost: a Lua API call after the signal\n", out)
    out, status = run("alloc")
    assert.are.equal(97, status, out)
    assert.matches("crashhost: a Lua allocation after the signal\n", out)
  end)

  it("prints the whole async section with no Lua API call and no allocation #child", function()
    local out, status = run("crash")
    assert.are.equal(SIGSEGV_STATUS, status, out)
    assert.is_nil(out:find("crashhost:", 1, true), out)
    local async = out:match("\n(async stack.*)$")
    assert.is_not_nil(async, out)
    local pos = 1
    for _, pat in ipairs({
      "^async stack %(fork #%d+ 'leaf'%):\nstack traceback:\n",
      "\t%[C%]: in function 'crash_now'\n",
      "\tspec/fixtures/crashhost%.lua:14: in function <spec/fixtures/crashhost%.lua:10>\n",
      "\t%[coroutine resumed at spec/fixtures/crashhost%.lua:18 in function <spec/fixtures/crashhost%.lua:9>%]\n",
      "%(root of fork #%d+ 'leaf'%)\n",
      "\t%[fork #%d+ 'leaf' awaited by fork #%d+ 'main' at spec/fixtures/crashhost%.lua:22 ",
      "\t%[fork #%d+ 'main' started by run%(%) at spec/fixtures/crashhost%.lua:8 in main chunk%]\n",
      "\tspec/fixtures/crashhost%.lua:8: in main chunk\n",
    }) do
      local s, e = async:find(pat, pos)
      assert(s, ("expected %q after position %d in:\n%s"):format(pat, pos, async))
      pos = e + 1
    end
  end)

  it("says the async stack is not readable when the layout is unverified #child", function()
    -- the host is Lua 5.4.4: describing it with 5.4.0's layout fails verification
    local out, status = run("crash", "ASYNCSTACK_DEBUG_LUA_RELEASE=5.4.0")
    assert.are.equal(SIGSEGV_STATUS, status, out)
    assert.is_nil(out:find("crashhost:", 1, true), out)
    assert.matches("\nasync stack %(fork #%d+ 'leaf'%): not readable from memory: "
                   .. "the Lua layout is unverified %(see as%.debug_layout%(%)%)\n$", out)
  end)
end)
