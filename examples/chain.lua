-- chain.lua: the async-stack example of Clang's "Debugging C++ Coroutines",
-- ported to asyncstack. chain(n) forks chain(n - 1) and waits for it; at
-- level 0 we print the async backtrace, which walks from level 0's fork
-- through every fork that waits on it, up to the code that called run().
--
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' lua5.4 examples/chain.lua
local as = require "asyncstack"

local LEVELS = tonumber(arg and arg[1]) or 30

local function chain(n)
  if n == 0 then
    -- The default breakpoint of the C++ example: look at the stacks here.
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
