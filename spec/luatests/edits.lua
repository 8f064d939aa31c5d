-- spec/luatests/edits.lua: the reviewed edits spec/luatests/run.lua makes to
-- Lua 5.4.4's test files before running them. Each replaces ONE line, named
-- by number and exact text (line numbers stay, since db.lua and errors.lua
-- check them), for one mode or both (mode = nil). Without `new` the line is
-- commented out. `kind`:
--   fork   an assertion that cannot hold inside a fork (it runs in the root
--          fork's coroutine, not the main thread, and a fork-level
--          coroutine.yield is as.yield()): permanent;
--   known  a failure caused outside the bridge (another file of asyncstack):
--          remove the edit when that is fixed.
-- `env` entries change the child's setup instead of a line.
local E = {}

-- None needed now. The entry { mode = "fork", kind = "known", keep_debug =
-- true, what = ..., why = ... } would keep the global `debug` for a run.
E.env = {
}

-- coroutine.lua ------------------------------------------------------------
local IN_FORK = "the file runs in the root fork's coroutine, not the main thread"
local FORK_YIELD = "a coroutine.yield at a fork's own level is as.yield(): it succeeds"

E[#E + 1] = { file = "coroutine.lua", line = 11, mode = "fork", kind = "fork",
  old = [[assert(type(main) == "thread" and ismain)]],
  new = [[assert(type(main) == "thread" and not ismain)]], why = IN_FORK }
E[#E + 1] = { file = "coroutine.lua", line = 13, mode = "fork", kind = "fork",
  old = [[assert(not coroutine.isyieldable(main) and not coroutine.isyieldable())]],
  new = [[assert(coroutine.isyieldable(main) and coroutine.isyieldable())]],
  why = IN_FORK .. ", which can yield" }
E[#E + 1] = { file = "coroutine.lua", line = 14, mode = "fork", kind = "fork",
  old = [[assert(not pcall(coroutine.yield))]],
  new = [[assert(pcall(coroutine.yield))]], why = FORK_YIELD }

-- db.lua -------------------------------------------------------------------
local ASYNC_TRACE = "inside a fork a traceback goes on past the coroutine into the " ..
  "frames that resumed it (the async stack: the test's coroutine.wrap does not " ..
  "bound it) and keeps the first and last 100 levels, not 10 and 11"
E[#E + 1] = { file = "db.lua", line = 921, mode = "fork", kind = "fork",
  old = [[    assert(cl <= 10 + 11 + 1)]], why = ASYNC_TRACE }
E[#E + 1] = { file = "db.lua", line = 926, mode = "fork", kind = "fork",
  old = [[      assert(countlines(rest1) == 10 and countlines(rest2) == 11)]], why = ASYNC_TRACE }
E[#E + 1] = { file = "db.lua", line = 928, mode = "fork", kind = "fork",
  old = [[      assert(cl == total - start + 2)]], why = ASYNC_TRACE }

-- errors.lua ---------------------------------------------------------------
E[#E + 1] = { file = "errors.lua", line = 344, mode = "fork", kind = "fork",
  old = [[checkmessage("coroutine.yield()", "outside a coroutine")]], why = FORK_YIELD }

return E
