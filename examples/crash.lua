-- crash.lua: the crash example of folly's async stack traces blog post,
-- ported to asyncstack. co_funcA waits for co_funcB, which waits for
-- co_funcC, which dereferences NULL (in C: Lua itself cannot crash). The
-- crash handler prints the native frames, then the async stack: co_funcC,
-- co_funcB, co_funcA, then the code that called run(). The process then
-- dies of SIGSEGV, as it would have without the handler.
--
-- It needs the test-only helper module that crashes on request:
--
--   make test-helpers
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;build/test/?.so;;' lua5.4 examples/crash.lua
local as = require "asyncstack"
local helper = require "asyncstack_crashhelper"

local function co_funcC()
  helper.null_deref()                    -- SIGSEGV here
end

local function co_funcB()
  local c = as.fork(co_funcC)
  c:name("co_funcC")
  as.wait(c)
end

local function co_funcA()
  local b = as.fork(co_funcB)
  b:name("co_funcB")
  as.wait(b)
end

as.crash.install()
as.run(function()
  as.current():name("co_funcA")
  co_funcA()
end)
