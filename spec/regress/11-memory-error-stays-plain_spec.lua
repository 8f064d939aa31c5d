-- Issue 13, NEW-B (found by `make oomtest`): a memory error raised by
-- asyncstack's own C code (growing the live set, the fd table, a copy onto
-- another coroutine's stack) came out of run(), pwait or a bridged
-- coroutine.wrap as "file:line: not enough memory": luaL_error adds the
-- caller's position and raises a runtime error, which a wrap then prefixes
-- again. Lua's own allocation failures raise LUA_ERRMEM with the bare
-- message, and lcorolib's auxwrap leaves LUA_ERRMEM untouched.
-- Where: src/mem.h as_mem_error raises Lua's memory error itself (lua_error
-- with the memory message is LUA_ERRMEM in Lua 5.4.1+); every "not enough
-- memory" of src/ goes through it.
-- Runs in `build/test/oomhost script` (src-test/oomhost.c), the n-th allocation
-- of a run failing for every n (spec/fixtures/alloc_fail_memerr.lua).
local core_path = assert(package.searchpath("asyncstack.core", package.cpath))
local build_dir = assert(core_path:match("^(.-)/?asyncstack/core%.so$"))
if build_dir == "" then build_dir = "." end
local HOST = build_dir .. "/test/oomhost script"
local CHILD_PATH = os.getenv("LUA_PATH") or "lua/?.lua;lua/?/init.lua;;"
local CHILD_CPATH = build_dir .. "/?.so;;"

describe("regress: a memory error out of run() stays Lua's plain one #child", function()
  it("is 'not enough memory' with no position at every failure point", function()
    local cmd = ("exec 2>&1; LUA_PATH='%s' LUA_CPATH='%s' timeout -s KILL 120 %s "
                 .. "spec/fixtures/alloc_fail_memerr.lua; echo \"status=$?\"")
      :format(CHILD_PATH, CHILD_CPATH, HOST)
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    p:close()
    assert.matches("^ok %d+\nstatus=0\n$", out)
  end)
end)
