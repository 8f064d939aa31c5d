local as = require "asyncstack"
local helper = require "spec.helper"
local error_of = helper.error_of

-- Runs `script` in a background child, sends it `signal` after `delay`
-- seconds, gives it `grace` seconds to print, kills it; returns its stderr.
local function signal_child(script, signal, delay, grace)
  local path, err = os.tmpname(), os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(script)
  f:close()
  local cmd = ("ulimit -c 0; LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='%s' lua5.4 %s 2>%s >/dev/null & pid=$!; "
               .. "sleep %s; kill -%s $pid; sleep %s; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null; true")
    :format(os.getenv("LUA_CPATH") or "build/?.so;;", path, err, delay, signal, grace)
  assert(os.execute(cmd))
  local out = assert(io.open(err)):read("a")
  os.remove(path)
  os.remove(err)
  return out
end

describe("asyncstack.introspect", function()
  describe("tasks()", function()
    it("describes every live fork", function()
      local tasks, sleeper_line, waiter_line
      as.run(function()
        local sleeper = as.fork(function()
          sleeper_line = debug.getinfo(1, "l").currentline + 1
          as.sleep(0.2)
        end)
        sleeper:name("sleeper")
        local waiter = as.fork(function()
          waiter_line = debug.getinfo(1, "l").currentline + 1
          as.wait(sleeper)
        end)
        as.sleep(0.05)
        tasks = as.tasks()
      end)
      assert.are.equal(3, #tasks)
      local root, s, w = tasks[1], tasks[2], tasks[3]
      assert.are.equal("main", root.name)
      assert.are.equal("running", root.status)
      assert.is_nil(root.spawned_by)
      assert.are.equal("sleeper", s.name)
      assert.are.equal("sleeping", s.status)
      assert.are.same({ kind = "sleep", file = "spec/introspect_spec.lua", line = sleeper_line,
                        what = "Lua" }, s.await)
      assert.is_true(s.since >= 0.04 and s.since < 1)
      assert.is_true(math.abs((s.deadline - s.sleep_started) - 0.2) < 1e-6)
      assert.are.equal(root.id, s.spawned_by)
      assert.are.equal("spec/introspect_spec.lua", s.spawn.file)
      assert.are.equal(1, s.resumes)
      assert.are.same({ w.id }, s.waiters)
      assert.are.equal("waiting", w.status)
      assert.are.same({ s.id }, w.waiting_for)
      assert.are.equal("wait", w.await.kind)
      assert.are.equal(waiter_line, w.await.line)
      assert.is_table(w.backtrace)
      assert.is_true(w.backtrace[1].root)
    end)

    it("gives each fork its own spawn site, from one function at several lines and from several functions",
       function()
      -- forks spawned again and again from one function (its run keeps the
      -- function at hand) still get each their own line and function
      local tasks, lines = nil, {}
      local function body() as.sleep(0.05) end
      local function spawn_twice()
        lines[#lines + 1] = debug.getinfo(1, "l").currentline + 1
        as.fork(body)
        lines[#lines + 1] = debug.getinfo(1, "l").currentline + 1
        as.fork(body)
      end
      local function spawn_once()
        lines[#lines + 1] = debug.getinfo(1, "l").currentline + 1
        as.fork(body)
      end
      as.run(function()
        for _ = 1, 3 do
          spawn_twice()
          spawn_once()
        end
        lines[#lines + 1] = debug.getinfo(1, "l").currentline + 1
        as.fork(body)
        as.yield()
        tasks = as.tasks { backtrace = false }
      end)
      assert.are.equal(11, #tasks)               -- the root and ten forks
      local twice = debug.getinfo(spawn_twice, "S").linedefined
      local once = debug.getinfo(spawn_once, "S").linedefined
      local main = debug.getinfo(1, "S").linedefined   -- not the run's function: see below
      for i = 2, 11 do
        local spawn = tasks[i].spawn
        assert.are.equal("spec/introspect_spec.lua", spawn.file)
        assert.are.equal(lines[i - 1], spawn.line)
        if i < 11 then
          assert.are.equal((i - 2) % 3 == 2 and once or twice, spawn.linedefined)
        else
          assert.is_true(spawn.linedefined > main)    -- run()'s function, defined in this one
        end
      end
    end)

    it("leaves the backtraces out when asked, and is empty outside run()", function()
      local tasks
      as.run(function()
        as.fork(function() as.sleep(0.01) end)
        as.yield()
        tasks = as.tasks { backtrace = false }
      end)
      assert.is_nil(tasks[2].backtrace)
      assert.are.equal("sleep", tasks[2].await.kind)
      assert.are.same({}, as.tasks())
    end)

    it("lists 100,000 forks", function()
      local n
      as.run(function()
        for _ = 1, 100000 do as.fork(function() as.sleep(0.001) end) end
        as.yield()
        n = #as.tasks { backtrace = false }
      end)
      assert.are.equal(100001, n)
    end)

    describe("bad arguments", function()
      it("rejects options that are not a table", function()
        assert.are.equal("bad argument #1 to 'tasks' (table expected, got string)",
                         error_of(function() as.tasks("x") end))
      end)
    end)
  end)

  describe("dump()", function()
    it("reports the scheduler and each fork with state, times and await line", function()
      local text
      as.run(function()
        local job = as.fork(function() as.sleep(0.3) end)
        job:name("job")
        as.fork(function() as.wait(job) end):name("boss")
        as.sleep(0.1)
        text = as.dump()
      end)
      local l = {}
      for line in text:gmatch("[^\n]+") do l[#l + 1] = line end
      assert.are.equal("scheduler: 3 forks (1 running, 1 sleeping, 1 waiting), run queue 0, 1 timer, 0 fds", l[1])
      assert.matches("^fork #%d+ 'main' %[running%]  spawned by run%(%) at spec/introspect_spec.lua:%d+$", l[2])
      assert.matches("^\t#0 spec/introspect_spec.lua:%d+ in function <spec/introspect_spec.lua:%d+>$", l[3])
      assert.matches("^fork #%d+ 'job' %[sleeping 1%d%dms of 300ms%]  spawned by fork #%d+ 'main' at spec/introspect_spec.lua:%d+$", l[4])
      assert.matches("^fork #%d+ 'boss' %[waiting on fork #%d+ for 1%d%dms%]  spawned by fork #%d+ 'main' at ", l[6])
    end)

    it("writes to a file, or one fork only", function()
      local path = os.tmpname()
      local one
      as.run(function()
        local f = as.fork(function() as.sleep(0.01) end)
        f:name("solo")
        as.yield()
        local out = io.open(path, "w")
        assert.is_nil(as.dump(out))
        out:close()
        one = as.dump { fork = f:id() }
      end)
      local written = io.open(path):read("a")
      os.remove(path)
      assert.matches("^scheduler: 2 forks", written)
      assert.matches("^fork #%d+ 'solo' %[sleeping ", one)
      assert.are.equal(2, select(2, one:gsub("\n", "")))
    end)

    it("says so outside run()", function()
      assert.are.equal("scheduler: not running (no asyncstack.run() is active)\n", as.dump())
    end)

    it("dumps 10,000 forks", function()
      local text
      as.run(function()
        for _ = 1, 10000 do as.fork(function() as.sleep(0.001) end) end
        as.yield()
        text = as.dump()
      end)
      assert.are.equal(1 + 2 * 10001, select(2, text:gsub("\n", "")))
    end)

    describe("bad arguments", function()
      it("rejects other values and a bad fork option", function()
        assert.are.equal("bad argument #1 to 'dump' (file or table expected, got number)",
                         error_of(function() as.dump(1) end))
        assert.are.equal("bad option 'fork' to 'dump' (integer expected, got string)",
                         error_of(function() as.dump { fork = "1" } end))
      end)
    end)
  end)

  describe("deadlocks and cycles", function()
    it("raises as.Deadlock with the dump of three blocked forks", function()
      local ok, e = pcall(as.run, function()
        local a, b, c
        c = as.fork(function() as.sleep(math.huge) end)
        b = as.fork(function() as.wait(c) end)
        a = as.fork(function() as.wait(b) end)
        c:name("c"); b:name("b"); a:name("a")
        as.wait(a)
      end)
      assert.is_false(ok)
      assert.is_true(as.Deadlock:is(e))
      local m = e:getMessage()
      assert.matches("^run: deadlock: 4 forks are blocked and none can make progress:\n", m)
      assert.matches("\nscheduler: 4 forks %(1 sleeping, 3 waiting%), run queue 0, 0 timers, 0 fds\n", m)
      assert.matches("\nfork #%d+ 'main' %[waiting on fork #%d+ for %d+ms%]  spawned by run%(%)", m)
      assert.matches("\nfork #%d+ 'c' %[sleeping %d+ms, forever%]", m)
      assert.matches("\nfork #%d+ 'b' %[waiting on fork #%d+ for", m)
      assert.matches("\nfork #%d+ 'a' %[waiting on fork #%d+ for", m)
    end)

    it("refuses a wait that closes a cycle, naming it", function()
      local err, ids
      as.run(function()
        local a, b
        a = as.fork(function() as.wait(b) end)
        b = as.fork(function()
          as.yield()
          err = error_of(function() as.wait(a) end)
        end)
        ids = { a:id(), b:id() }
        as.wait(b)
      end)
      assert.are.equal(("wait: waiting for fork #%d would close a wait cycle: fork #%d -> fork #%d -> fork #%d")
                       :format(ids[1], ids[2], ids[1], ids[2]), err)
    end)
  end)

  describe("dump_on_signal()", function()
    it("dumps a spinning fork and a sleeping fork on SIGUSR1 #child", function()
      local out = signal_child([[
        local as = require "asyncstack"
        as.dump_on_signal()
        as.run(function()
          as.fork(function() as.sleep(30) end):name("sleeper")
          as.fork(function()
            local x = 0
            while true do x = x + 1 end            -- never yields
          end):name("spinner")
        end)
      ]], "USR1", 0.5, 0.5)
      -- the root has returned: the spinner and the sleeper are what is left
      assert.matches("asyncstack: dump on signal\nscheduler: 2 forks %(1 running, 1 sleeping%)", out)
      assert.matches("fork #%d+ 'spinner' %[running%]", out)
      assert.matches("fork #%d+ 'sleeper' %[sleeping [%d.]+m?s of 30%.0s%]", out)
    end)

    it("wakes an idle scheduler to dump #child", function()
      local out = signal_child([[
        local as = require "asyncstack"
        as.dump_on_signal("SIGUSR2")
        as.run(function()
          as.fork(function() as.sleep(30) end):name("napper")
          as.sleep(30)
        end)
      ]], "USR2", 0.5, 0.5)
      assert.matches("asyncstack: dump on signal\nscheduler: 2 forks %(2 sleeping%)", out)
      assert.matches("fork #%d+ 'napper' %[sleeping", out)
    end)

    describe("bad arguments", function()
      it("rejects unknown signals", function()
        assert.are.equal("bad argument #1 to 'dump_on_signal' (string expected, got number)",
                         error_of(function() as.dump_on_signal(10) end))
        assert.matches("^bad argument #1 to 'dump_on_signal' %(unknown or unsupported signal 'SIGFOO'",
                       error_of(function() as.dump_on_signal("SIGFOO") end))
      end)
    end)
  end)
end)
