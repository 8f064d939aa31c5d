-- Busted helper for `make gc-stress`: reruns the specs with an aggressive
-- collector, so that objects the C code forgets to anchor are collected
-- (and their memory reused) as early as possible.
--
--   busted --helper=spec/support/gc_stress.lua -Xhelper=pause0 spec
--   busted --helper=spec/support/gc_stress.lua -Xhelper=generational spec
--
-- pause0: incremental mode, a new cycle starts as soon as one ends
-- (setpause 0); generational: minor collections after 1% growth, major
-- after 10%. The mode may also come from ASYNCSTACK_GC.
local mode = (arg and arg[1]) or os.getenv("ASYNCSTACK_GC") or "pause0"

if mode == "pause0" then
  collectgarbage("incremental")
  collectgarbage("setpause", 0)
elseif mode == "generational" then
  collectgarbage("generational", 1, 10)
else
  error("gc_stress.lua: unknown mode '" .. tostring(mode) .. "' (pause0 or generational)")
end
io.stderr:write("gc-stress: collector mode ", mode, "\n")
