-- Issue 15: the gdb commands of gdb/asyncstack-gdb.py (as-ps, as-pstree,
-- as-bt, as-fork N) in `gdb -batch`, on a live inferior (attached) and on
-- a core file, with a core.so stripped of every symbol and of its debug
-- info (Debian's lua5.4 has none either): the script runs the asyncstack
-- command, so what it prints is what the command prints, and that is what
-- the child saw itself (spec/cli_live_spec.lua). #child.
local cli = require "spec.support.cli"

local GDB = "env -u LD_PRELOAD gdb -batch -nx -q"
local SCRIPT = "gdb/asyncstack-gdb.py"

local function gdb_run(target, commands, env)
  local ex = {}
  for _, c in ipairs(commands) do ex[#ex + 1] = ("-ex '%s'"):format(c) end
  return cli.sh(("%s ASYNCSTACK_TOOL=%s %s -ex 'source %s' %s %s")
    :format(env or "", cli.tool, GDB, SCRIPT, table.concat(ex, " "), target))
end

-- The lines of `text` from the one matching `first` on: a fork's trace.
local function block(text, first)
  local out, on = {}, false
  for line in text:gmatch("[^\n]*") do
    if not on and line:find(first, 1, true) then on = true end
    if on then
      if line == "" or (#out >= 2 and line:sub(1, 1) ~= "\t") then break end
      out[#out + 1] = line
    end
  end
  return out
end

-- A child whose core.so has no symbols and no debug info at all.
local function start_stripped()
  local dir = cli.tmpdir()
  local so = dir .. "/lib/asyncstack/core.so"
  os.execute(("mkdir -p %s/lib/asyncstack && strip --strip-all -o %s %s"):format(dir, so, cli.core_so))
  local syms = cli.sh("nm -D --defined-only " .. so .. " 2>&1; readelf -S " .. so)
  assert.is_nil(syms:find("%.debug_info"))
  assert.is_nil(syms:find("%.symtab"))
  return cli.start("idle", { env = ("LUA_CPATH='%s/lib/?.so;%s'"):format(dir, cli.cpath) })
end

local function check_output(out, view)
  -- as-ps: the command's table
  assert.matches(("process %d: 8 forks in 1 scheduler"):format(view.pid), out, 1, true)
  assert.matches("\n2 +sleeper +sleeping +sleep +deadline in %d+s", out)
  assert.matches("\n7 +gatherer +waiting +wait +forks #3, #4 %(wait_all%)", out)
  -- as-pstree
  assert.matches("%(F%) fork #7 'gatherer' %[waiting on forks #3, #4 %(wait_all%)", out)
  -- as-fork 2: the sleeper, through its waiter, the gatherer, main and run()
  local trace = block(out, "fork #2 'sleeper' [sleeping]")
  assert.are.equal("stack traceback:", trace[2])
  assert.are.equal("\tspec/fixtures/cli_child.lua:90: in function 'nap'  (root of fork #2 'sleeper')", trace[3])
  assert.are.equal("\t[fork #2 'sleeper' awaited by fork #4 'waiter' at spec/fixtures/cli_child.lua:100 in function <spec/fixtures/cli_child.lua:100>]", trace[4])
  assert.are.equal("\t[fork #4 'waiter' awaited by fork #7 'gatherer' in wait_all (index 2) at spec/fixtures/cli_child.lua:107 in function <spec/fixtures/cli_child.lua:107>]", trace[6])
  assert.are.equal("\t[C]: in ?", trace[#trace])
  -- the frames are the child's own
  local dump = cli.parse_dump(view.dump)
  assert.are.equal(dump[2][1], trace[3]:match("^\t(.-): in ") .. " in function 'nap'")
  -- as-bt: nothing runs in an idle process
  assert.matches("no fork is running", out)
end

describe("gdb commands (issue 15)", function()
  teardown(cli.cleanup)
  it("as-ps, as-pstree, as-fork, as-bt on a live inferior #child", function()
    local view = start_stripped()
    local out = gdb_run("-p " .. view.pid, { "as-ps", "as-pstree", "as-fork 2", "as-bt" })
    local state, tracer = cli.proc_state(view.pid)
    cli.kill(view.pid)
    check_output(out, view)
    assert.is_nil(out:find("Python Exception"))
    assert.are_not.equal("t", state)    -- gdb detached: it runs on
    assert.are.equal(0, tracer)
  end)

  if cli.under_asan then
    pending("cores of processes under ASan (their shadow memory makes them terabytes)")
  else it("the same through a core gdb writes, when the inferior cannot be read directly #child", function()
    local view = start_stripped()
    local out = gdb_run("-p " .. view.pid, { "as-ps", "as-pstree", "as-fork 2", "as-bt" },
                        "ASYNCSTACK_GDB_VIA_CORE=1")
    cli.kill(view.pid)
    check_output(out:gsub("core file [^\n]-/core: ", ("process %d: "):format(view.pid)), view)
  end) end

  if not cli.under_asan then it("as-ps, as-pstree, as-fork, as-bt on a core file #child", function()
    local view = start_stripped()
    local core = view.dir .. "/core"
    cli.sh(("%s -p %d -ex 'gcore %s' -ex detach"):format(GDB, view.pid, core))
    cli.kill(view.pid)
    local out = gdb_run("/usr/bin/lua5.4 " .. core, { "as-ps", "as-pstree", "as-fork 2", "as-bt" })
    assert.matches("core file " .. core:gsub("%p", "%%%0") .. ": 8 forks", out)
    check_output(out:gsub("core file [^\n]-: 8 forks", ("process %d: 8 forks"):format(view.pid)), view)
  end) end

  it("as-fork without a fork id says so #child", function()
    local view = cli.start("idle")
    local out = gdb_run("-p " .. view.pid, { "as-fork" })
    cli.kill(view.pid)
    assert.matches("as%-fork: a fork id is needed %(as%-fork N%)", out)
  end)
end)
