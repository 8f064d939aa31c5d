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

E.env = {
}

return E
