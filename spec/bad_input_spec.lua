-- Every bad input (issue 8, part 3): each public function of README's API
-- called with wrong types, wrong arity and in wrong states. Each must raise
-- a clear error that names the call and the argument, positioned at the
-- caller's line (this file), and afterwards the scheduler must still work
-- and hold no leftover forks.
--
-- One row per bad call:
--   api, what   the function and what is wrong (the test's name)
--   where       "outside" run(), "inside" the root fork of a run, or "both"
--   call(ctx)   makes the bad call (directly, so Lua names the function the
--               way a user's code would see it)
--   message     the exact error text after the "file:line: " prefix, or a
--               function(ctx) returning it (fork ids), or nil with
--               `returns = function(ctx, ...)` for calls that must not raise
--   setup(ctx)  optional, before the call (inside: may spawn forks with
--               ctx.fork, which are expected to stay alive)
--   pending     set when today's message is not the right one: the row
--               holds the message it should be, and the reason (the row
--               runs, and fails, with ASYNCSTACK_REGRESS=1)
--   teardown(ctx) optional, after the checks (closes what setup opened)
--   needs       "socket": the row needs lua-socket (pending without it)
-- ctx: me (the running root fork, inside), old (a fork of an ended run),
-- fork(fn) (spawns a fork the case keeps).
--
-- Channels (capacity, send/recv arguments and timeouts, use after close,
-- blocking outside run()), wait_all / wait_any (non-list, empty list, a
-- non-fork element, itself, a fork of another run), f:cancel() (bad self)
-- wait_fd and close_fd (bad fd, mode and timeout, two readers) have rows
-- too, with the same after-checks.
local as = require "asyncstack"

local THIS = debug.getinfo(1, "S").short_src
local socket_ok, socket = pcall(require, "socket")   -- lua-socket: two wait_fd rows
local RAW_RESUME = coroutine.resume  -- unbridged: this file is loaded outside run()

local C_CALL = "cannot suspend here: a C call that cannot yield (a metamethod, " ..
               "a table.sort comparator, a C callback) is on the stack"

local function nop() end
local function short_sleeper() as.sleep(0.001); return "slept" end

local ROWS = {
  -------------------------------------------------------------------- run
  { api = "run", what = "no function", where = "both",
    call = function() as.run() end,
    message = "bad argument #1 to 'run' (function expected, got no value)" },
  { api = "run", what = "a number", where = "both",
    call = function() as.run(1) end,
    message = "bad argument #1 to 'run' (function expected, got number)" },
  { api = "run", what = "nil then arguments", where = "both",
    call = function() as.run(nil, 1, 2) end,
    message = "bad argument #1 to 'run' (function expected, got nil)" },
  { api = "run", what = "a callable table", where = "outside",
    call = function() as.run(setmetatable({}, { __call = nop })) end,
    message = "bad argument #1 to 'run' (function expected, got table)" },
  { api = "run", what = "inside run()", where = "inside",
    call = function() as.run(nop) end,
    message = "run: already inside asyncstack.run() (runs do not nest)" },
  { api = "run", what = "inside a coroutine inside a fork", where = "inside",
    call = function()
      local ok, err = coroutine.resume(coroutine.create(function() as.run(nop) end))
      assert(not ok)
      error(err, 0)
    end,
    message = "run: already inside asyncstack.run() (runs do not nest)" },

  ------------------------------------------------------------------- fork
  { api = "fork", what = "no function", where = "both",
    call = function() as.fork() end,
    message = "bad argument #1 to 'fork' (function expected, got no value)" },
  { api = "fork", what = "nil", where = "both",
    call = function() as.fork(nil) end,
    message = "bad argument #1 to 'fork' (function expected, got nil)" },
  { api = "fork", what = "a string", where = "both",
    call = function() as.fork("print") end,
    message = "bad argument #1 to 'fork' (function expected, got string)" },
  { api = "fork", what = "a callable table", where = "inside",
    call = function() as.fork(setmetatable({}, { __call = nop })) end,
    message = "bad argument #1 to 'fork' (function expected, got table)" },
  { api = "fork", what = "outside run()", where = "outside",
    call = function() as.fork(nop) end,
    message = "fork: not inside asyncstack.run()" },

  ------------------------------------------------------------ wait, pwait
  { api = "wait", what = "no fork", where = "both",
    call = function() as.wait() end,
    message = "bad argument #1 to 'wait' (asyncstack.Fork expected, got no value)" },
  { api = "wait", what = "a number", where = "both",
    call = function() as.wait(1) end,
    message = "bad argument #1 to 'wait' (asyncstack.Fork expected, got number)" },
  -- Lua names a value by its metatable's __name (as for a fake FILE*)
  { api = "wait", what = "a table with the Fork metatable", where = "inside",
    call = function(ctx) as.wait(setmetatable({}, getmetatable(ctx.me))) end,
    message = "bad argument #1 to 'wait' (asyncstack.Fork expected, got asyncstack.Fork)" },
  { api = "pwait", what = "a string", where = "both",
    call = function() as.pwait("f") end,
    message = "bad argument #1 to 'pwait' (asyncstack.Fork expected, got string)" },
  { api = "wait", what = "outside run()", where = "outside",
    call = function(ctx) as.wait(ctx.old) end,
    message = "wait: not inside asyncstack.run()" },
  { api = "pwait", what = "outside run()", where = "outside",
    call = function(ctx) as.pwait(ctx.old) end,
    message = "pwait: not inside asyncstack.run()" },
  { api = "wait", what = "on itself", where = "inside",
    call = function(ctx) as.wait(ctx.me) end,
    message = function(ctx) return ("wait: fork #%d cannot wait for itself"):format(ctx.me:id()) end },
  { api = "pwait", what = "on itself", where = "inside",
    call = function(ctx) as.pwait(ctx.me) end,
    message = function(ctx) return ("pwait: fork #%d cannot wait for itself"):format(ctx.me:id()) end },
  { api = "wait", what = "on a fork of an ended run", where = "inside",
    call = function(ctx) as.wait(ctx.old) end,
    message = function(ctx) return ("wait: fork #%d belongs to another asyncstack.run()"):format(ctx.old:id()) end },
  { api = "pwait", what = "on a fork of an ended run", where = "inside",
    call = function(ctx) as.pwait(ctx.old) end,
    message = function(ctx) return ("pwait: fork #%d belongs to another asyncstack.run()"):format(ctx.old:id()) end },
  { api = "wait", what = "that would close a wait cycle", where = "inside",
    setup = function(ctx)
      ctx.child = ctx.fork(function() return as.wait(ctx.me) end)
      as.yield()   -- the child now waits for the root
    end,
    call = function(ctx) as.wait(ctx.child) end,
    message = function(ctx)
      return ("wait: waiting for fork #%d would close a wait cycle: fork #%d -> fork #%d -> fork #%d")
        :format(ctx.child:id(), ctx.me:id(), ctx.child:id(), ctx.me:id())
    end },
  { api = "wait", what = "a negative timeout", where = "inside",
    setup = function(ctx) ctx.child = ctx.fork(short_sleeper) end,
    call = function(ctx) as.wait(ctx.child, -1) end,
    message = "bad argument #2 to 'wait' (timeout must be a non-negative number)" },
  { api = "wait", what = "a NaN timeout", where = "inside",
    setup = function(ctx) ctx.child = ctx.fork(short_sleeper) end,
    call = function(ctx) as.wait(ctx.child, 0 / 0) end,
    message = "bad argument #2 to 'wait' (timeout must be a non-negative number)" },
  { api = "wait", what = "a -inf timeout", where = "inside",
    setup = function(ctx) ctx.child = ctx.fork(short_sleeper) end,
    call = function(ctx) as.wait(ctx.child, -math.huge) end,
    message = "bad argument #2 to 'wait' (timeout must be a non-negative number)" },
  { api = "wait", what = "a string timeout", where = "inside",
    setup = function(ctx) ctx.child = ctx.fork(short_sleeper) end,
    call = function(ctx) as.wait(ctx.child, "soon") end,
    message = "bad argument #2 to 'wait' (number expected, got string)" },
  { api = "pwait", what = "a negative timeout", where = "inside",
    setup = function(ctx) ctx.child = ctx.fork(short_sleeper) end,
    call = function(ctx) as.pwait(ctx.child, -0.5) end,
    message = "bad argument #2 to 'pwait' (timeout must be a non-negative number)" },
  { api = "pwait", what = "a NaN timeout", where = "inside",
    setup = function(ctx) ctx.child = ctx.fork(short_sleeper) end,
    call = function(ctx) as.pwait(ctx.child, 0 / 0) end,
    message = "bad argument #2 to 'pwait' (timeout must be a non-negative number)" },
  { api = "pwait", what = "a table timeout", where = "inside",
    setup = function(ctx) ctx.child = ctx.fork(short_sleeper) end,
    call = function(ctx) as.pwait(ctx.child, {}) end,
    message = "bad argument #2 to 'pwait' (number expected, got table)" },
  { api = "wait", what = "a huge timeout (allowed: no timer)", where = "inside",
    setup = function(ctx) ctx.child = ctx.fork(short_sleeper) end,
    call = function(ctx) return as.wait(ctx.child, math.huge) end,
    returns = function(_, r) assert.are.equal("slept", r) end },
  { api = "pwait", what = "a zero timeout on a fork still running (allowed: times out)", where = "inside",
    setup = function(ctx) ctx.child = ctx.fork(short_sleeper) end,
    call = function(ctx) return as.pwait(ctx.child, 0) end,
    returns = function(ctx, ok, e)
      assert.is_false(ok)
      assert.is_true(as.Timeout:is(e))
      assert.are.equal(("pwait: timed out waiting for fork #%d (sleeping at spec/bad_input_spec.lua:40)"):format(ctx.child:id()), e:getMessage())
    end },
  { api = "wait", what = "in a table.sort comparator", where = "inside",
    setup = function(ctx) ctx.child = ctx.fork(short_sleeper) end,
    call = function(ctx)
      table.sort({ 3, 1, 2 }, function(a, b) as.wait(ctx.child); return a < b end)
    end,
    message = "wait: " .. C_CALL },

  ------------------------------------------------------------------ sleep
  { api = "sleep", what = "no argument", where = "both",
    call = function() as.sleep() end,
    message = "bad argument #1 to 'sleep' (number expected, got no value)" },
  { api = "sleep", what = "a string", where = "both",
    call = function() as.sleep("a while") end,
    message = "bad argument #1 to 'sleep' (number expected, got string)" },
  { api = "sleep", what = "a negative time", where = "both",
    call = function() as.sleep(-1) end,
    message = "bad argument #1 to 'sleep' (non-negative number expected)" },
  { api = "sleep", what = "NaN", where = "both",
    call = function() as.sleep(0 / 0) end,
    message = "bad argument #1 to 'sleep' (non-negative number expected)" },
  { api = "sleep", what = "-inf", where = "both",
    call = function() as.sleep(-math.huge) end,
    message = "bad argument #1 to 'sleep' (non-negative number expected)" },
  { api = "sleep", what = "outside run()", where = "outside",
    call = function() as.sleep(0) end,
    message = "sleep: not inside asyncstack.run()" },
  { api = "sleep", what = "in a table.sort comparator", where = "inside",
    call = function() table.sort({ 3, 1, 2 }, function(a, b) as.sleep(0); return a < b end) end,
    message = "sleep: " .. C_CALL },
  { api = "sleep", what = "in an __index metamethod called from C", where = "inside",
    call = function()
      table.unpack(setmetatable({}, { __index = function() as.sleep(0); return 1 end }), 1, 1)
    end,
    message = "sleep: " .. C_CALL },
  { api = "sleep", what = "in a coroutine resumed by the unbridged coroutine.resume", where = "inside",
    call = function()
      local ok, err = RAW_RESUME(coroutine.create(function() as.sleep(0) end))
      assert(not ok)
      error(err, 0)
    end,
    message = "sleep: cannot suspend: this coroutine was resumed by an unbridged coroutine.resume " ..
              "(call asyncstack.install() before the code that keeps a copy of coroutine.resume/wrap)" },
  { api = "sleep", what = "a string holding a number (allowed, as Lua converts it)", where = "inside",
    call = function() return as.sleep("0.001") end,
    returns = function(_, ...) assert.are.equal(0, select("#", ...)) end },

  ------------------------------------------------------------------ yield
  { api = "yield", what = "outside run()", where = "outside",
    call = function() as.yield() end,
    message = "yield: not inside asyncstack.run()" },
  { api = "yield", what = "in a __tostring metamethod", where = "inside",
    call = function() tostring(setmetatable({}, { __tostring = function() as.yield(); return "x" end })) end,
    message = "yield: " .. C_CALL },
  { api = "yield", what = "in a string.gsub callback", where = "inside",
    call = function() string.gsub("ab", "%w", function() as.yield() end) end,
    message = "yield: " .. C_CALL },

  -------------------------------------------------------- now, current
  { api = "now", what = "extra arguments (ignored, as Lua does)", where = "both",
    call = function() return as.now("x", 1) end,
    returns = function(_, t) assert.are.equal("float", math.type(t)) end },
  { api = "current", what = "extra arguments (ignored)", where = "outside",
    call = function() return as.current(1) end,
    returns = function(_, ...) assert.are.same({ n = 1 }, table.pack(...)) end },
  { api = "current", what = "extra arguments, inside (ignored)", where = "inside",
    call = function() return as.current(1) end,
    returns = function(ctx, f) assert.are.equal(ctx.me, f) end },

  --------------------------------------------------------------- traces
  { api = "debug_backtrace", what = "options that are not a table", where = "both",
    call = function() as.debug_backtrace(1) end,
    message = "bad argument #1 to 'debug_backtrace' (table expected, got number)" },
  { api = "debug_backtrace", what = "a fractional level", where = "both",
    call = function() as.debug_backtrace { level = 1.5 } end,
    message = "bad option 'level' to 'debug_backtrace' (positive integer expected, got number)" },
  { api = "debug_backtrace", what = "a string limit", where = "both",
    call = function() as.debug_backtrace { limit = "ten" } end,
    message = "bad option 'limit' to 'debug_backtrace' (positive integer expected, got string)" },
  { api = "debug_backtrace", what = "level 0", where = "both",
    call = function() as.debug_backtrace { level = 0 } end,
    message = "bad option 'level' to 'debug_backtrace' (positive integer expected, got 0)" },
  { api = "debug_backtrace", what = "a negative limit", where = "both",
    call = function() as.debug_backtrace { limit = -1 } end,
    message = "bad option 'limit' to 'debug_backtrace' (positive integer expected, got -1)" },
  { api = "traceback", what = "a string level", where = "both",
    call = function() as.traceback("m", "x") end,
    message = "bad argument #2 to 'traceback' (number expected, got string)" },
  { api = "traceback", what = "options that are not a table", where = "both",
    call = function() as.traceback("m", 1, 2) end,
    message = "bad argument #3 to 'traceback' (table expected, got number)" },
  { api = "traceback", what = "a message that is not a string (returned untouched)", where = "both",
    call = function() local t = {}; return t, as.traceback(t) end,
    returns = function(_, t, r) assert.are.equal(t, r) end },
  { api = "fork_backtrace", what = "no fork", where = "both",
    call = function() as.fork_backtrace() end,
    message = "bad argument #1 to 'fork_backtrace' (asyncstack.Fork expected, got no value)" },
  { api = "fork_backtrace", what = "a number", where = "both",
    call = function() as.fork_backtrace(3) end,
    message = "bad argument #1 to 'fork_backtrace' (asyncstack.Fork expected, got number)" },
  { api = "fork_backtrace", what = "options that are not a table", where = "both",
    call = function(ctx) as.fork_backtrace(ctx.old, true) end,
    message = "bad argument #2 to 'fork_backtrace' (table expected, got boolean)" },
  { api = "fork_backtrace", what = "a fork of an ended run (allowed: no frames)", where = "both",
    call = function(ctx) return as.fork_backtrace(ctx.old) end,
    returns = function(_, frames) assert.are.same({}, frames) end },

  ------------------------------------------------------ install, uninstall
  { api = "install", what = "extra arguments (ignored), twice", where = "outside",
    call = function()
      local original = coroutine.resume
      as.install(1)
      as.install("again")
      local bridged = coroutine.resume ~= original
      as.uninstall(1)
      return bridged, coroutine.resume == original
    end,
    returns = function(_, bridged, restored) assert.is_true(bridged); assert.is_true(restored) end },
  { api = "uninstall", what = "without install (a no-op)", where = "outside",
    call = function()
      local original = coroutine.resume
      as.uninstall()
      return coroutine.resume == original
    end,
    returns = function(_, same) assert.is_true(same) end },

  ------------------------------------------------------------ exceptions
  { api = "Exception", what = "a table message", where = "both",
    call = function() as.Exception({}) end,
    message = "bad argument #1 to 'Exception' (string expected, got table)" },
  { api = "Exception", what = "a boolean message", where = "outside",
    call = function() as.Exception(true) end,
    message = "bad argument #1 to 'Exception' (string expected, got boolean)" },
  { api = "Exception", what = "a string code", where = "both",
    call = function() as.Exception("m", "x") end,
    message = "bad argument #2 to 'Exception' (integer expected, got string)" },
  { api = "Exception", what = "a fractional code", where = "outside",
    call = function() as.Exception("m", 1.5) end,
    message = "bad argument #2 to 'Exception' (integer expected, got number)" },
  { api = "Exception", what = "a NaN code", where = "outside",
    call = function() as.Exception("m", 0 / 0) end,
    message = "bad argument #2 to 'Exception' (integer expected, got number)" },
  { api = "Exception", what = "a previous that is not an exception", where = "both",
    call = function() as.Exception("m", 0, { "x" }) end,
    message = "bad argument #3 to 'Exception' (asyncstack.Exception expected, got table)" },
  { api = "Timeout", what = "a table message", where = "outside",
    call = function() as.Timeout({}) end,
    message = "bad argument #1 to 'Timeout' (string expected, got table)" },
  { api = "Exception subclass", what = "a table message", where = "outside",
    call = function() as.Exception:extend("my.Error")({}) end,
    message = "bad argument #1 to 'Error' (string expected, got table)" },
  { api = "extend", what = "a non-class self", where = "outside",
    call = function() as.Exception.extend(1, "x") end,
    message = "bad argument #1 to 'extend' (exception class expected)" },
  { api = "extend", what = "no name", where = "outside",
    call = function() as.Exception.extend(as.Exception) end,
    message = "bad argument #2 to 'extend' (non-empty string expected, got nil)" },
  { api = "extend", what = "an empty name", where = "outside",
    call = function() as.Exception.extend(as.Exception, "") end,
    message = "bad argument #2 to 'extend' (non-empty string expected, got empty string)" },
  { api = "extend", what = "a number name, called as a method", where = "outside",
    call = function() as.Exception:extend(1) end,
    message = "bad argument #1 to 'extend' (non-empty string expected, got number)" },
  { api = "is", what = "a value that is not an exception (false, no error)", where = "outside",
    call = function() return as.Exception:is(1), as.Timeout:is(as.Exception("m")) end,
    returns = function(_, a, b) assert.is_false(a); assert.is_false(b) end },
  { api = "getMessage", what = "a number self", where = "outside",
    call = function() as.Exception.getMessage(1) end,
    message = "bad argument #1 to 'getMessage' (asyncstack.Exception expected, got number)" },
  { api = "getTrace", what = "a table that is not an exception", where = "outside",
    call = function() as.Exception.getTrace({}) end,
    message = "bad argument #1 to 'getTrace' (asyncstack.Exception expected, got table)" },
  { api = "pcall", what = "no function", where = "both",
    call = function() as.pcall() end,
    message = "bad argument #1 to 'pcall' (value expected)" },
  { api = "pcall", what = "a number (returns false and an exception, as pcall does)", where = "both",
    call = function() return as.pcall(1) end,
    returns = function(_, ok, e)
      assert.is_false(ok)
      assert.is_true(as.ErrorException:is(e))
      assert.are.equal("attempt to call a number value", e:getMessage())
    end },
  { api = "on_unhandled", what = "a number", where = "both",
    call = function() as.on_unhandled(1) end,
    message = "bad argument #1 to 'on_unhandled' (function or nil expected, got number)" },

  -------------------------------------------------------- introspection
  { api = "tasks", what = "options that are not a table", where = "both",
    call = function() as.tasks(1) end,
    message = "bad argument #1 to 'tasks' (table expected, got number)" },
  { api = "tasks", what = "outside run() (allowed: empty)", where = "outside",
    call = function() return as.tasks() end,
    returns = function(_, t) assert.are.same({}, t) end },
  { api = "dump", what = "a number", where = "both",
    call = function() as.dump(1) end,
    message = "bad argument #1 to 'dump' (file or table expected, got number)" },
  { api = "dump", what = "a closed file", where = "outside",
    call = function() local f = io.tmpfile(); f:close(); as.dump(f) end,
    message = "bad argument #1 to 'dump' (file or table expected, got closed file)" },
  { api = "dump", what = "a string fork option", where = "both",
    call = function() as.dump { fork = "1" } end,
    message = "bad option 'fork' to 'dump' (integer expected, got string)" },
  { api = "dump_on_signal", what = "a number", where = "both",
    call = function() as.dump_on_signal(1) end,
    message = "bad argument #1 to 'dump_on_signal' (string expected, got number)" },
  { api = "dump_on_signal", what = "true", where = "outside",
    call = function() as.dump_on_signal(true) end,
    message = "bad argument #1 to 'dump_on_signal' (string expected, got boolean)" },
  { api = "dump_on_signal", what = "an unknown signal", where = "both",
    call = function() as.dump_on_signal("SIGFOO") end,
    message = "bad argument #1 to 'dump_on_signal' (unknown or unsupported signal 'SIGFOO' " ..
              "(use SIGUSR1, SIGUSR2, SIGHUP, SIGQUIT, SIGINT, SIGTERM or SIGWINCH))" },

  ----------------------------------------------------------------- crash
  { api = "crash.install", what = "a number", where = "outside",
    call = function() as.crash.install(1) end,
    message = "bad argument #1 to 'install' (table expected, got number)" },
  { api = "crash.install", what = "an unknown option", where = "outside",
    call = function() as.crash.install { foo = 1 } end,
    message = "bad argument #1 to 'install' (unknown option 'foo')" },
  { api = "crash.install", what = "an array part", where = "outside",
    call = function() as.crash.install { 2 } end,
    message = "bad argument #1 to 'install' (unknown option (a number key))" },
  { api = "crash.install", what = "signals that are not a table", where = "outside",
    call = function() as.crash.install { signals = "SIGSEGV" } end,
    message = "bad argument #1 to 'install' (field 'signals': table expected, got string)" },
  { api = "crash.install", what = "no signals", where = "outside",
    call = function() as.crash.install { signals = {} } end,
    message = "bad argument #1 to 'install' (field 'signals': at least one signal name expected)" },
  { api = "crash.install", what = "a signal it does not handle", where = "outside",
    call = function() as.crash.install { signals = { "SIGUSR1" } } end,
    message = "bad argument #1 to 'install' (field 'signals': 'SIGUSR1' is not one of SIGSEGV, " ..
              "SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS)" },
  { api = "crash.install", what = "a signal number", where = "outside",
    call = function() as.crash.install { signals = { 11 } } end,
    message = "bad argument #1 to 'install' (field 'signals': signal name expected at index 1, got number)" },
  { api = "crash.install", what = "a negative fd", where = "outside",
    call = function() as.crash.install { fd = -1 } end,
    message = "bad argument #1 to 'install' (field 'fd': non-negative integer expected, got -1)" },
  { api = "crash.install", what = "a fractional fd", where = "outside",
    call = function() as.crash.install { fd = 1.5 } end,
    message = "bad argument #1 to 'install' (field 'fd': non-negative integer expected, got 1.5)" },
  { api = "crash.install", what = "a closed fd", where = "outside",
    call = function() as.crash.install { fd = 987654 } end,
    message = "bad argument #1 to 'install' (field 'fd': 987654 is not an open file descriptor)" },
  { api = "crash.uninstall", what = "extra arguments, nothing installed (false)", where = "outside",
    call = function() return as.crash.uninstall(1, 2) end,
    returns = function(_, r) assert.is_false(r) end },

  ---------------------------------------------------------- Fork methods
  { api = "id", what = "a number self", where = "both",
    call = function(ctx) ctx.old.id(1) end,
    message = "bad argument #1 to 'id' (asyncstack.Fork expected, got number; call it as f:id())" },
  { api = "id", what = "no self", where = "both",
    call = function(ctx) ctx.old.id() end,
    message = "bad argument #1 to 'id' (asyncstack.Fork expected, got no value; call it as f:id())" },
  { api = "name", what = "a table self", where = "both",
    call = function(ctx) ctx.old.name({}) end,
    message = "bad argument #1 to 'name' (asyncstack.Fork expected, got table; call it as f:name())" },
  { api = "name", what = "a number name", where = "both",
    call = function(ctx) ctx.old:name(42) end,
    message = "bad argument #1 to 'name' (string expected, got number)" },
  { api = "name", what = "a table name", where = "inside",
    call = function(ctx) ctx.me:name({}) end,
    message = "bad argument #1 to 'name' (string expected, got table)" },
  { api = "status", what = "a string self", where = "both",
    call = function(ctx) ctx.old.status("done") end,
    message = "bad argument #1 to 'status' (asyncstack.Fork expected, got string; call it as f:status())" },
  { api = "status", what = "a fork of an ended run (allowed)", where = "both",
    call = function(ctx) return ctx.old:status(), tostring(ctx.old) end,
    returns = function(ctx, st, text)
      assert.are.equal("done", st)
      assert.are.equal(("fork #%d"):format(ctx.old:id()), text)
    end },
  -------------------------------------------------------------- channel
  { api = "channel", what = "a negative capacity", where = "both",
    call = function() as.channel(-1) end,
    message = "bad argument #1 to 'channel' (capacity must be a non-negative integer)" },
  -- the next four are Lua's own luaL_checkinteger wording
  { api = "channel", what = "a fractional capacity", where = "both",
    call = function() as.channel(1.5) end,
    message = "bad argument #1 to 'channel' (number has no integer representation)" },
  { api = "channel", what = "a NaN capacity", where = "outside",
    call = function() as.channel(0 / 0) end,
    message = "bad argument #1 to 'channel' (number has no integer representation)" },
  { api = "channel", what = "an infinite capacity", where = "outside",
    call = function() as.channel(math.huge) end,
    message = "bad argument #1 to 'channel' (number has no integer representation)" },
  { api = "channel", what = "a string capacity", where = "both",
    call = function() as.channel("many") end,
    message = "bad argument #1 to 'channel' (number expected, got string)" },
  { api = "channel", what = "a table capacity", where = "outside",
    call = function() as.channel({}) end,
    message = "bad argument #1 to 'channel' (number expected, got table)" },
  { api = "channel", what = "a numeric string capacity (allowed, as Lua converts it)", where = "outside",
    call = function() return as.channel("3"):cap() end,
    returns = function(_, cap) assert.are.equal(3, cap) end },

  ------------------------------------------------------------ ch:send
  { api = "send", what = "nil", where = "both",
    setup = function(ctx) ctx.ch = as.channel(1) end,
    call = function(ctx) ctx.ch:send(nil) end,
    message = "bad argument #1 to 'send' (non-nil value expected)" },
  { api = "send", what = "no value", where = "both",
    setup = function(ctx) ctx.ch = as.channel(1) end,
    call = function(ctx) ctx.ch:send() end,
    message = "bad argument #1 to 'send' (non-nil value expected)" },
  { api = "send", what = "nil on a closed channel (the argument is checked first)", where = "outside",
    setup = function(ctx) ctx.ch = as.channel(1); ctx.ch:close() end,
    call = function(ctx) ctx.ch:send(nil) end,
    message = "bad argument #1 to 'send' (non-nil value expected)" },
  { api = "send", what = "a negative timeout", where = "both",
    setup = function(ctx) ctx.ch = as.channel(1) end,
    call = function(ctx) ctx.ch:send(1, -1) end,
    message = "bad argument #2 to 'send' (timeout must be a non-negative number)" },
  { api = "send", what = "a NaN timeout", where = "both",
    setup = function(ctx) ctx.ch = as.channel(1) end,
    call = function(ctx) ctx.ch:send(1, 0 / 0) end,
    message = "bad argument #2 to 'send' (timeout must be a non-negative number)" },
  { api = "send", what = "a -inf timeout", where = "inside",
    setup = function(ctx) ctx.ch = as.channel() end,
    call = function(ctx) ctx.ch:send(1, -math.huge) end,
    message = "bad argument #2 to 'send' (timeout must be a non-negative number)" },
  { api = "send", what = "a string timeout", where = "both",
    setup = function(ctx) ctx.ch = as.channel(1) end,
    call = function(ctx) ctx.ch:send(1, "soon") end,
    message = "bad argument #2 to 'send' (number expected, got string)" },
  { api = "send", what = "on a closed channel", where = "both",
    setup = function(ctx) ctx.ch = as.channel(1); ctx.ch:close() end,
    call = function(ctx) ctx.ch:send(1) end,
    message = function(ctx) return ("send: channel #%d is closed"):format(ctx.ch:id()) end },
  { api = "send", what = "when the channel is closed while it waits", where = "inside",
    setup = function(ctx)
      ctx.ch = as.channel()
      ctx.fork(function() ctx.ch:close() end)   -- runs once the send blocks
    end,
    call = function(ctx) ctx.ch:send(1) end,
    message = function(ctx) return ("send: channel #%d was closed while sending"):format(ctx.ch:id()) end },
  { api = "send", what = "outside run(), when it would block", where = "outside",
    setup = function(ctx) ctx.ch = as.channel() end,
    call = function(ctx) ctx.ch:send(1) end,
    message = "send: not inside asyncstack.run()" },
  { api = "send", what = "outside run(), into a buffer with room (allowed)", where = "outside",
    setup = function(ctx) ctx.ch = as.channel(1) end,
    call = function(ctx) return ctx.ch:send(1), ctx.ch:len() end,
    returns = function(_, ok, len) assert.is_true(ok); assert.are.equal(1, len) end },
  { api = "send", what = "a number self", where = "both",
    call = function() as.channel().send(1, 2) end,
    message = "bad argument #1 to 'send' (asyncstack.Channel expected, got number)" },
  { api = "send", what = "in a table.sort comparator", where = "inside",
    setup = function(ctx) ctx.ch = as.channel() end,
    call = function(ctx) table.sort({ 3, 1, 2 }, function(a, b) ctx.ch:send(1); return a < b end) end,
    message = "send: " .. C_CALL },
  { api = "send", what = "a zero timeout on a full channel (allowed: times out, sends nothing)", where = "inside",
    setup = function(ctx) ctx.ch = as.channel(1); ctx.ch:send("kept") end,
    call = function(ctx)
      local ok, e = pcall(ctx.ch.send, ctx.ch, "late", 0)
      return ok, e, ctx.ch:len(), ctx.ch:recv()
    end,
    returns = function(ctx, ok, e, len, v)
      assert.is_false(ok)
      assert.is_true(as.Timeout:is(e))
      assert.are.equal(("send: timed out on channel #%d"):format(ctx.ch:id()), e:getMessage())
      assert.are.same({ 1, "kept" }, { len, v })
    end },

  ------------------------------------------------------------ ch:recv
  -- a method call: Lua counts the timeout as argument #1, as it does for
  -- file:read's formats
  { api = "recv", what = "a negative timeout", where = "both",
    setup = function(ctx) ctx.ch = as.channel() end,
    call = function(ctx) ctx.ch:recv(-1) end,
    message = "bad argument #1 to 'recv' (timeout must be a non-negative number)" },
  { api = "recv", what = "a NaN timeout", where = "both",
    setup = function(ctx) ctx.ch = as.channel() end,
    call = function(ctx) ctx.ch:recv(0 / 0) end,
    message = "bad argument #1 to 'recv' (timeout must be a non-negative number)" },
  { api = "recv", what = "a string timeout", where = "both",
    setup = function(ctx) ctx.ch = as.channel() end,
    call = function(ctx) ctx.ch:recv("later") end,
    message = "bad argument #1 to 'recv' (number expected, got string)" },
  { api = "recv", what = "a timeout, called as a function", where = "inside",
    setup = function(ctx) ctx.ch = as.channel() end,
    call = function(ctx) ctx.ch.recv(ctx.ch, -2) end,
    message = "bad argument #2 to 'recv' (timeout must be a non-negative number)" },
  { api = "recv", what = "outside run(), when it would block", where = "outside",
    setup = function(ctx) ctx.ch = as.channel(4) end,
    call = function(ctx) ctx.ch:recv() end,
    message = "recv: not inside asyncstack.run()" },
  { api = "recv", what = "outside run(), buffered then closed (allowed: the value, then nil, \"closed\")",
    where = "outside",
    setup = function(ctx) ctx.ch = as.channel(1); ctx.ch:send("last"); ctx.ch:close() end,
    call = function(ctx) return { ctx.ch:recv() }, { ctx.ch:recv() }, { ctx.ch:recv(0) } end,
    returns = function(_, a, b, c)
      assert.are.same({ "last" }, a)
      assert.are.same({ nil, "closed" }, b)
      assert.are.same({ nil, "closed" }, c)
    end },
  { api = "recv", what = "a string self", where = "both",
    call = function() as.channel().recv("x") end,
    message = "bad argument #1 to 'recv' (asyncstack.Channel expected, got string)" },
  { api = "recv", what = "in a __tostring metamethod", where = "inside",
    setup = function(ctx) ctx.ch = as.channel() end,
    call = function(ctx)
      tostring(setmetatable({}, { __tostring = function() ctx.ch:recv(); return "x" end }))
    end,
    message = "recv: " .. C_CALL },
  { api = "recv", what = "a zero timeout on an empty channel (allowed: times out)", where = "inside",
    setup = function(ctx) ctx.ch = as.channel(2) end,
    call = function(ctx) return pcall(ctx.ch.recv, ctx.ch, 0) end,
    returns = function(ctx, ok, e)
      assert.is_false(ok)
      assert.is_true(as.Timeout:is(e))
      assert.are.equal(("recv: timed out on channel #%d"):format(ctx.ch:id()), e:getMessage())
    end },

  ------------------------------------------------------- other methods
  { api = "close", what = "a number self", where = "both",
    call = function() as.channel().close(1) end,
    message = "bad argument #1 to 'close' (asyncstack.Channel expected, got number)" },
  { api = "close", what = "no self", where = "both",
    call = function() as.channel().close() end,
    message = "bad argument #1 to 'close' (asyncstack.Channel expected, got no value)" },
  { api = "close", what = "a fork as self", where = "both",
    call = function(ctx) as.channel().close(ctx.old) end,
    message = "bad argument #1 to 'close' (asyncstack.Channel expected, got asyncstack.Fork)" },
  { api = "close", what = "a table self", where = "inside",
    call = function() as.channel().close({}) end,
    message = "bad argument #1 to 'close' (asyncstack.Channel expected, got table)" },
  { api = "close", what = "twice (true, then false)", where = "both",
    call = function() local ch = as.channel(); return ch:close(), ch:close(), ch:is_closed() end,
    returns = function(_, a, b, c) assert.are.same({ true, false, true }, { a, b, c }) end },
  { api = "len", what = "a table self", where = "outside",
    call = function() as.channel().len({}) end,
    message = "bad argument #1 to 'len' (asyncstack.Channel expected, got table)" },

  ---------------------------------------------------- wait_all, wait_any
  { api = "wait_all", what = "no list", where = "both",
    call = function() as.wait_all() end,
    message = "bad argument #1 to 'wait_all' (table expected, got no value)" },
  { api = "wait_all", what = "a fork instead of a list", where = "both",
    call = function(ctx) as.wait_all(ctx.old) end,
    message = "bad argument #1 to 'wait_all' (table expected, got asyncstack.Fork)" },
  { api = "wait_any", what = "a string", where = "both",
    call = function() as.wait_any("forks") end,
    message = "bad argument #1 to 'wait_any' (table expected, got string)" },
  { api = "wait_all", what = "a list with a number", where = "inside",
    setup = function(ctx) ctx.child = ctx.fork(short_sleeper) end,
    call = function(ctx) as.wait_all({ ctx.child, 1 }) end,
    message = "bad argument #1 to 'wait_all' (list of forks expected, item 2 is number)" },
  { api = "wait_any", what = "a list with a table", where = "inside",
    setup = function(ctx) ctx.child = ctx.fork(short_sleeper) end,
    call = function(ctx) as.wait_any({ {}, ctx.child }) end,
    message = "bad argument #1 to 'wait_any' (list of forks expected, item 1 is table)" },
  { api = "wait_all", what = "a list with a hole", where = "inside",
    setup = function(ctx) ctx.child = ctx.fork(short_sleeper) end,
    call = function(ctx) as.wait_all({ ctx.child, nil, ctx.child }) end,
    message = "bad argument #1 to 'wait_all' (list of forks expected, item 2 is nil)" },
  { api = "wait_all", what = "a list with a channel", where = "inside",
    call = function() as.wait_all({ as.channel() }) end,
    message = "bad argument #1 to 'wait_all' (list of forks expected, item 1 is asyncstack.Channel)" },
  { api = "wait_any", what = "an empty list", where = "inside",
    call = function() as.wait_any({}) end,
    message = "bad argument #1 to 'wait_any' (list of forks is empty)" },
  { api = "wait_any", what = "an empty list, outside run()", where = "outside",
    call = function() as.wait_any({}) end,
    message = "wait_any: not inside asyncstack.run()" },
  { api = "wait_all", what = "an empty list (allowed: {n = 0} at once)", where = "inside",
    call = function() return as.wait_all({}) end,
    returns = function(_, r) assert.are.same({ n = 0 }, r) end },
  { api = "wait_all", what = "outside run()", where = "outside",
    call = function(ctx) as.wait_all({ ctx.old }) end,
    message = "wait_all: not inside asyncstack.run()" },
  { api = "wait_any", what = "outside run()", where = "outside",
    call = function(ctx) as.wait_any({ ctx.old }) end,
    message = "wait_any: not inside asyncstack.run()" },
  { api = "wait_all", what = "a negative timeout", where = "both",
    call = function() as.wait_all({}, -1) end,
    message = "bad argument #2 to 'wait_all' (timeout must be a non-negative number)" },
  { api = "wait_any", what = "a NaN timeout", where = "both",
    call = function() as.wait_any({}, 0 / 0) end,
    message = "bad argument #2 to 'wait_any' (timeout must be a non-negative number)" },
  { api = "wait_all", what = "a string timeout", where = "inside",
    setup = function(ctx) ctx.child = ctx.fork(short_sleeper) end,
    call = function(ctx) as.wait_all({ ctx.child }, "soon") end,
    message = "bad argument #2 to 'wait_all' (number expected, got string)" },
  { api = "wait_any", what = "a -inf timeout", where = "inside",
    setup = function(ctx) ctx.child = ctx.fork(short_sleeper) end,
    call = function(ctx) as.wait_any({ ctx.child }, -math.huge) end,
    message = "bad argument #2 to 'wait_any' (timeout must be a non-negative number)" },
  { api = "wait_all", what = "on itself", where = "inside",
    setup = function(ctx) ctx.child = ctx.fork(short_sleeper) end,
    call = function(ctx) as.wait_all({ ctx.child, ctx.me }) end,
    message = function(ctx) return ("wait_all: fork #%d cannot wait for itself (index 2)"):format(ctx.me:id()) end },
  { api = "wait_any", what = "on itself", where = "inside",
    call = function(ctx) as.wait_any({ ctx.me }) end,
    message = function(ctx) return ("wait_any: fork #%d cannot wait for itself (index 1)"):format(ctx.me:id()) end },
  { api = "wait_all", what = "a fork of an ended run", where = "inside",
    call = function(ctx) as.wait_all({ ctx.old }) end,
    message = function(ctx) return ("wait_all: fork #%d belongs to another asyncstack.run()"):format(ctx.old:id()) end },
  { api = "wait_any", what = "in a table.sort comparator", where = "inside",
    setup = function(ctx) ctx.child = ctx.fork(short_sleeper) end,
    call = function(ctx)
      table.sort({ 3, 1, 2 }, function(a, b) as.wait_any({ ctx.child }); return a < b end)
    end,
    message = "wait_any: " .. C_CALL },
  { api = "wait_all", what = "a zero timeout on a fork still running (allowed: times out)", where = "inside",
    setup = function(ctx) ctx.child = ctx.fork(short_sleeper) end,
    call = function(ctx) return pcall(as.wait_all, { ctx.child }, 0) end,
    returns = function(ctx, ok, e)
      assert.is_false(ok)
      assert.is_true(as.Timeout:is(e))
      assert.are.equal(("wait_all: timed out waiting for fork #%d (index 1, sleeping at spec/bad_input_spec.lua:40)"):format(ctx.child:id()), e:getMessage())
    end },

  ---------------------------------------------------------- f:cancel()
  { api = "cancel", what = "a number self", where = "both",
    call = function(ctx) ctx.old.cancel(1) end,
    message = "bad argument #1 to 'cancel' (asyncstack.Fork expected, got number; call it as f:cancel())" },
  { api = "cancel", what = "no self", where = "both",
    call = function(ctx) ctx.old.cancel() end,
    message = "bad argument #1 to 'cancel' (asyncstack.Fork expected, got no value; call it as f:cancel())" },
  { api = "cancel", what = "a channel as self", where = "both",
    call = function(ctx) ctx.old.cancel(as.channel()) end,
    message = "bad argument #1 to 'cancel' (asyncstack.Fork expected, got asyncstack.Channel; call it as f:cancel())" },
  { api = "cancel", what = "a fork that has ended (allowed: false)", where = "both",
    call = function(ctx) return ctx.old:cancel(), ctx.old:status() end,
    returns = function(_, r, st) assert.is_false(r); assert.are.equal("done", st) end },

  ------------------------------------------------------------- close_fd
  { api = "close_fd", what = "no fd", where = "both",
    call = function() as.close_fd() end,
    message = "bad argument #1 to 'close_fd' (integer fd or object with getfd() expected, got no value)" },
  { api = "close_fd", what = "a string fd", where = "both",
    call = function() as.close_fd("0") end,
    message = "bad argument #1 to 'close_fd' (integer fd or object with getfd() expected, got string)" },
  { api = "close_fd", what = "a fractional fd", where = "both",
    call = function() as.close_fd(1.5) end,
    message = "bad argument #1 to 'close_fd' (integer fd or object with getfd() expected, got number)" },
  { api = "close_fd", what = "a table without getfd()", where = "both",
    call = function() as.close_fd({}) end,
    message = "bad argument #1 to 'close_fd' (integer fd or object with getfd() expected, got table)" },
  { api = "close_fd", what = "a negative fd", where = "both",
    call = function() as.close_fd(-1) end,
    message = "bad argument #1 to 'close_fd' (fd out of range)" },
  ------------------------------------------------------------- wait_fd
  { api = "wait_fd", what = "a string fd", where = "both",
    call = function() as.wait_fd("0", "r") end,
    message = "bad argument #1 to 'wait_fd' (integer fd or object with getfd() expected, got string)" },
  { api = "wait_fd", what = "a fractional fd", where = "both",
    call = function() as.wait_fd(1.5, "r") end,
    message = "bad argument #1 to 'wait_fd' (integer fd or object with getfd() expected, got number)" },
  { api = "wait_fd", what = "a table without getfd()", where = "outside",
    call = function() as.wait_fd({}, "r") end,
    message = "bad argument #1 to 'wait_fd' (integer fd or object with getfd() expected, got table)" },
  { api = "wait_fd", what = "an object whose getfd() gives a string", where = "both",
    call = function()
      as.wait_fd(setmetatable({}, { __index = { getfd = function() return "3" end } }), "r")
    end,
    message = "bad argument #1 to 'wait_fd' (getfd() returned string, integer fd expected)" },
  { api = "wait_fd", what = "a negative fd", where = "both",
    call = function() as.wait_fd(-1, "r") end,
    message = "bad argument #1 to 'wait_fd' (fd out of range)" },
  { api = "wait_fd", what = "an fd of 2^24", where = "outside",
    call = function() as.wait_fd(1 << 24, "w") end,
    message = "bad argument #1 to 'wait_fd' (fd out of range)" },
  { api = "wait_fd", what = "a closed fd", where = "inside",
    call = function() as.wait_fd(98765, "r", 0) end,
    message = "wait_fd: cannot watch fd 98765: Bad file descriptor" },
  { api = "wait_fd", what = "a mode that is not r or w", where = "both",
    call = function() as.wait_fd(0, "rw") end,
    message = "bad argument #2 to 'wait_fd' (invalid option 'rw')" },
  { api = "wait_fd", what = "no mode", where = "both",
    call = function() as.wait_fd(0) end,
    message = "bad argument #2 to 'wait_fd' (string expected, got no value)" },
  { api = "wait_fd", what = "a negative timeout", where = "both",
    call = function() as.wait_fd(0, "r", -1) end,
    message = "bad argument #3 to 'wait_fd' (timeout must be a non-negative number)" },
  { api = "wait_fd", what = "a NaN timeout", where = "both",
    call = function() as.wait_fd(0, "r", 0 / 0) end,
    message = "bad argument #3 to 'wait_fd' (timeout must be a non-negative number)" },
  { api = "wait_fd", what = "a string timeout", where = "inside",
    call = function() as.wait_fd(0, "r", "soon") end,
    message = "bad argument #3 to 'wait_fd' (number expected, got string)" },
  { api = "wait_fd", what = "outside run()", where = "outside",
    call = function() as.wait_fd(0, "r") end,
    message = "wait_fd: not inside asyncstack.run()" },
  { api = "wait_fd", what = "in a table.sort comparator", where = "inside",
    call = function() table.sort({ 3, 1, 2 }, function(a, b) as.wait_fd(0, "r"); return a < b end) end,
    message = "wait_fd: " .. C_CALL },
  { api = "wait_fd", what = "a second reader on one fd", where = "inside", needs = "socket",
    setup = function(ctx)
      ctx.server = assert(socket.bind("127.0.0.1", 0))
      ctx.fd = math.tointeger(ctx.server:getfd())
      ctx.fork(function() return pcall(as.wait_fd, ctx.fd, "r", 0.005) end)
      as.yield()   -- the fork now waits to read the fd (nobody connects)
    end,
    call = function(ctx) as.wait_fd(ctx.fd, "r", 0.005) end,
    message = function(ctx)
      return ("wait_fd: fd %d already has a fork waiting to read (fork #%d)"):format(ctx.fd, ctx.made[1]:id())
    end,
    teardown = function(ctx) ctx.server:close() end },
  { api = "wait_fd", what = "a second writer, through getfd()", where = "inside", needs = "socket",
    setup = function(ctx)
      ctx.server = assert(socket.bind("127.0.0.1", 0))   -- a listening socket is never writable
      ctx.fork(function() return pcall(as.wait_fd, ctx.server, "w", 0.005) end)
      as.yield()
    end,
    call = function(ctx) as.wait_fd(ctx.server, "w", 0.005) end,
    message = function(ctx)
      return ("wait_fd: fd %d already has a fork waiting to write (fork #%d)")
        :format(math.tointeger(ctx.server:getfd()), ctx.made[1]:id())
    end,
    teardown = function(ctx) ctx.server:close() end },
}

------------------------------------------------------------------ runner

local OLD   -- a fork of a run that has ended
local function old_fork()
  if not OLD then as.run(function() OLD = as.fork(nop) end) end
  return OLD
end

-- The error of a failed call split into position and text.
local function split(err)
  if type(err) ~= "string" then return nil, err end
  local where, text = err:match("^([^\n]-:%d+): (.*)$")
  if not where then return nil, err end
  return where, text
end

-- run() still works from outside, and nothing is left of earlier runs.
local function assert_works_outside()
  assert.is_nil(as.current())
  assert.are.same({}, as.tasks())
  local a, b, n = as.run(function()
    local sleeper = as.fork(short_sleeper)
    local waiter = as.fork(function() return as.wait(sleeper) end)
    return as.wait(waiter), as.pwait(sleeper), #as.tasks()
  end)
  assert.are.same({ "slept", true, 1 }, { a, b, n })
  assert.are.same({}, as.tasks())
end

local function check_outcome(row, ctx, ok, ...)
  if row.returns then
    if not ok then error("expected no error, got: " .. tostring((...)), 0) end
    row.returns(ctx, ...)
    return
  end
  local err = ...
  assert.is_false(ok, "expected an error")
  local where, text = split(err)
  local want = type(row.message) == "function" and row.message(ctx) or row.message
  assert.are.equal(want, text)
  assert.is_truthy(where and where:find(THIS, 1, true) == 1,
                   "the error is positioned at " .. tostring(where) .. ", not at the caller in " .. THIS)
end

local function run_outside(row)
  local ctx = { old = old_fork() }
  if row.setup then row.setup(ctx) end
  check_outcome(row, ctx, pcall(row.call, ctx))
  if row.teardown then row.teardown(ctx) end
  as.dump_on_signal(false)
  as.crash.uninstall()
  assert_works_outside()
end

-- Inside run(): the bad call, then, still inside, the fork count and a
-- fork that sleeps and is waited for. Results are checked after run().
local function run_inside(row)
  local ctx = { old = old_fork(), made = {} }
  local seen = {}
  as.run(function()
    ctx.me = as.current()
    function ctx.fork(fn)
      local f = as.fork(fn)
      ctx.made[#ctx.made + 1] = f
      return f
    end
    if row.setup then row.setup(ctx) end
    seen.before = #as.tasks()
    seen.outcome = table.pack(pcall(row.call, ctx))
    seen.after = #as.tasks()
    seen.live_made = 0
    for _, f in ipairs(ctx.made) do
      if f:status() ~= "done" and f:status() ~= "failed" then seen.live_made = seen.live_made + 1 end
    end
    seen.status = ctx.me:status()
    seen.probe = table.pack(as.pwait(as.fork(short_sleeper)))
    seen.end_tasks = #as.tasks()
  end)
  check_outcome(row, ctx, table.unpack(seen.outcome, 1, seen.outcome.n))
  assert.are.equal(1 + #ctx.made, seen.before)
  assert.are.equal(1 + seen.live_made, seen.after, "the call left forks behind (or lost some)")
  assert.are.equal("running", seen.status)
  assert.are.same({ true, "slept", n = 2 }, seen.probe)
  assert.is_true(seen.end_tasks <= seen.before)
  for _, f in ipairs(ctx.made) do
    assert.is_truthy(({ done = true, failed = true })[f:status()], "a fork of the case did not end")
  end
  if row.teardown then row.teardown(ctx) end
  as.dump_on_signal(false)
  assert_works_outside()
end

describe("asyncstack bad input", function()
  it("is run from a file loaded outside run(), with the unbridged coroutine.resume", function()
    assert.are_not.equal(require("asyncstack.core").bridged.resume, RAW_RESUME)
  end)

  for _, row in ipairs(ROWS) do
    local places = row.where == "both" and { "outside", "inside" } or { row.where }
    for _, place in ipairs(places) do
      it(("%s(): %s, %s run(), %s and leaves the scheduler working")
           :format(row.api, row.what, place, row.returns and "is accepted" or "raises naming the call"), function()
        -- ASYNCSTACK_REGRESS=1 runs the pending rows, to see them fail
        if row.pending and os.getenv("ASYNCSTACK_REGRESS") ~= "1" then pending(row.pending) end
        if row.needs == "socket" and not socket_ok then pending("needs lua-socket") end
        if place == "outside" then run_outside(row) else run_inside(row) end
      end)
    end
  end

  -- The scheduler itself calling user code: no fork is running there.
  it("sleep() from an on_unhandled handler (the scheduler, no fork) raises and run() ends cleanly", function()
    local got
    as.on_unhandled(function() got = select(2, pcall(as.sleep, 0)) end)
    local ok = pcall(as.run, function() as.fork(function() error("nobody waits") end) end)
    as.on_unhandled(nil)
    assert.is_true(ok)
    assert.are.equal("sleep: not inside a fork (called from the scheduler itself, e.g. a finalizer)", got)
    assert_works_outside()
  end)

  it("sleep() from a finalizer running in a fork raises (a C call that cannot yield)", function()
    local got
    as.run(function()
      setmetatable({}, { __gc = function() got = select(2, pcall(as.sleep, 0)) end })
      collectgarbage()
      collectgarbage()
    end)
    assert.are.equal("sleep: " .. C_CALL, got)
    assert_works_outside()
  end)

  it("resuming or closing a coroutine parked by a suspended fork raises, and the fork goes on", function()
    local resumed, closed, result
    as.run(function()
      local co = coroutine.create(function() as.sleep(0.002); return "woke" end)
      local f = as.fork(function() return select(2, coroutine.resume(co)) end)
      as.yield()
      resumed = select(2, coroutine.resume(co))
      closed = select(2, pcall(coroutine.close, co))
      result = as.wait(f)
    end)
    assert.are.equal("cannot resume a coroutine that is blocked in an asyncstack call of a suspended fork", resumed)
    assert.matches("cannot close a coroutine that is blocked in an asyncstack call of a suspended fork$", closed)
    assert.are.equal("woke", result)
    assert_works_outside()
  end)
end)
