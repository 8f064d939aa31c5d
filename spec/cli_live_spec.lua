-- Issue 15: `asyncstack ps / pstree / bt PID` against a child program in
-- each state (idle in its poller, stuck in a C call, spinning in a Lua loop
-- with no hook, switching forks), compared with what the child itself
-- wrote with as.tasks() and as.dump() just before it blocked, on the same
-- line: the same forks, statuses, await kinds and targets, await sites,
-- spawners, waiters and frames. #child: each test starts a process
-- (spec/fixtures/cli_child.lua); `make valgrind` and `make gc-stress`
-- leave them out.
local cli = require "spec.support.cli"

local ps_json, compare, compare_frames = cli.ps_json, cli.compare, cli.compare_frames

describe("asyncstack ps/pstree/bt PID (issue 15)", function()
  teardown(cli.cleanup)
  it("builds the command #child", function()
    assert.truthy(cli.exists(cli.tool), cli.tool .. " is built by make")
    local out, status = cli.tool_run("--version")
    assert.are.equal(0, status)
    assert.matches("^asyncstack ", out)
  end)

  it("reads a process idle in its poller: every fork as as.tasks() and as.dump() saw it #child", function()
    local view = cli.start("idle")
    local ok, err = pcall(function()
      local doc, by_id = ps_json(view.pid)
      assert.is_true(doc.live)
      assert.is_false(doc.stopped)
      compare(view, doc, by_id, "waiting", 7)
      assert.are.same({ 7 }, by_id[1].await.forks)         -- main waits for the gatherer
      assert.are.same({ 3, 4 }, by_id[7].await.forks)      -- wait_all of deep and waiter
      assert.are.equal("wait_all", by_id[7].await.combinator)
      assert.are.equal(1, by_id[5].await.channel)
      assert.are.equal("recv", by_id[5].await.op)
      assert.are.equal("read", by_id[6].await.op)
      assert.is_true(by_id[2].await.deadline_in > 900)
      assert.is_nil(by_id[8].await.deadline_in)              -- sleeps forever
      assert.are.equal("forever", by_id[8].await.target)
      compare_frames(view, view.pid)
      -- no fork runs: bt says so, and --fork picks one
      local out, status = cli.tool_run(("bt %d"):format(view.pid))
      assert.are.equal(0, status)
      assert.matches("no fork is running", out)
      -- the table and CSV forms carry the same rows
      local csv = cli.tool_run(("ps %d --format csv"):format(view.pid))
      assert.matches("^id,name,status,await,target,time,site,spawned_by,walk\n", csv)
      assert.matches('\n7,gatherer,waiting,wait,"forks #3, #4 %(wait_all%)",', csv)
      local tab = cli.tool_run(("ps %d"):format(view.pid))
      assert.matches("^process " .. view.pid .. ": 8 forks in 1 scheduler %(Lua 5%.4%.%d%), read while running", tab)
      assert.matches("\n2 +sleeper +sleeping +sleep +deadline in %d+s +%d+%.?%d*m?s +spec/fixtures/cli_child%.lua:90 in function 'nap' +fork #1 'main' at spec/fixtures/cli_child%.lua:96 +complete\n", tab)
    end)
    cli.kill(view.pid)
    assert(ok, err)
  end)

  it("draws the await graph as a tree: who waits on whom, through which frames #child", function()
    local view = cli.start("idle")
    local out, status, err = cli.tool_run(("pstree %d"):format(view.pid))
    cli.kill(view.pid)
    assert.are.equal(0, status, err)
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    local function at(pattern)
      for i, l in ipairs(lines) do if l:find(pattern, 1, true) then return i, l end end
      error("no line with " .. pattern .. " in:\n" .. out)
    end
    local function depth(l) return #(l:match("^([^(]*)%(F%)") or "") end
    local i_main, l_main = at("(F) fork #1 'main'")
    local i_gat, l_gat = at("(F) fork #7 'gatherer' [waiting on forks #3, #4 (wait_all)")
    local i_deep, l_deep = at("(F) fork #3 'deep' [sleeping")
    local i_wait, l_wait = at("(F) fork #4 'waiter' [waiting on fork #2")
    local i_sl, l_sl = at("(F) fork #2 'sleeper' [sleeping")
    assert.is_true(i_main < i_gat and i_gat < i_deep and i_deep < i_wait and i_wait < i_sl)
    assert.is_true(depth(l_main) < depth(l_gat))
    assert.is_true(depth(l_gat) < depth(l_deep))
    assert.are.equal(depth(l_deep), depth(l_wait))
    assert.is_true(depth(l_wait) < depth(l_sl))
    -- main's frame, then the gatherer under it
    assert.matches("function <spec/fixtures/cli_child%.lua:94> spec/fixtures/cli_child%.lua:113", lines[i_main + 1])
    -- the deep fork's frames, outermost first (a tail call in between)
    assert.matches("upvalue 'nap' spec/fixtures/cli_child%.lua:90", out)
    -- forks nobody waits for are roots of their own
    at("(F) fork #5 'receiver' [waiting on channel #1 (recv)")
    at("(F) fork #6 'reader' [waiting on fd ")
    at("(F) fork #8 'forever' [sleeping for ")
    assert.is_nil(out:find("cycle"))
  end)

  it("reads a process stuck in a C call: the running fork and its C frame #child", function()
    local view = cli.start("ccall")
    local ok, err = pcall(function()
      local doc, by_id = ps_json(view.pid)
      compare(view, doc, by_id, "running")
      assert.is_nil(by_id[1].await)
      assert.are.equal("[C]", by_id[1].site.file)       -- in io.open, called on
      assert.are.equal("function 'io.open'", by_id[1].site["function"])  -- the snapshot's line
      local bt = compare_frames(view, view.pid, 1)
      -- bt without --fork: the running fork, through run()'s caller
      local out, status = cli.tool_run(("bt %d --async"):format(view.pid))
      assert.are.equal(0, status)
      local lines = cli.trace_lines(out)
      assert.matches("^fork #1 'main' %[running%]\nstack traceback:\n", out)
      assert.matches("^\t%[C%]: in function 'io%.open'$", lines[1])
      assert.matches("^\tspec/fixtures/cli_child%.lua:116: in function <spec/fixtures/cli_child%.lua:94>  %(root of fork #1 'main'%)$", lines[2])
      assert.matches("^\t%[fork #1 'main' started by run%(%) at spec/fixtures/cli_child%.lua:94 in main chunk%]$", lines[3])
      assert.matches("^\tspec/fixtures/cli_child%.lua:94: in main chunk$", lines[4])
      assert.is_not_nil(bt[1])
    end)
    cli.kill(view.pid)
    assert(ok, err)
  end)

  it("reads a process spinning in a Lua loop with no hook set #child", function()
    local view = cli.start("spin")
    local ok, err = pcall(function()
      local doc, by_id = ps_json(view.pid)
      compare(view, doc, by_id, "running")
      assert.are.equal(119, by_id[1].site.line)
      compare_frames(view, view.pid)
      -- the same paused: consistent, and the process runs on afterwards
      local doc2 = ps_json(view.pid, "--stop")
      assert.is_true(doc2.stopped)
      assert.are.equal(#view.tasks, #doc2.forks)
      cli.assert_resumed(view.pid)
    end)
    cli.kill(view.pid)
    assert(ok, err)
  end)

  it("pauses a process switching forks at arbitrary points: inside a fork and between two #child", function()
    local view = cli.start("yield")
    local ok, err = pcall(function()
      local running, between, tries = 0, 0, 0
      while tries < 400 and ((running < 3 and not cli.under_asan) or between < 3) do
        tries = tries + 1
        local doc = ps_json(view.pid, "--stop")
        assert.are.equal(5, #doc.forks)
        assert.are.equal("complete", doc.walk)
        local n = 0
        for _, f in ipairs(doc.forks) do
          assert.are.equal("complete", f.walk)
          if f.status == "running" then n = n + 1 end
          assert.is_true(f.status == "running" or f.status == "runnable", f.status)
        end
        assert.is_true(n <= 1)
        if n == 1 then running = running + 1 else between = between + 1 end
      end
      -- Under make asan a --stop pause rarely lands inside a fork: ASan
      -- intercepts the longjmp of every Lua yield (__asan_handle_no_return
      -- -> PlatformUnpoisonStacks), which makes a sigaltstack system call,
      -- and the ptrace stop takes effect at that kernel boundary, where the
      -- yielding fork is already marked runnable (as_sched_suspend marks it
      -- before lua_yieldk). Seen with gdb's `catch syscall sigaltstack` and
      -- /proc/PID/syscall (131) while paused. The rest is checked.
      if not cli.under_asan then
        assert.is_true(running >= 3, "never paused inside a fork")
      end
      assert.is_true(between >= 3, "never paused between forks")
      cli.assert_resumed(view.pid)
    end)
    cli.kill(view.pid)
    assert(ok, err)
  end)

  it("always resumes a paused process, also when the tool is killed with SIGTERM meanwhile #child", function()
    local view = cli.start("spin")
    local ok, err = pcall(function()
      local errfile = view.dir .. "/tool.err"
      local p = assert(io.popen(("ASYNCSTACK_TEST_PAUSED_SECONDS=30 %s ps %d --stop 2>%s >/dev/null & echo $!")
        :format(cli.tool, view.pid, errfile)))
      local tool_pid = tonumber(p:read("l"))
      p:close()
      assert.truthy(cli.wait_until(function()
        local f = io.open(errfile)
        local text = f and f:read("a")
        if f then f:close() end
        return text and text:find("paused")
      end, 20), "the tool did not pause the process")
      local state, tracer = cli.proc_state(view.pid)
      assert.are.equal("t", state)          -- stopped by the tool
      assert.are.equal(tool_pid, tracer)
      os.execute("kill -TERM " .. tool_pid)
      assert.truthy(cli.wait_until(function()
        local s, t = cli.proc_state(view.pid)
        return s == "R" and t == 0
      end, 20), "the process was not resumed")
    end)
    cli.kill(view.pid)
    assert(ok, err)
  end)

  it("shows examples/chain.lua's 31 levels in order while the deepest fork sleeps #child", function()
    local dir = cli.tmpdir()
    local pid = cli.spawn("examples/chain.lua 30 " .. dir .. "/trace.txt")
    local ok, err = pcall(function()
      local text = cli.wait_until(function()
        local f = io.open(dir .. "/trace.txt")
        local t = f and f:read("a")
        if f then f:close() end
        return t and t:find("%[C%]: in %?") and t
      end, 30)
      assert.truthy(text, "chain.lua wrote no trace")
      local doc, by_id = ps_json(pid)
      local deepest
      for _, f in ipairs(doc.forks) do if f.name == "chain(0)" then deepest = f end end
      assert.are.equal(31, #doc.forks)
      assert.are.equal("sleeping", deepest.status)
      local out, status, e = cli.tool_run(("bt %d --fork %d --async"):format(pid, deepest.id))
      assert.are.equal(0, status, e)
      local mine, theirs = cli.trace_lines(out), cli.trace_lines("stack traceback:\n" .. text:gsub("^.-stack traceback:\n", ""))
      assert.are.same(theirs, mine)
      -- every level, in order
      local levels = {}
      for _, l in ipairs(mine) do
        local n = l:match("%(root of fork #%d+ 'chain%((%d+)%)'%)")
        if n then levels[#levels + 1] = tonumber(n) end
      end
      assert.are.equal(30, #levels)
      for i, n in ipairs(levels) do assert.are.equal(i - 1, n) end
      assert.are.equal("main", by_id[1].name)
    end)
    cli.kill(pid)
    assert(ok, err)
  end)
end)

describe("README's 'Debugging a live process or a core' (issue 15)", function()
  teardown(cli.cleanup)
  -- The README's blocks after "$ build/bin/asyncstack ..." lines, keyed by
  -- the command with the pid replaced by PID.
  local function readme_outputs()
    local f = assert(io.open("README.md"))
    local text = f:read("a")
    f:close()
    local section = text:match("\n## Debugging a live process or a core\n(.-)\n## ")
    local out, cmd = {}, nil
    for line in (section .. "\n"):gmatch("([^\n]*)\n") do
      local c = line:match("^%$ build/bin/asyncstack (.*)$")
      if c and c:find("--core", 1, true) then
        cmd = nil                      -- the crash core: spec/cli_core_spec.lua
      elseif c then
        cmd = c:gsub("%d%d%d+", "PID")
        out[cmd] = {}
      elseif line == "```" then
        cmd = nil
      elseif cmd then
        table.insert(out[cmd], line)
      end
    end
    return out
  end

  -- Times, deadlines, pids, fd numbers and column widths vary from run to run.
  local function normalize(lines)
    local out = {}
    for i, l in ipairs(lines) do
      l = l:gsub("process %d+", "process PID")
      l = l:gsub("%d+%.?%d*m?s", "T"):gsub("fd %d+", "fd N"):gsub(" +", " ")
      out[i] = l
    end
    return out
  end

  it("shows what the command prints for examples/stuck.lua #child", function()
    local pid = cli.spawn("examples/stuck.lua")
    local ok, err = pcall(function()
      assert.truthy(cli.wait_until(function()
        local out, status = cli.tool_run(("ps %d --format csv"):format(pid))
        return status == 0 and select(2, out:gsub("\n", "")) == 7 and not out:find("running")
      end, 30), "examples/stuck.lua did not settle")
      local shown = readme_outputs()
      local n = 0
      for cmd, lines in pairs(shown) do
        local out, status = cli.tool_run((cmd:gsub("PID", tostring(pid))))
        assert.are.equal(0, status, cmd)
        local got = {}
        for l in out:gmatch("([^\n]*)\n") do got[#got + 1] = l end
        assert.are.same(normalize(lines), normalize(got), cmd)
        n = n + 1
      end
      assert.are.equal(4, n)   -- ps, pstree, bt --fork 2 --async, bt
    end)
    cli.kill(pid)
    assert(ok, err)
  end)
end)

describe("asyncstack pstree and a cycle in the await graph (issue 15)", function()
  teardown(cli.cleanup)
  -- wait() refuses cycles, so only a torn read or a corrupted process shows
  -- one: gdb rewrites the waiter's wait node to point at its own awaiter
  -- (the gatherer), and the tree must name the cycle, not loop on it.
  it("names the cycle and draws each fork once #child", function()
    local dir = cli.tmpdir()
    local prog = dir .. "/offsets.c"
    local f = assert(io.open(prog, "w"))
    f:write([[
      #include <stddef.h>
      #include <stdio.h>
      #include "fork.h"
      int main(void) {
        printf("%zu %zu %zu\n", offsetof(as_fork, await), offsetof(as_await_fields, wait.nodes),
               offsetof(as_waitnode, target));
        return 0;
      }
    ]])
    f:close()
    local inc = io.popen("pkg-config --variable=includedir lua5.4"):read("l") .. "/lua5.4"
    local out, status = cli.sh(("env -u LD_PRELOAD cc -Isrc -I%s -o %s/offsets %s && %s/offsets"):format(inc, dir, prog, dir))
    assert.are.equal(0, status, out)
    local off_await, off_nodes, off_target = out:match("(%d+) (%d+) (%d+)")
    local view = cli.start("idle")
    local ok, err = pcall(function()
      local _, by_id = cli.ps_json(view.pid)
      local waiter, gatherer = by_id[4].address, by_id[7].address
      -- (the wait fields are in the fork's await record: fork.h)
      out, status = cli.sh(("env -u LD_PRELOAD gdb -batch -nx -q -p %d -ex 'set {long}({long}({long}(%s + %s) + %s) + %s) = %s' -ex detach")
        :format(view.pid, waiter, off_await, off_nodes, off_target, gatherer))
      assert.are.equal(0, status, out)
      local tree
      tree, status = cli.tool_run(("pstree %d --stop"):format(view.pid))
      assert.are.equal(0, status)
      assert.matches("\ncycle in the await graph: fork #7 'gatherer' %-> fork #4 'waiter' %-> fork #7 'gatherer'\n", tree)
      assert.matches("%(F%) fork #7 'gatherer'  %(cycle: already on this path, not drawn again%)", tree)
      local _, n = tree:gsub("%(F%) fork #4 'waiter' %[", "")
      assert.are.equal(1, n)
    end)
    cli.kill(view.pid)
    assert(ok, err)
  end)
end)
