-- asyncstack: a fork scheduler with async stack traces for Lua 5.4.
--
-- This file is the policy layer over asyncstack.core (C): how traces read as
-- text, what a failed fork's waiters see, how a deadlock is reported. The
-- mechanism (scheduler, async stack, bridge, trace walking) is in src/.
-- Requiring it touches no globals; run() installs the coroutine bridge only
-- for its own duration, install() does it for good.

local core = require "asyncstack.core"
local exception = require "asyncstack.exception"
local introspect = require "asyncstack.introspect"
local crash = require "asyncstack.crash"
local profile = require "asyncstack.profile"

local format = string.format
local type, pcall, tostring, error = type, pcall, tostring, error
local io_stderr = io.stderr
local fork_label = core.fork_label
local getinfo = debug.getinfo
local _ENV = nil

local M = {}

-- The release this is ("asyncstack X.Y.Z", "-dev" between releases).
M._VERSION = "asyncstack 0.1.0-dev"

-- Frames of this directory's Lua files are ours: traces hide them.
do
  local source = getinfo(1, "S").source
  core.set_internal_prefix((source:gsub("[^/\\]*$", "")))
end

--------------------------------------------------------------- policy hooks

-- Hooks are one-way: C hands each one the raw capture it needs (src/module.h),
-- so nothing here walks a stack. Trace text is made by the C renderer
-- (core.render, src/render.c); this file only decides what to show.

-- A fork failed with an error that is not an exception yet (C passes an
-- exception on as it is, and tests it against the Cancelled class given to
-- core.set_exception_class): its waiters see an exception. Plain error
-- values become an ErrorException whose trace is `raw`, the async chain at
-- the raise site (or the one the bridge kept when the error came out of a
-- generator). The second result says the fork was cancelled (as.Cancelled
-- escaped it): such a fork ends "cancelled", and that is no failure to report.
-- (This runs for every failed fork: the usual error, a string, skips the
-- class test (a string's metatable is the string library's, no class),
-- and instance_of is exception.is_exception's test without its wrapper.)
local instance_of, wrap_error = core.instance_of, exception.wrap_error
local Exception, Cancelled = exception.Exception, exception.Cancelled
core.set_hook("on_failure", function(err, raw)
  if type(err) ~= "string" and instance_of(err, Exception) then
    return err, instance_of(err, Cancelled)
  end
  return wrap_error(err, raw), false     -- a new ErrorException: no Cancelled
end)

core.set_hook("new_error", exception.new_error)

core.set_hook("on_rethrow", exception.note_rethrow)

-- Nothing can progress: as.Deadlock, whose message is the dump of the
-- blocked forks (Go's "all goroutines are asleep").
core.set_hook("on_deadlock", function(forks, raw)
  local message = format("run: deadlock: %d fork%s blocked and none can make progress:\n%s",
                         #forks, #forks == 1 and " is" or "s are",
                         introspect.blocked_report(forks))
  return exception.new_error("Deadlock", (message:gsub("\n$", "")), raw)
end)

-- The dump requested by dump_on_signal(), printed at a safe point.
core.set_hook("dump_signal", function()
  io_stderr:write("asyncstack: dump on signal\n", introspect.dump())
  io_stderr:flush()
end)

-- Failed forks nobody waited for: reported once, to stderr unless the user
-- set a handler with on_unhandled().
local unhandled_handler
local function report_unhandled(err, info)
  if unhandled_handler then
    local ok, problem = pcall(unhandled_handler, err, info)
    if ok then return end
    io_stderr:write("asyncstack: the on_unhandled handler failed: ",
                    exception.describe_value(problem), "\n")
  end
  local text = exception.is_exception(err) and tostring(err) or exception.describe_value(err)
  io_stderr:write(format("asyncstack: %s failed and nobody waited for it:\n%s\n",
                         fork_label(info.id, info.name), text))
end
core.set_hook("on_unhandled", report_unhandled)

------------------------------------------------------------------ public API

M.run = core.run
M.fork = core.fork
M.wait = core.wait
M.pwait = core.pwait
M.wait_all = core.wait_all
M.wait_any = core.wait_any
M.channel = core.channel
M.wait_fd = core.wait_fd
M.close_fd = core.close_fd
M.sleep = core.sleep
M.yield = core.yield
M.now = core.now
M.current = core.current
M.debug_backtrace = core.debug_backtrace
M.fork_backtrace = core.fork_backtrace
M.debug_layout = core.debug_layout   -- the published descriptor (README "Seen from outside")
M.traceback = core.traceback
M.install = core.install
M.uninstall = core.uninstall

-- introspection
M.tasks = introspect.tasks
M.dump = introspect.dump

-- as.dump_on_signal([name]): dump to stderr when the signal (default
-- SIGUSR1) arrives, at the next safe point; false removes the handler.
-- (C, so that argument errors point at the caller.)
M.dump_on_signal = core.dump_on_signal

-- exceptions
M.Exception = exception.Exception
M.ErrorException = exception.ErrorException
M.Timeout = exception.Timeout
M.Cancelled = exception.Cancelled
M.Deadlock = exception.Deadlock

-- as.pcall's message handler (src/exception.c) runs where the error was
-- raised and hands over that trace; exceptions never reach it.
core.set_hook("to_exception", exception.from_error)

-- as.pcall(f, ...) -> true, ... | false, exception (C: no frame of ours shows)
M.pcall = core.pcall

-- as.on_unhandled(fn | nil): fn(exception, {id =, name =}) receives failures
-- of forks nobody waited for; nil restores the report to stderr.
function M.on_unhandled(fn)
  if fn ~= nil and type(fn) ~= "function" then
    error(format("bad argument #1 to 'on_unhandled' (function or nil expected, got %s)", type(fn)), 2)
  end
  unhandled_handler = fn
end
M.crash = crash
M.profile = profile

return M
