-- generators.lua: a fork iterates a coroutine.wrap generator that sleeps
-- between items. The scheduler suspension inside the generator passes
-- through the generator's coroutine to the fork and back; a trace taken
-- inside the generator shows its frames, the resume boundary, then the
-- fork's frames down to its root. The second part nests three coroutines,
-- each sleeping, and traces from the innermost one.
--
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' lua5.4 examples/generators.lua
local as = require "asyncstack"

local function numbers(limit)
  return coroutine.wrap(function()
    for i = 1, limit do
      as.sleep(0.001)                 -- suspends the whole fork, not just us
      if i == limit then
        print(as.traceback("inside the generator, item " .. i))
      end
      coroutine.yield(i)
    end
  end)
end

local function consume()
  local sum = 0
  for n in numbers(3) do sum = sum + n end
  return sum
end

-- Three levels of nested coroutines, each sleeping before it resumes the next.
local function level3()
  as.sleep(0.001)
  print(as.traceback("innermost of three nested coroutines"))
  return "level3"
end

local function level2()
  as.sleep(0.001)
  local co = coroutine.create(level3)
  local ok, value = coroutine.resume(co)
  assert(ok, value)
  return value .. " < level2"
end

local function level1()
  as.sleep(0.001)
  local gen = coroutine.wrap(level2)
  return gen() .. " < level1"
end

local function nested()
  local co = coroutine.wrap(level1)
  return co()
end

local sum, chain = as.run(function()
  local gen_fork = as.fork(consume)
  gen_fork:name("consumer")
  local nested_fork = as.fork(nested)
  nested_fork:name("nested")
  return as.wait(gen_fork), as.wait(nested_fork)
end)
print("sum of items: " .. sum)
print("nested result: " .. chain)
