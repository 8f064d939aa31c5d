-- Issue 13, D2 and D3: an allocation failure in the middle of suspending or
-- waking a fork left it half-registered or lost.
--  D2: a primitive linked the fork (wait node, channel queue,
--      suspend_pending) and then grew the timer heap, which can fail:
--      wait(t, timeout) left the fork t's waiter (a later sleep returned
--      early), wait_all/wait_any dropped a node array still linked
--      (heap-use-after-free), ch:send(v, timeout) left a queued sender (a
--      receiver got a value nobody sent), sleep left suspend_pending set (the
--      next generator coroutine.yield hung the fork).
--  D3: waking a fork (cancel, send, close) or adding one (fork) changed its
--      state and then grew the run queue: the fork was lost ("[runnable]"
--      in a deadlock report).
-- Where: src/live.c as_sched_live_add reserves room in the run queue and
-- the timer heap for every live fork when it is created; waking and arming
-- a timer (src/sched.c, src/runq.h) never allocate.
-- Each scenario runs in `build/test/oomhost script` (src-test/oomhost.c), a host
-- whose allocator fails the n-th allocation on request, for every n until
-- the operation runs through (spec/fixtures/alloc_fail_sched.lua).
local core_path = assert(package.searchpath("asyncstack.core", package.cpath))
local build_dir = assert(core_path:match("^(.-)/?asyncstack/core%.so$"))
if build_dir == "" then build_dir = "." end
local HOST = build_dir .. "/test/oomhost script"
local CHILD_PATH = os.getenv("LUA_PATH") or "lua/?.lua;lua/?/init.lua;;"
local CHILD_CPATH = build_dir .. "/?.so;;"

local function run_scenario(name)
  local cmd = ("exec 2>&1; LUA_PATH='%s' LUA_CPATH='%s' timeout -s KILL 120 %s "
               .. "spec/fixtures/alloc_fail_sched.lua %s; echo \"status=$?\"")
    :format(CHILD_PATH, CHILD_CPATH, HOST, name)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return out
end

describe("regress: an allocation failure while a fork suspends or wakes #child", function()
  for _, name in ipairs { "wait_timeout", "wait_all_timeout", "send_timeout", "sleep",
                          "cancel", "fork" } do
    it("leaves nothing half-registered or lost: " .. name, function()
      local out = run_scenario(name)
      assert.matches("^ok " .. name .. " %d+\nstatus=0\n$", out)
    end)
  end
end)
