-- Issue 15: every way `asyncstack` can fail says why, exits non-zero
-- (2 for a usage error, 1 for a target it cannot read) and never crashes:
-- one spec per case, with the exact message. #child: each runs the
-- command, most against a child process.
local cli = require "spec.support.cli"

local function fails(args, status, message, prefix)
  local out, st, err = cli.tool_run(args, prefix)
  assert.are.equal(message .. "\n", err)
  assert.are.equal("", out)
  assert.are.equal(status, st)
end

local function realpath(p)
  local out = cli.sh("realpath " .. p)
  return (out:gsub("\n$", ""))
end

local NOBODY = "setpriv --reuid=nobody --regid=nogroup --clear-groups"

describe("asyncstack's errors (issue 15)", function()
  teardown(cli.cleanup)
  describe("usage errors name the argument (status 2)", function()
    it("no command, an unknown command #child", function()
      fails("", 2, "asyncstack: a command is needed (ps, pstree or bt); asyncstack --help says more")
      fails("frob 1", 2, "asyncstack: unknown command 'frob' (ps, pstree or bt)")
    end)
    it("the process id: missing, malformed, twice #child", function()
      fails("ps", 2, "asyncstack ps: a process id or --core FILE is needed")
      fails("ps abc", 2, "asyncstack ps: bad process id 'abc'")
      fails("pstree -- ", 2, "asyncstack pstree: unknown option '--'")
      fails("ps 0", 2, "asyncstack ps: bad process id '0'")
      fails("ps 1 2", 2, "asyncstack ps: one process id only (got another: '2')")
    end)
    it("options: unknown, without their value, bad values, in conflict #child", function()
      fails("ps 1 --async", 2, "asyncstack ps: unknown option '--async'")
      fails("ps 1 --format", 2, "asyncstack ps: --format needs a value")
      fails("ps 1 --format xml", 2, "asyncstack ps: bad --format 'xml' (table, csv or json)")
      fails("bt 1 --fork x", 2, "asyncstack bt: bad fork id 'x' for --fork")
      fails("bt 1 --fork 2 --all", 2, "asyncstack bt: --fork and --all exclude each other")
      fails("ps --core x 1", 2, "asyncstack ps: give a process id or --core FILE, not both")
      fails("ps 1 --exe x", 2, "asyncstack ps: --exe goes with --core")
      fails("ps --core x --stop", 2, "asyncstack ps: --stop is for a live process, not --core")
      fails("ps --core", 2, "asyncstack ps: --core needs a value")
    end)
  end)

  describe("a process it cannot read (status 1)", function()
    it("no such process #child", function()
      local p = assert(io.popen("sh -c 'echo $$'"))
      local pid = tonumber(p:read("l"))
      p:close()
      fails("ps " .. pid, 1, "asyncstack: no process with pid " .. pid)
    end)

    it("no permission: another user's process #child", function()
      local view = cli.start("idle")
      local ok, err = pcall(fails, "ps " .. view.pid, 1,
        ("asyncstack: cannot read process %d: permission denied: process %d belongs to user root (uid 0) and the tool runs as user nobody (uid 65534): reading another user's process needs CAP_SYS_PTRACE (run it as root, or as that user)")
          :format(view.pid, view.pid), NOBODY)
      cli.kill(view.pid)
      assert(ok, err)
    end)

    -- The idle child run as nobody; returns its pid once it is up.
    -- not_dumpable: it runs an execute-only copy of lua5.4 (a program it may
    -- not read), which makes it not dumpable: the kernel then refuses even
    -- a tool of its own user.
    local function start_as_nobody(not_dumpable)
      local dir = cli.tmpdir()
      os.execute("chmod 777 " .. dir)
      local wrapper = NOBODY
      if not_dumpable then
        os.execute(("cp \"$(command -v lua5.4)\" %s/lua5.4 && chmod 711 %s/lua5.4"):format(dir, dir))
        wrapper = NOBODY .. " env PATH=" .. dir .. ":/usr/bin:/bin"
      end
      local out = dir .. "/view.lua"
      local pid = cli.spawn(("spec/fixtures/cli_child.lua idle %s"):format(out), nil, wrapper)
      if not cli.wait_until(function() return cli.exists(out) end, 30) then
        cli.kill(pid)
        error("the child did not start")
      end
      return pid
    end

    it("no permission: root without CAP_SYS_PTRACE #child", function()
      local pid = start_as_nobody(false)
      local ok, err = pcall(fails, "ps " .. pid, 1,
        ("asyncstack: cannot read process %d: permission denied: process %d belongs to user nobody (uid 65534) and the tool runs as user root (uid 0): reading another user's process needs CAP_SYS_PTRACE, which this root process lacks (it was dropped from its capability set)")
          :format(pid, pid), "setpriv --inh-caps=-sys_ptrace --bounding-set=-sys_ptrace")
      cli.kill(pid)
      assert(ok, err)
    end)

    it("no permission: a process that is not dumpable #child", function()
      local pid = start_as_nobody(true)
      local ok, err = pcall(fails, "ps " .. pid, 1,
        ("asyncstack: cannot read process %d: permission denied: process %d is not dumpable (it changed its user or group, ran a program it may not read, or called prctl(PR_SET_DUMPABLE, 0)): reading it needs CAP_SYS_PTRACE, which the tool lacks")
          :format(pid, pid), NOBODY)
      cli.kill(pid)
      assert(ok, err)
    end)

    it("no permission: Yama's ptrace_scope #child", function()
      -- Where Yama is at scope 1 it refuses a non-ancestor of the same user;
      -- where this kernel has no Yama (these machines), the scope file is
      -- stated in a mount namespace of the tool's own (a bind mount over
      -- /proc/sys/kernel) and the refusal comes from a process that is not
      -- dumpable: the message is the tool's reading of the scope either way.
      local f = io.open("/proc/sys/kernel/yama/ptrace_scope")
      local scope = f and tonumber(f:read("l"))
      if f then f:close() end
      local prefix = NOBODY
      if scope ~= 1 then
        local probe = os.execute("unshare -m true 2>/dev/null")
        if not probe then
          pending("Yama is " .. (scope and "at scope " .. scope or "not in this kernel") ..
                  " and no mount namespace can state it (unshare -m refused)")
          return
        end
        local fake = cli.tmpdir()
        os.execute(("mkdir -p %s/yama && echo 1 > %s/yama/ptrace_scope && chmod -R a+rX %s")
          :format(fake, fake, fake))
        prefix = ("unshare -m sh -c 'mount --bind %s /proc/sys/kernel && exec %s \"$0\" \"$@\"'")
          :format(fake, NOBODY)
      end
      local pid = start_as_nobody(true)
      local ok, err = pcall(fails, "ps " .. pid, 1,
        ("asyncstack: cannot read process %d: permission denied: Yama's ptrace_scope is 1 (/proc/sys/kernel/yama/ptrace_scope): only an ancestor of process %d may read it without CAP_SYS_PTRACE (run it as root, or set ptrace_scope to 0)")
          :format(pid, pid), prefix)
      cli.kill(pid)
      assert(ok, err)
    end)

    it("--stop on a process another tracer holds #child", function()
      local view = cli.start("idle")
      local ok, err = pcall(function()
        local errfile = view.dir .. "/holder.err"
        local p = assert(io.popen(("ASYNCSTACK_TEST_PAUSED_SECONDS=30 %s ps %d --stop 2>%s >/dev/null & echo $!")
          :format(cli.tool, view.pid, errfile)))
        local holder = tonumber(p:read("l"))
        p:close()
        assert.truthy(cli.wait_until(function()
          local _, tracer = cli.proc_state(view.pid)
          return tracer == holder
        end, 20))
        fails(("ps %d --stop"):format(view.pid), 1,
          ("asyncstack: cannot pause process %d: it is already traced by process %d (a debugger?); read it without --stop")
            :format(view.pid, holder))
        -- without --stop it reads the paused process
        local doc = cli.ps_json(view.pid)
        assert.are.equal(8, #doc.forks)
        os.execute("kill -TERM " .. holder)
      end)
      cli.kill(view.pid)
      assert(ok, err)
    end)

    it("the process has no asyncstack loaded #child", function()
      local p = assert(io.popen("env -u LD_PRELOAD sleep 60 >/dev/null 2>&1 & echo $!"))
      local pid = tonumber(p:read("l"))
      p:close()
      local ok, err = pcall(fails, "ps " .. pid, 1,
        ("asyncstack: process %d has no asyncstack loaded (no file it maps has an asyncstack_debug section)"):format(pid))
      cli.kill(pid)
      assert(ok, err)
    end)

    it("the descriptor is unverified (a Lua release whose layout differs) #child", function()
      local view = cli.start("idle", { env = "ASYNCSTACK_DEBUG_LUA_RELEASE=5.4.0" })
      local ok, err = pcall(fails, "ps " .. view.pid, 1,
        ("asyncstack: process %d: the Lua layout is unverified (see as.debug_layout()) (descriptor in %s)")
          :format(view.pid, realpath(cli.core_so)))
      cli.kill(view.pid)
      assert(ok, err)
    end)

    it("the descriptor has another layout version #child", function()
      local dir = cli.tmpdir()
      local so = dir .. "/lib/asyncstack/core.so"
      os.execute(("mkdir -p %s/lib/asyncstack && cp %s %s"):format(dir, cli.core_so, so))
      local sections = cli.sh("readelf -SW " .. so)
      local offset = tonumber(sections:match("asyncstack_debug%s+PROGBITS%s+%x+%s+(%x+)"), 16)
      assert.truthy(offset, sections)
      -- layout_version follows the 16-byte magic: make it 99
      local f = assert(io.open(so, "r+b"))
      f:seek("set", offset + 16)
      f:write(string.pack("<I4", 99))
      f:close()
      local view = cli.start("idle", { env = ("LUA_CPATH='%s/lib/?.so;%s'"):format(dir, cli.cpath) })
      local ok, err = pcall(fails, "ps " .. view.pid, 1,
        ("asyncstack: process %d: the descriptor has another layout version (descriptor in %s)")
          :format(view.pid, realpath(so)))
      cli.kill(view.pid)
      assert(ok, err)
    end)

    it("the process exits while it is being read #child", function()
      local view = cli.start("idle")
      local ok, err = pcall(fails, "ps " .. view.pid, 1,
        ("asyncstack: process %d exited while it was being read"):format(view.pid),
        "ASYNCSTACK_TEST_EXIT_AFTER_READS=40")
      cli.kill(view.pid)
      assert(ok, err)
    end)

    it("a fork id that is not live #child", function()
      local view = cli.start("idle")
      local ok, err = pcall(fails, ("bt %d --fork 999"):format(view.pid), 1,
        ("asyncstack: process %d has no live fork #999"):format(view.pid))
      cli.kill(view.pid)
      assert(ok, err)
    end)
  end)

  describe("a core file it cannot read (status 1)", function()
    local dir, core
    before_each(function() dir = dir or cli.tmpdir() end)
    -- a good core to cut short, made by the first test that needs it (not
    -- in setup(): runs that leave the #child specs out start no child)
    local function good_core()
      if core then return core end
      local view = cli.start("idle")
      core = dir .. "/core"
      cli.sh(("env -u LD_PRELOAD gdb -batch -nx -q -p %d -ex 'gcore %s' -ex detach"):format(view.pid, core))
      cli.kill(view.pid)
      return core
    end

    it("missing, empty, not ELF #child", function()
      fails("ps --core /nonexistent/core", 1,
        "asyncstack: cannot open core file /nonexistent/core: No such file or directory")
      os.execute(("touch %s/empty; echo hello > %s/text"):format(dir, dir))
      fails(("ps --core %s/empty"):format(dir), 1, ("asyncstack: %s/empty: not an ELF core file (it is empty)"):format(dir))
      fails(("ps --core %s/text"):format(dir), 1, ("asyncstack: %s/text: not an ELF core file (no ELF header)"):format(dir))
    end)

    it("an ELF file that is no core #child", function()
      fails("ps --core " .. cli.core_so, 1,
        ("asyncstack: %s: an ELF file but not a core file (type shared object)"):format(cli.core_so))
    end)

    if cli.under_asan then
      pending("a gcore core of a process under ASan holds its shadow memory (terabytes)")
    else it("truncated: in its headers, in a segment #child", function()
      assert.truthy(cli.exists(good_core()), "gcore wrote no core")
      os.execute(("head -c 100 %s > %s/short"):format(core, dir))
      fails(("ps --core %s/short"):format(dir), 1,
        ("asyncstack: %s/short: truncated core file (its program headers are missing)"):format(dir))
      local size = tonumber((cli.sh("stat -c %s " .. core)))
      local cut = size - 4096
      os.execute(("head -c %d %s > %s/cut"):format(cut, core, dir))
      local _, status, err = cli.tool_run(("ps --core %s/cut"):format(dir))
      assert.are.equal(1, status)
      assert.matches(("^asyncstack: %s/cut: truncated core file %%(it has %d bytes; its segment at 0x%%x+ needs %%d+%%)\n$")
        :format(dir:gsub("%p", "%%%0"), cut), err)
    end) end

    it("the core of a process without asyncstack #child", function()
      local p = assert(io.popen("env -u LD_PRELOAD sleep 60 >/dev/null 2>&1 & echo $!"))
      local pid = tonumber(p:read("l"))
      p:close()
      cli.sh(("env -u LD_PRELOAD gdb -batch -nx -q -p %d -ex 'gcore %s/sleep.core' -ex detach"):format(pid, dir))
      cli.kill(pid)
      fails(("ps --core %s/sleep.core"):format(dir), 1,
        ("asyncstack: %s/sleep.core: the core's process had no asyncstack loaded (no file it mapped has an asyncstack_debug section)"):format(dir))
    end)
  end)
end)
