-- memwalk_bench.lua (make bench-memwalk): the memory walker's cost per
-- frame next to lua_getinfo("Slnt") over lua_getstack levels (which walks
-- from the top for every level, so its cost per frame grows with depth),
-- and the cost of the load-time verification. Prints numbers; asserts none.
local mw = require "asyncstack_memwalk"

local function deep(n) if n == 0 then coroutine.yield() else local r = deep(n - 1) return r end end
local obj = {}
function obj:m(n) if n == 0 then coroutine.yield() else local r = obj.f(n - 1) return r end end
function obj.f(n) local r = obj:m(n) return r end

local function median(t) table.sort(t) return t[(#t + 1) // 2] end

print(("%-14s %6s  %12s  %16s"):format("shape", "frames", "walker ns/fr", "getinfo ns/fr"))
for _, depth in ipairs({20, 200, 2000}) do
  for _, shape in ipairs({{"local calls", deep}, {"method/field", function(n) obj:m(n) end}}) do
    local co = coroutine.create(shape[2])
    coroutine.resume(co, depth)
    local ws, gs, n = {}, {}, 0
    for _ = 1, 5 do
      local w, g
      w, g, n = mw.bench(co, depth >= 2000 and 5 or 100)
      ws[#ws + 1], gs[#gs + 1] = w, g
    end
    print(("%-14s %6d  %12.0f  %16.0f"):format(shape[1], n, median(ws) * 1e9, median(gs) * 1e9))
  end
end

local times = {}
for i = 1, 21 do
  local t0 = os.clock()
  assert(mw.verify())
  times[i] = os.clock() - t0
end
print(("verify(): %.1f us (median of 21)"):format(median(times) * 1e6))
