-- exceptions.lua: the exception example of the folly blog post "Async stack
-- traces in folly", ported to asyncstack. co_funcA waits for co_funcB, which
-- waits for co_funcC, which calls bad(), which throws. co_funcA catches the
-- exception and prints where it was thrown: the trace runs bad, co_funcC,
-- co_funcB, co_funcA, each with its fork, although each function ran in a
-- fork of its own and the exception crossed two wait() calls.
--
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' lua5.4 examples/exceptions.lua
local as = require "asyncstack"

local function bad()
  error(as.Exception("test"))
end

local function co_funcC()
  bad()
end

local function co_funcB()
  as.wait(as.fork(co_funcC))
end

local function co_funcA()
  local ok, e = as.pcall(function()
    as.wait(as.fork(co_funcB))
  end)
  assert(not ok)
  print("what(): " .. e:getMessage() .. ", thrown at " .. e:getFile() .. ":" .. e:getLine())
  print(e:getTraceAsString())
  print()
  print(tostring(e))
  return e
end

local caught = as.run(function()
  local e = co_funcA()
  return e
end)
return caught
