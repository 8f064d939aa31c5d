-- The crash handler. Every crash happens in a child process (tests tagged
-- #child, which `make valgrind` excludes): spec/fixtures/crash_child.lua runs
-- one scenario, and the spec reads the report and the exit status.
local as = require "asyncstack"
local helper = require "spec.helper"
local error_of = helper.error_of

-- The child finds the core where this process found it, and the crash
-- helper module in the test/ directory next to it (make test builds it).
local core_path = assert(package.searchpath("asyncstack.core", package.cpath))
local build_dir = assert(core_path:match("^(.-)/?asyncstack/core%.so$"))
if build_dir == "" then build_dir = "." end
local CHILD_CPATH = ("%s/?.so;%s/test/?.so;;"):format(build_dir, build_dir)
local CHILD_PATH = os.getenv("LUA_PATH") or "lua/?.lua;lua/?/init.lua;;"
local UNDER_ASAN = os.getenv("ASYNCSTACK_ASAN") == "1"

local SIGABRT_STATUS, SIGSEGV_STATUS = 128 + 6, 128 + 11
-- How a NULL store ends the child when our handler does not take it: under
-- `make asan` ASan's own handler reports it and aborts (abort_on_error=1).
local UNHANDLED_SEGV_STATUS = UNDER_ASAN and SIGABRT_STATUS or SIGSEGV_STATUS

-- Runs `lua5.4 <script> <args>` with no core dumps and a time limit (a hang
-- is a failure, not a stuck suite). Returns what the child wrote to the fd
-- `capture` names (default: stdout and stderr together) and its exit status
-- as the shell reports it (128 + signal when a signal ended it).
local function run(script, args, capture)
  local redirect = capture == "stdout" and "2>/dev/null" or "2>&1"
  -- dash prints its "Segmentation fault" notice where the command's stderr
  -- went; in a subshell it goes to the outer stderr, which is dropped
  local cmd = ("exec 2>/dev/null; ulimit -c 0; (LUA_PATH='%s' LUA_CPATH='%s' "
               .. "timeout -s KILL 60 lua5.4 %s %s %s); echo \"status=$?\"")
    :format(CHILD_PATH, CHILD_CPATH, script, args or "", redirect)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  local status = tonumber(out:match("status=(%d+)%s*$"))
  return (out:gsub("status=%d+%s*$", "")), status
end

local function scenario(name, capture)
  return run("spec/fixtures/crash_child.lua", name, capture)
end

-- The report's sections, split on their headers.
local function sections(out)
  local native = out:match("\nnative stack:\n(.-)\nasync stack") or ""
  local async = out:match("\n(async stack.*)$") or ""
  return native, async
end

-- Asserts that the patterns occur in `text` in this order.
local function assert_in_order(text, patterns)
  local pos = 1
  for _, pat in ipairs(patterns) do
    local s, e = text:find(pat, pos)
    assert(s, ("expected %q after position %d in:\n%s"):format(pat, pos, text))
    pos = e + 1
  end
end

describe("asyncstack.crash", function()
  describe("require", function()
    it("installs nothing: a crash without install() prints no report #child", function()
      local out, status = scenario("not_installed")
      assert.are.equal(UNHANDLED_SEGV_STATUS, status, out)
      assert.is_nil(out:find("*** asyncstack", 1, true), out)
    end)

    it("is the module's crash field", function()
      assert.are.equal(require "asyncstack.crash", as.crash)
      assert.are.equal("function", type(as.crash.install))
      assert.are.equal("function", type(as.crash.uninstall))
    end)
  end)

  describe("install()", function()
    it("returns true, and uninstall() then returns true once", function()
      assert.is_true(as.crash.install())
      assert.is_true(as.crash.install { signals = { "SIGABRT" }, fd = 2 })
      assert.is_true(as.crash.uninstall())
      assert.is_false(as.crash.uninstall())
    end)

    it("prints native frames, then co_funcC, co_funcB, co_funcA: folly's example #child", function()
      local out, status = run("examples/crash.lua")
      assert.are.equal(SIGSEGV_STATUS, status, out)
      assert.matches("^%*%*%* asyncstack: fatal signal 11 %(SIGSEGV%), fault address 0x0 %*%*%*\n"
                     .. "native stack:\n", out)
      local native, async = sections(out)
      -- the helper's crashing function is the innermost native frame
      assert.matches("^  #0 0x%x+ crash_null_deref%+0x%x+ %(asyncstack_crashhelper%.so%)\n", native)
      assert_in_order(native, { "helper_null_deref", "run_loop_protected", "sched_run" })
      -- the async section is the text of as.traceback(nil, 1, {async = true})
      -- (the one renderer), read from memory by the memory walker (issue 14)
      assert_in_order(async, {
        "^async stack %(fork #%d+ 'co_funcC'%):\nstack traceback:\n",
        "\t%[C%]: in function 'asyncstack_crashhelper%.null_deref'\n",
        "\texamples/crash%.lua:16: in function 'co_funcC'  %(root of fork #%d+ 'co_funcC'%)\n",
        "\t%[fork #%d+ 'co_funcC' awaited by fork #%d+ 'co_funcB' at examples/crash%.lua:22 in function 'co_funcB'%]\n",
        "\texamples/crash%.lua:22: in function 'co_funcB'  %(root of fork #%d+ 'co_funcB'%)\n",
        "\t%[fork #%d+ 'co_funcB' awaited by fork #%d+ 'co_funcA' at examples/crash%.lua:28 in upvalue 'co_funcA'%]\n",
        "\texamples/crash%.lua:28: in upvalue 'co_funcA'\n",
        "\texamples/crash%.lua:34: in function <examples/crash%.lua:32>  %(root of fork #%d+ 'co_funcA'%)\n",
        "\t%[fork #%d+ 'co_funcA' started by run%(%) at examples/crash%.lua:32 in main chunk%]\n",
        "\texamples/crash%.lua:32: in main chunk\n",
      })
      -- asyncstack's own C functions (wait, run) are hidden, as in traces
      assert.is_nil(async:find("'wait'", 1, true), async)
      assert.is_nil(async:find("'run'", 1, true), async)
    end)

    it("reports abort() as SIGABRT, then dies of SIGABRT #child", function()
      local out, status = scenario("abort")
      assert.are.equal(SIGABRT_STATUS, status, out)
      assert.matches("^%*%*%* asyncstack: fatal signal 6 %(SIGABRT%), raised by this process %*%*%*\n", out)
      local native, async = sections(out)
      assert_in_order(native, { " abort%+0x%x+ %(libc", " crash_abort%+0x%x+ ", " helper_abort%+0x%x+ " })
      assert_in_order(async, {
        "^async stack %(fork #%d+ 'leaf'%):\nstack traceback:\n",
        "\t%[C%]: in function 'asyncstack_crashhelper%.abort'\n",
        "%(root of fork #%d+ 'leaf'%)\n",
        "\t%[fork #%d+ 'leaf' awaited by fork #%d+ 'main' at ",
      })
    end)

    it("still prints after a C stack overflow, with the frames bounded #child", function()
      local out, status = scenario("stack_overflow")
      assert.are.equal(SIGSEGV_STATUS, status, out)
      assert.matches("^%*%*%* asyncstack: fatal signal 11 %(SIGSEGV%), fault address 0x%x+ %*%*%*\n", out)
      local native, async = sections(out)
      local _, recursions = native:gsub("crash_recurse%+0x%x+", "")
      assert.are.equal(64, recursions)
      assert.matches("\n  %.%.%. %d+ frames omitted$", native)
      assert.matches("^async stack %(fork #%d+ 'leaf'%):\n", async)
    end)

    it("says no fork is running outside forks, and still prints native frames #child", function()
      local out, status = scenario("no_fork")
      assert.are.equal(SIGSEGV_STATUS, status, out)
      local native = sections(out)
      assert.matches("^  #0 0x%x+ crash_null_deref%+0x%x+ ", native)
      assert.matches("\nasync stack: no fork is running\n$", out)
    end)

    -- The premise of the next test: inside the helper's malloc_stats() window
    -- the arena lock is held, so any malloc there deadlocks (the child ends
    -- by the helper's 2 s SIGALRM).
    it("is tested with the malloc lock really held: malloc there deadlocks #child", function()
      if UNDER_ASAN then
        pending("ASan replaces malloc_stats(); it takes no glibc lock there")
        return
      end
      local out, status = scenario("malloc_probe")
      assert.are.equal(128 + 14, status, out)   -- SIGALRM
      assert.is_nil(out:find("malloc returned", 1, true))
    end)

    it("prints and does not hang when the crash holds the malloc lock #child", function()
      if UNDER_ASAN then
        pending("ASan replaces malloc_stats(); it takes no glibc lock there")
        return
      end
      local out, status = scenario("malloc_lock")
      assert.are.equal(SIGSEGV_STATUS, status, out)
      local native, async = sections(out)
      assert_in_order(native, { " crash_null_deref%+", " crash_in_stats_write%+", " malloc_stats%+",
                                " helper_crash_in_malloc%+" })
      assert.matches("^async stack %(fork #%d+ 'leaf'%):\n", async)
    end)

    it("walks the coroutines nested inside the running fork #child", function()
      local out, status = scenario("nested_coroutines")
      assert.are.equal(SIGSEGV_STATUS, status, out)
      local _, async = sections(out)
      assert_in_order(async, {
        "^async stack %(fork #%d+ 'worker'%):\nstack traceback:\n",
        "\t%[C%]: in function 'asyncstack_crashhelper%.null_deref'\n",
        "\tspec/fixtures/crash_child%.lua:%d+: in function <spec/fixtures/crash_child%.lua:%d+>\n",
        "\t%[coroutine resumed at spec/fixtures/crash_child%.lua:%d+ in function <spec/fixtures/crash_child%.lua:%d+>%]\n",
        "%(root of fork #%d+ 'worker'%)\n",
        "\t%[fork #%d+ 'worker' awaited by fork #%d+ 'main' at ",
      })
      -- the wrap function 'gen' is asyncstack's (the bridge): hidden
      assert.is_nil(async:find("'gen'", 1, true), async)
    end)

    it("labels unnamed forks by id and counts the other awaiters #child", function()
      local out, status = scenario("unnamed_awaiters")
      assert.are.equal(SIGSEGV_STATUS, status, out)
      local _, async = sections(out)
      local target, first = async:match("%[fork #(%d+) awaited by fork #(%d+) at ")
      assert.is_not_nil(target, async)
      assert.matches("^async stack %(fork #" .. target .. "%):\n", async)
      -- nobody waits for the first awaiter: the chain goes on through its spawn site
      assert.matches("%[fork #" .. first .. " spawned by fork #%d+ 'main' at ", async)
      assert.matches("\n%[fork #" .. target .. " is awaited by 1 other fork too%]\n$", async)
    end)

    it("prints at most 100 frames of a fork, marks the gap and goes on #child", function()
      local out, status = scenario("deep_lua")
      assert.are.equal(SIGSEGV_STATUS, status, out)
      local _, async = sections(out)
      local _, printed = async:gsub("\n\t[^\n]+ in upvalue 'down'", "")
      assert.are.equal(99, printed)   -- and the [C] frame above them
      assert_in_order(async, {
        "in upvalue 'down'\n\t%.%.%.\t%(skipping %d+ levels%)\n",
        "\t%[fork #%d+ 'leaf' awaited by fork #%d+ 'main' at ",
        "\t%[fork #%d+ 'main' started by run%(%) at ",
        "\tspec/fixtures/crash_child%.lua:%d+: in main chunk\n",
      })
    end)

    it("handles only the signals it is given #child", function()
      local out, status = scenario("signals_subset")
      assert.are.equal(UNHANDLED_SEGV_STATUS, status, out)
      if UNDER_ASAN then
        -- ASan's handler takes the SIGSEGV and aborts: that SIGABRT is ours
        assert.matches("AddressSanitizer: SEGV.-\n%*%*%* asyncstack: fatal signal 6 %(SIGABRT%)", out)
      else
        assert.is_nil(out:find("*** asyncstack", 1, true), out)
      end
      out, status = scenario("signals_subset_abort")
      assert.are.equal(SIGABRT_STATUS, status, out)
      assert.matches("^%*%*%* asyncstack: fatal signal 6 %(SIGABRT%)", out)
    end)

    it("writes to the fd it is given #child", function()
      local out, status = scenario("fd_stdout", "stdout")
      assert.are.equal(SIGSEGV_STATUS, status, out)
      assert.matches("^%*%*%* asyncstack: fatal signal 11 %(SIGSEGV%)", out)
      assert.matches("\nasync stack %(fork #%d+ 'leaf'%):\n", out)
    end)

    it("replaces the previous configuration when called again #child", function()
      local out, status = scenario("reinstall", "stdout")
      assert.are.equal(SIGSEGV_STATUS, status, out)
      assert.matches("^%*%*%* asyncstack: fatal signal 11 %(SIGSEGV%)", out)
    end)

    describe("bad arguments", function()
      local cases = {
        { { 5 }, "bad argument #1 to 'install' (table expected, got number)" },
        { { "SIGSEGV" }, "bad argument #1 to 'install' (table expected, got string)" },
        { { { sigs = { "SIGSEGV" } } }, "bad argument #1 to 'install' (unknown option 'sigs')" },
        { { { "SIGSEGV" } }, "bad argument #1 to 'install' (unknown option (a number key))" },
        { { { signals = "SIGSEGV" } },
          "bad argument #1 to 'install' (field 'signals': table expected, got string)" },
        { { { signals = {} } },
          "bad argument #1 to 'install' (field 'signals': at least one signal name expected)" },
        { { { signals = { "SIGUSR1" } } },
          "bad argument #1 to 'install' (field 'signals': 'SIGUSR1' is not one of SIGSEGV, "
          .. "SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS)" },
        { { { signals = { "SIGSEGV", 11 } } },
          "bad argument #1 to 'install' (field 'signals': signal name expected at index 2, got number)" },
        { { { fd = "2" } },
          "bad argument #1 to 'install' (field 'fd': non-negative integer expected, got string)" },
        { { { fd = -1 } },
          "bad argument #1 to 'install' (field 'fd': non-negative integer expected, got -1)" },
        { { { fd = 1.5 } },
          "bad argument #1 to 'install' (field 'fd': non-negative integer expected, got 1.5)" },
        { { { fd = 987654 } },
          "bad argument #1 to 'install' (field 'fd': 987654 is not an open file descriptor)" },
      }
      for _, case in ipairs(cases) do
        it("rejects " .. case[2]:match("%((.*)%)$"), function()
          assert.are.equal(case[2], error_of(function() as.crash.install(table.unpack(case[1])) end))
          assert.is_false(as.crash.uninstall())   -- nothing was installed
        end)
      end
    end)
  end)

  describe("uninstall()", function()
    it("restores the previous actions: the crash prints nothing #child", function()
      local out, status = scenario("uninstalled")
      assert.are.equal(UNHANDLED_SEGV_STATUS, status, out)
      assert.is_nil(out:find("*** asyncstack", 1, true), out)
    end)
  end)
end)
