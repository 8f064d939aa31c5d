-- A random program of spec/random/generator.lua as a program table for the
-- allocation-failure host (src-test/oomhost.c, driven by tools/oomtest.lua
-- --program spec/random/oomprog.lua): spec/random_spec.lua's
-- allocation-failure mode. The seed comes from ASYNCSTACK_OOM_SEED.
--
-- Under a failing allocator a program may catch the memory error in its own
-- pcall ops and go on, so the generator's invariants (events, traces,
-- deliveries) do not hold and are not checked here. What is checked is
-- src-test/oomprog.lua's part, whose setup, check and is_memory this
-- reuses: run() ends with a clean "not enough memory" (the run's own error
-- when it is one) or completes, nothing leaks, nothing crashes or hangs,
-- and a following run() works.
package.path = "./?.lua;" .. package.path
local base = dofile("src-test/oomprog.lua")
local SEED = math.tointeger(tonumber(os.getenv("ASYNCSTACK_OOM_SEED") or "")) or 8000001

local P = { is_memory = base.is_memory, check = base.check }
local generator, prog

function P.setup()
  base.setup()
  generator = require "spec.random.generator"
  -- a peer that died of memory ends no wait: an fd wait, a victim parked
  -- in sleep(LONG) or a LONG channel timeout would outlast the host's hang
  -- limit (20 s) without being asyncstack's hang
  generator.fd_wait_limit = 2
  generator.LONG = 2
  prog = generator.generate(SEED)   -- outside the limit: only the run is swept
end

function P.program()
  OOM_STEP = "random program " .. SEED
  io.stderr:write("oomstep: ", OOM_STEP, "\n")
  local rt = generator.run(prog)
  local e = rt.run_results[2]
  if not rt.run_ok and P.is_memory(e) then error(e, 0) end
end

return P
