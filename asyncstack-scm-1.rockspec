package = "asyncstack"
version = "scm-1"
source = {
   -- Placeholder until the project is published: set it to the public git
   -- URL before `luarocks pack` / `luarocks upload` (README, "Installing").
   -- `luarocks make` from a checkout never fetches it.
   url = "git+https://example.invalid/asyncstack/asyncstack.git",
}
description = {
   summary = "Fork scheduler with async stack traces for Lua 5.4",
   detailed = [[
A cooperative fork scheduler written in C (fork, wait, sleep, yield) whose
traces follow the whole coroutine chain: debug_backtrace and traceback cross
coroutine and fork boundaries down to the fork's root and, on request, on
through the forks waiting for it.
]],
   license = "MIT",
}
dependencies = {
   "lua >= 5.4, < 5.5",
}
-- libunwind (Debian: libunwind-dev) is found by the Makefile through
-- pkg-config: its header lives in a multiarch directory LuaRocks does not search.
-- The rock is built in its own directory (build-rock/), from scratch each
-- time (the Makefile's `rock` target empties it first): whatever an earlier
-- `make` left in build/, with other flags or other sources, is never what
-- gets installed.
build = {
   type = "make",
   build_target = "rock",
   build_variables = {
      CFLAGS = "$(CFLAGS)",
      LIBFLAG = "$(LIBFLAG)",
      LUA_INCDIR = "$(LUA_INCDIR)",
      BUILD = "build-rock",
   },
   -- The `asyncstack` command goes to the rock's bin/ (LuaRocks puts it in
   -- the tree's bin/); its gdb script (gdb/asyncstack-gdb.py) next to the
   -- Lua files, where it finds the command as ../../../../bin/asyncstack.
   install_variables = {
      INST_LIBDIR = "$(LIBDIR)",
      INST_LUADIR = "$(LUADIR)",
      INST_BINDIR = "$(BINDIR)",
      INST_GDBDIR = "$(LUADIR)/asyncstack",
      BUILD = "build-rock",
   },
}
