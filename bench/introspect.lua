-- bench/introspect.lua: row 8 of bench/run.lua, kept so that this command still
-- works: as.tasks{backtrace=false} and as.dump() per fork, next to
-- debug.traceback(co) per coroutine (report only).
--
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' lua5.4 bench/introspect.lua
local dir = (arg and arg[0] or ""):match("^(.*)[/\\][^/\\]*$") or "."
local run_args = { [0] = dir .. "/run.lua", "8" }
for i = -1, -8, -1 do run_args[i] = arg and arg[i] end
arg = run_args
dofile(dir .. "/run.lua")
