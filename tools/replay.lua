-- tools/replay.lua SEED [--strict] [--quiet] [--gc=MODE]: runs one random program of
-- spec/random_spec.lua verbosely: the program, every event as it happens,
-- unhandled reports, then what the invariant checker found. Exit status 0
-- when every invariant holds.
--
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' lua5.4 tools/replay.lua 8012
--
-- --strict turns off the allowances for known bugs (see spec/regress/).
-- --quiet prints only the program and the verdict.
-- --gc=pause0 or --gc=generational runs it under the collector settings of
-- `make gc-stress` (spec/support/gc_stress.lua).
-- --oom=MODE:N runs it instead under the allocation-failure host with
-- allocation N failing (MODE next) or N and every later one (MODE every),
-- as spec/random_spec.lua's allocation-failure mode does, and prints the
-- host's verdict line (--host=PATH, default build/test/oomhost).

package.path = "./?.lua;" .. package.path
local generator = require "spec.random.generator"

local seed, strict, quiet, gc, oom, host
for _, a in ipairs(arg) do
  if a == "--strict" then strict = true
  elseif a:match("^%-%-oom=") then oom = a:match("^%-%-oom=(.*)")
  elseif a:match("^%-%-host=") then host = a:match("^%-%-host=(.*)")
  elseif a == "--quiet" then quiet = true
  elseif a:match("^%-%-gc=") then gc = a:match("^%-%-gc=(.*)")
  else seed = math.tointeger(tonumber(a)) end
end
if not seed then
  io.stderr:write("usage: lua5.4 tools/replay.lua SEED [--strict] [--quiet] [--gc=pause0|generational]"
                  .. " [--oom=every|next:N [--host=PATH]]\n")
  os.exit(2)
end
if oom then
  local mode, n = oom:match("^(%a+):(%d+)$")
  if not mode then io.stderr:write("replay: --oom=every:N or --oom=next:N\n") os.exit(2) end
  local ok = os.execute(("ASYNCSTACK_OOM_SEED=%d %s spec/random/oomprog.lua %s %s %s 1")
    :format(seed, host or "build/test/oomhost", mode, n, n))
  os.exit(ok and 0 or 1)
end
if gc then
  arg = { gc }   -- the helper reads its mode from arg[1], as busted's -Xhelper passes it
  dofile("spec/support/gc_stress.lua")
end

local prog = generator.generate(seed)
print(generator.describe(prog))
print("-- expected events")
for _, spec in ipairs(prog.forks) do
  print(("fork %d: %s"):format(spec.id, table.concat(spec.expected, " ")))
end
print("-- run")
local rt = generator.run(prog, {
  strict = strict,
  verbose = (not quiet) and function(line) print(line) end or nil,
})
print("-- recorded events")
for _, spec in ipairs(prog.forks) do
  print(("fork %d (#%s): %s"):format(spec.id, tostring(rt.runtime_id[spec.id]),
                                     table.concat(rt.events[spec.id], " ")))
end
local problems = generator.check(rt)
if #problems == 0 then
  print(("seed %d: every invariant holds"):format(seed))
  os.exit(0)
end
print(("seed %d: %d problem%s"):format(seed, #problems, #problems == 1 and "" or "s"))
for _, p in ipairs(problems) do print("* " .. p) end
os.exit(1)
