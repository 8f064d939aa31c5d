-- asyncstack.crash: the crash handler (also reachable as asyncstack.crash).
--
--   local crash = require "asyncstack.crash"
--   crash.install()                         -- SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT to fd 2
--   crash.install { signals = { "SIGSEGV", "SIGABRT" }, fd = 2 }
--   crash.uninstall()                       --> true if a handler was installed
--
-- On one of those signals the process prints its native stack and the async
-- stack of the running fork, then dies of the same signal (README, "Crash
-- handler"). Everything runs in C (src/crash.c): a signal handler may not
-- call Lua. install() returns true, or nil and a message when the system
-- refuses (no memory for the alternate stack, sigaction failure); bad
-- options raise. Signal dispositions belong to the process, so installing
-- from a second Lua state replaces the first one's configuration.
--
-- Requiring this module installs nothing.

local core = require "asyncstack.core"

local M = {}

M.install = core.crash_install
M.uninstall = core.crash_uninstall

return M
