# asyncstack-gdb.py: gdb commands for Lua programs running asyncstack.
#
#   (gdb) source /usr/local/share/asyncstack/asyncstack-gdb.py
#   (gdb) as-ps                 every fork: id, name, status, await, site, spawner
#   (gdb) as-pstree             the await graph as a tree (cycles named)
#   (gdb) as-bt                 the async trace of the running fork(s)
#   (gdb) as-fork N             the async trace of fork N
#
# Extra words are passed on: `as-ps --format json`, `as-bt --all`,
# `as-fork 7 --no-async` (as-bt and as-fork follow the chain of awaiting
# forks, as `asyncstack bt --async`, unless --no-async is given).
#
# How: these commands do not walk anything themselves. The one walker is C
# (src/memwalk_forks.c in asyncstack); the `asyncstack` command links it,
# and each command here runs that binary on what gdb has open:
#   * a live inferior: `asyncstack <cmd> PID`, which reads the stopped
#     inferior's memory with process_vm_readv (gdb keeps it stopped, so the
#     snapshot is consistent). Where the kernel refuses a reader that is not
#     the inferior's ancestor (Yama ptrace_scope 1 without CAP_SYS_PTRACE),
#     the command writes a core of the inferior with gdb's own `gcore` into
#     a temporary file and reads that instead (ASYNCSTACK_GDB_VIA_CORE=1
#     takes that route always);
#   * a core file: `asyncstack <cmd> --core FILE --exe EXECUTABLE`.
# Neither Lua's nor asyncstack's debug info is needed: the tool finds the
# debug descriptor through the ELF section "asyncstack_debug" of the mapped
# core.so, from /proc/PID/maps or the core's NT_FILE note.
#
# Which binary: $ASYNCSTACK_TOOL if set; else the one installed with this
# script (`make install`: PREFIX/share/asyncstack/ -> PREFIX/bin/asyncstack;
# a LuaRocks tree: share/lua/5.4/asyncstack/ -> bin/asyncstack); else a
# checkout's build/bin/asyncstack; else `asyncstack` on PATH.

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

import gdb

# gdb's `source` defines no __file__: the code object knows the path
_HERE = os.path.dirname(os.path.abspath(sys._getframe().f_code.co_filename))


def _tool():
    env = os.environ.get("ASYNCSTACK_TOOL")
    if env:
        return env
    here = _HERE
    for candidate in (os.path.join(here, "..", "..", "bin", "asyncstack"),
                      os.path.join(here, "..", "..", "..", "..", "bin", "asyncstack"),
                      os.path.join(here, "..", "build", "bin", "asyncstack")):
        if os.access(candidate, os.X_OK):
            return os.path.normpath(candidate)
    found = shutil.which("asyncstack")
    if found:
        return found
    raise gdb.GdbError("asyncstack: the `asyncstack` command was not found "
                       "(set ASYNCSTACK_TOOL to its path)")


def _core_file():
    """The core file gdb has open, or None (a live inferior)."""
    inf = gdb.selected_inferior()
    conn = getattr(inf, "connection", None)
    is_core = conn is not None and getattr(conn, "type", None) == "core"
    text = gdb.execute("info target", to_string=True)
    m = re.search(r"Local core dump file:\s*\n\s*`(.*?)',", text)
    if m:
        return m.group(1)
    if is_core:
        raise gdb.GdbError("asyncstack: cannot tell which core file is open")
    return None


def _run(argv):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)
    return proc.returncode, proc.stdout, proc.stderr


def _asyncstack(command, extra):
    tool = _tool()
    core = _core_file()
    if core is not None:
        argv = [tool, command, "--core", core]
        exe = gdb.current_progspace().filename
        if exe:
            argv += ["--exe", exe]
        rc, out, err = _run(argv + extra)
    else:
        pid = gdb.selected_inferior().pid
        if pid == 0:
            raise gdb.GdbError("asyncstack: no process (run or attach one, or open a core file)")
        via_core = os.environ.get("ASYNCSTACK_GDB_VIA_CORE") == "1"
        if not via_core:
            rc, out, err = _run([tool, command, str(pid)] + extra)
        if via_core or (rc == 1 and "permission denied" in err):
            # the kernel lets gdb (the tracer) read it, not our child: go
            # through a core written by gdb itself
            with tempfile.TemporaryDirectory(prefix="asyncstack-gdb-") as tmp:
                path = os.path.join(tmp, "core")
                gdb.execute("gcore " + path, to_string=True)
                argv = [tool, command, "--core", path]
                exe = gdb.current_progspace().filename
                if exe:
                    argv += ["--exe", exe]
                rc, out, err = _run(argv + extra)
    gdb.write(out)
    if err:
        gdb.write(err, gdb.STDERR)
    if rc != 0:
        raise gdb.GdbError("asyncstack %s failed (exit status %d)" % (command, rc))


def _async_args(words):
    if "--no-async" in words:
        return [w for w in words if w != "--no-async"]
    return words + ["--async"]


class AsPs(gdb.Command):
    """as-ps [--format table|csv|json]: every fork of the asyncstack schedulers."""

    def __init__(self):
        super().__init__("as-ps", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        _asyncstack("ps", shlex.split(arg))


class AsPstree(gdb.Command):
    """as-pstree: the await graph of the forks as a tree."""

    def __init__(self):
        super().__init__("as-pstree", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        _asyncstack("pstree", shlex.split(arg))


class AsBt(gdb.Command):
    """as-bt [--all] [--no-async]: the async trace of the running fork (or of every fork)."""

    def __init__(self):
        super().__init__("as-bt", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        _asyncstack("bt", _async_args(shlex.split(arg)))


class AsFork(gdb.Command):
    """as-fork N [--no-async]: the async trace of fork N."""

    def __init__(self):
        super().__init__("as-fork", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        words = shlex.split(arg)
        if not words or not words[0].isdigit():
            raise gdb.GdbError("as-fork: a fork id is needed (as-fork N)")
        _asyncstack("bt", ["--fork", words[0]] + _async_args(words[1:]))


AsPs()
AsPstree()
AsBt()
AsFork()
