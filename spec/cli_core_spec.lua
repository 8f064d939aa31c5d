-- Issue 15: `asyncstack ps / pstree / bt --core FILE [--exe BIN]` on ELF
-- core files: written by gdb's `gcore` from a running child (compared with
-- what the child itself wrote with as.tasks() and as.dump()), by the kernel
-- when examples/crash.lua (folly's co_funcA/B/C) dies of SIGSEGV (compared
-- with the crash report the process printed), and by gcore from gdb
-- stopped at that SIGSEGV. #child: each starts processes.
local cli = require "spec.support.cli"

-- gdb must not inherit the ASan runtime the specs run with (make asan).
local GDB = "env -u LD_PRELOAD gdb -batch -nx -q"

local function gcore(pid, path)
  local out, status = cli.sh(("%s -p %d -ex 'gcore %s' -ex detach"):format(GDB, pid, path))
  assert.are.equal(0, status, out)
  assert.truthy(cli.exists(path), out)
end

-- The kernel writes cores as core_pattern says: a plain relative name
-- lands in the crashing process's directory. A pipe or an absolute path
-- belongs to the system (systemd-coredump, apport): then only the gdb
-- route below runs.
local function kernel_core_name()
  local f = io.open("/proc/sys/kernel/core_pattern")
  local pattern = f and f:read("l") or "|"
  if f then f:close() end
  if pattern:match("^[|/]") then return nil, pattern end
  return pattern
end

