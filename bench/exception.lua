-- bench/exception.lua: row 6 of bench/run.lua, kept so that this command still
-- works: as.Exception() 32 frames deep in a fork vs debug.traceback() at
-- that depth (target <= 0.10).
--
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' lua5.4 bench/exception.lua
local dir = (arg and arg[0] or ""):match("^(.*)[/\\][^/\\]*$") or "."
local run_args = { [0] = dir .. "/run.lua", "6" }
for i = -1, -8, -1 do run_args[i] = arg and arg[i] end
arg = run_args
dofile(dir .. "/run.lua")
