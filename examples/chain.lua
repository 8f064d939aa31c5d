-- chain.lua: the async-stack example of Clang's "Debugging C++ Coroutines",
-- ported to asyncstack. chain(n) forks chain(n - 1) and waits for it; at
-- level 0 we print the async backtrace, which walks from level 0's fork
-- through every fork that waits on it, up to the code that called run().
--
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' lua5.4 examples/chain.lua
--
-- With a file name after the level count, chain(0) writes the trace there
-- instead and then sleeps for a day, so the chain can be looked at from
-- outside (README, "Debugging a live process or a core"):
--
--   lua5.4 examples/chain.lua 30 /tmp/trace.txt &  asyncstack bt $! --all --async
local as = require "asyncstack"

local LEVELS = tonumber(arg and arg[1]) or 30
local HOLD = tonumber(arg and arg[1]) and arg[2]   -- only as `chain.lua N FILE`

-- Writes the async trace to HOLD; the caller sleeps on the same line, so
-- the trace is also what a reader from outside sees while it sleeps.
local function hold(text)
  local f = assert(io.open(HOLD .. ".tmp", "w"))
  f:write(text, "\n")
  f:close()
  assert(os.rename(HOLD .. ".tmp", HOLD))
end

local function chain(n)
  if n == 0 then
    -- The default breakpoint of the C++ example: look at the stacks here.
    if HOLD then hold(as.traceback("async stack of chain(0):", 1, { async = true })); as.sleep(86400) end
    local async_frames = as.debug_backtrace { async = true }
    local own_frames = as.debug_backtrace()
    print(as.traceback("async stack of chain(0):", 1, { async = true }))
    return 0, async_frames, own_frames
  end
  local child = as.fork(chain, n - 1)
  child:name("chain(" .. (n - 1) .. ")")
  local value, async_frames, own_frames = as.wait(child)
  return n + value, async_frames, own_frames
end

local total, async_frames, own_frames = as.run(chain, LEVELS)
print(("chain(%d) = %d; %d async frames, %d frames in chain(0)'s own fork")
      :format(LEVELS, total, #async_frames, #own_frames))
return { total = total, async_frames = async_frames, own_frames = own_frames }