-- The async section of examples/crash.lua's report, as trace lines.
local function report_lines(text)
  local out = {}
  for _, l in ipairs(cli.trace_lines(text:match("\nasync stack %(fork #%d+ '[^']*'%):\n(.*)$") or "")) do
    if l:sub(1, 1) == "\t" then out[#out + 1] = l end   -- not the shell's "Segmentation fault"
  end
  return out
end

-- The checkout's paths made absolute: the crash runs in a directory of its own.
local function absolute(list)
  local cwd = os.getenv("PWD")
  return (list:gsub("[^;]+", function(e) return e:sub(1, 1) == "/" and e or cwd .. "/" .. e end))
end
local CRASH_ENV = ("LUA_PATH='%s' LUA_CPATH='%s;%s/test/?.so;;'")
  :format(absolute(cli.lpath), absolute(cli.cpath), absolute(cli.build))

describe("asyncstack --core (issue 15)", function()
  teardown(cli.cleanup)
  if cli.under_asan then
    -- a core of a process under ASan holds its shadow memory: terabytes
    -- (sparse), and gigabytes written; `make test` runs these
    pending("core files of processes under ASan (their shadow memory makes them terabytes)")
    return
  end
  it("reads a core written by gcore: the forks as the process saw them #child", function()
    local view = cli.start("idle")
    local path = view.dir .. "/core"
    local ok, err = pcall(function()
      gcore(view.pid, path)
      cli.kill(view.pid)        -- from here on only the core is read
      local doc, by_id = cli.ps_json("--core " .. path)
      assert.is_false(doc.live)
      cli.compare(view, doc, by_id, "waiting", 7)
      cli.compare_frames(view, "--core " .. path)
      local doc2 = cli.ps_json("--core " .. path .. " --exe /usr/bin/lua5.4")
      assert.are.equal(#doc.forks, #doc2.forks)
      local tree, status = cli.tool_run("pstree --core " .. path)
      assert.are.equal(0, status)
      assert.matches("core file " .. path:gsub("%p", "%%%0") .. ": 8 forks in 1 scheduler", tree)
      assert.matches("%(F%) fork #7 'gatherer' %[waiting on forks #3, #4 %(wait_all%)", tree)
      local bt = cli.tool_run("bt --core " .. path .. " --fork 2 --async")
      local lines = cli.trace_lines(bt)
      assert.are.equal("\tspec/fixtures/cli_child.lua:90: in function 'nap'  (root of fork #2 'sleeper')", lines[1])
      assert.are.equal("\t[fork #2 'sleeper' awaited by fork #4 'waiter' at spec/fixtures/cli_child.lua:100 in function <spec/fixtures/cli_child.lua:100>]", lines[2])
    end)
    cli.kill(view.pid)
    assert(ok, err)
  end)

  it("finds the descriptor in the core's memory when the library file is gone #child", function()
    local dir = cli.tmpdir()
    os.execute(("mkdir -p %s/lib/asyncstack && cp %s %s/lib/asyncstack/core.so"):format(dir, cli.core_so, dir))
    local view = cli.start("idle", { env = ("LUA_CPATH='%s/lib/?.so;%s'"):format(dir, cli.cpath) })
    local path = view.dir .. "/core"
    local ok, err = pcall(function()
      gcore(view.pid, path)
      cli.kill(view.pid)
      os.remove(dir .. "/lib/asyncstack/core.so")
      local doc, by_id = cli.ps_json("--core " .. path)
      cli.compare(view, doc, by_id, "waiting", 7)
    end)
    cli.kill(view.pid)
    assert(ok, err)
  end)

  it("shows folly's co_funcC, co_funcB, co_funcA from the kernel's core of a crashed run #child", function()
    local name, pattern = kernel_core_name()
    if not name then
      pending("core_pattern is '" .. pattern .. "': the kernel's cores go elsewhere; the gcore case below covers it")
      return
    end
    local dir = cli.tmpdir()
    local report = cli.sh(("cd %s && ulimit -c unlimited && %s lua5.4 %s/examples/crash.lua; true")
      :format(dir, CRASH_ENV, os.getenv("PWD")))
    local core = cli.sh(("ls %s | grep -v '^out$' | head -1"):format(dir)):match("[^\n]+")
    assert.truthy(core, "no core file was written:\n" .. report)
    local out, status, err = cli.tool_run(("bt --core %s/%s --async"):format(dir, core))
    assert.are.equal(0, status, err)
    local lines = cli.trace_lines(out)
    assert.matches("^fork #3 'co_funcC' %[running%]\n", out)
    assert.matches("^\t%[C%]: in function 'asyncstack_crashhelper%.null_deref'$", lines[1])
    assert.matches("examples/crash%.lua:16: in function 'co_funcC'  %(root of fork #3 'co_funcC'%)$", lines[2])
    assert.matches("^\t%[fork #3 'co_funcC' awaited by fork #2 'co_funcB' at ", lines[3])
    assert.matches("examples/crash%.lua:22: in function 'co_funcB'  %(root of fork #2 'co_funcB'%)$", lines[4])
    assert.matches("^\t%[fork #2 'co_funcB' awaited by fork #1 'co_funcA' at ", lines[5])
    assert.matches("examples/crash%.lua:28: in upvalue 'co_funcA'$", lines[6])
    -- the crash report the process printed in its handler says the same
    assert.are.same(report_lines(report), lines)
  end)

  it("shows them from a core gcore wrote with the process stopped at its SIGSEGV #child", function()
    local dir = cli.tmpdir()
    local path = dir .. "/core"
    local out = cli.sh(("cd %s && %s %s -ex run -ex 'gcore %s' -ex kill --args lua5.4 examples/crash.lua")
      :format(os.getenv("PWD"), CRASH_ENV, GDB, path))
    assert.truthy(cli.exists(path), out)
    local bt, status, err = cli.tool_run(("bt --core %s --async"):format(path))
    assert.are.equal(0, status, err)
    local lines = cli.trace_lines(bt)
    local names = {}
    for _, l in ipairs(lines) do
      local n = l:match("in function '(co_func%a)'") or l:match("in upvalue '(co_func%a)'")
      if n and names[#names] ~= n then names[#names + 1] = n end
    end
    assert.are.same({ "co_funcC", "co_funcB", "co_funcA" }, names)
    local doc = cli.ps_json("--core " .. path)
    assert.are.equal(3, #doc.forks)
    assert.are.equal("running", doc.forks[3].status)
  end)
end)
