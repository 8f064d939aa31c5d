-- Issue 16 item 3: `asyncstack record PID` samples another process's async
-- stacks from outside (process_vm_readv, nothing runs in the target) into
-- a folded file, speedscope JSON or an SVG flame graph. The target is
-- examples/hot.lua, whose fork "cruncher" spends its time in crunch().
-- #child: each test starts a process; `make valgrind` and `make gc-stress`
-- leave them out.
local cli = require "spec.support.cli"

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- Starts examples/hot.lua for `seconds`; returns its pid once it runs.
local function start_hot(seconds)
  local pid, dir = cli.spawn("examples/hot.lua " .. (seconds or 30))
  assert.truthy(cli.wait_until(function()
    return (read(dir .. "/log") or ""):find("running for", 1, true)
  end, 30), "examples/hot.lua did not start")
  return pid, dir
end

-- Folded lines as { frames = {...}, count = n }, heaviest first.
local function folded(text)
  local stacks = {}
  for line in text:gmatch("[^\n]+") do
    local body, count = line:match("^(.*) (%d+)$")
    assert(body, "not a folded line: " .. line)
    local frames = {}
    for fr in body:gmatch("[^;]+") do frames[#frames + 1] = fr end
    stacks[#stacks + 1] = { frames = frames, count = tonumber(count), line = line }
  end
  table.sort(stacks, function(a, b) return a.count > b.count end)
  return stacks
end

local function record(pid, args, prefix)
  return cli.tool_run(("record %d %s"):format(pid, args), prefix)
end

local SUMMARY = "^asyncstack: recorded process %d+ for [%d.]+ s %(%a+, [%d.]+ Hz[%a, ]*%): " ..
  "%d+ samples in %d+ ticks, %d+ stacks, %d+ torn walks, %d+ us per read tick; wrote "

describe("asyncstack record PID (issue 16)", function()
  teardown(cli.cleanup)

  it("cpu mode: the top stacks name the hot function, under its fork and run()'s caller #child", function()
    local pid = start_hot(30)
    local dir = cli.tmpdir()
    local out, status, err = record(pid, ("--hz 199 --duration 2 -o %s/hot.folded"):format(dir))
    cli.kill(pid)
    assert.are.equal(0, status, err)
    assert.are.equal("", out)
    assert.matches(SUMMARY .. dir:gsub("%p", "%%%0") .. "/hot%.folded\n$", err)
    local text = assert(read(dir .. "/hot.folded"))
    assert.matches("\n$", text)
    local stacks = folded(text)
    local top = stacks[1]
    assert.truthy(top, "no stacks recorded")
    -- root first: run()'s caller, main, the cruncher, then crunch()
    assert.matches("^crunch %(examples/hot%.lua:%d+%)$", top.frames[#top.frames], top.line)
    assert.matches("^cruncher %(examples/hot%.lua:%d+%)$", top.frames[#top.frames - 1])
    assert.are.equal("[fork #2 'cruncher']", top.frames[#top.frames - 2])
    assert.are.equal("[fork #1 'main']", top.frames[#top.frames - 4])
    assert.matches("^main chunk %(examples/hot%.lua:%d+%)$", top.frames[#top.frames - 5])
    -- most of the CPU goes to crunch(); the summary's count is the file's
    local total, hot = 0, 0
    for _, s in ipairs(stacks) do
      total = total + s.count
      if s.frames[#s.frames]:match("^crunch ") then hot = hot + s.count end
    end
    assert.is_true(hot > 0.5 * total, ("crunch has %d of %d samples"):format(hot, total))
    assert.are.equal(total, tonumber(err:match("(%d+) samples")))
    assert.are.equal(#stacks, tonumber(err:match("(%d+) stacks")))
  end)

  it("wall mode: suspended forks at their await points too #child", function()
    local pid = start_hot(30)
    local dir = cli.tmpdir()
    local _, status, err = record(pid, ("--mode wall --hz 99 --duration 1.5 -o %s/w.folded"):format(dir))
    cli.kill(pid)
    assert.are.equal(0, status, err)
    assert.matches("(wall, 99 Hz)", err, 1, true)
    local by_leaf = {}
    for _, s in ipairs(folded(assert(read(dir .. "/w.folded")))) do
      local leaf = s.frames[#s.frames]
      by_leaf[leaf] = (by_leaf[leaf] or 0) + s.count
      if leaf == "[sleeping]" then
        assert.matches("^ticker %(examples/hot%.lua:%d+%)$", s.frames[#s.frames - 1])
        assert.are.equal("[fork #3 'ticker']", s.frames[#s.frames - 2])
      end
    end
    -- main waits for the cruncher all along; the ticker mostly sleeps
    assert.is_true((by_leaf["[waiting on fork #2]"] or 0) > 50, err)
    assert.is_true((by_leaf["[sleeping]"] or 0) > 50, err)
    local crunch = 0
    for leaf, n in pairs(by_leaf) do
      if leaf:match("^crunch ") then crunch = crunch + n end
    end
    assert.is_true(crunch > 0)
  end)

  it("wall mode names every await point as the in-process profiler does; cpu mode skips an idle process #child", function()
    local view = cli.start("idle")       -- spec/fixtures/cli_child.lua: 8 forks, all suspended
    local dir = cli.tmpdir()
    local _, status, err = record(view.pid, ("--mode wall --hz 50 --duration 0.5 -o %s/idle.folded"):format(dir))
    local _, cstatus, cerr = record(view.pid, ("--hz 99 --duration 0.5 -o %s/idle-cpu.folded"):format(dir))
    cli.kill(view.pid)
    assert.are.equal(0, status, err)
    assert.are.equal(0, cstatus, cerr)
    local ticks = tonumber(err:match("in (%d+) ticks"))
    local leaves = {}
    for _, s in ipairs(folded(assert(read(dir .. "/idle.folded")))) do
      -- no fork runs: every stack is a suspended fork's, once per tick
      assert.are.equal(ticks, s.count, s.line)
      assert.matches("^main chunk %(spec/fixtures/cli_child%.lua:%d+%)$", s.frames[2], s.line)
      assert.are.equal("[fork #1 'main']", s.frames[3])
      leaves[#leaves + 1] = s.frames[#s.frames - 1] .. " | " .. s.frames[#s.frames]
    end
    table.sort(leaves)
    assert.are.equal(8, #leaves, table.concat(leaves, "\n"))
    local text = table.concat(leaves, "\n")
    for _, want in ipairs({
      "function <spec/fixtures/cli_child.lua:94> (spec/fixtures/cli_child.lua:113) | [waiting on fork #7]",
      "function <spec/fixtures/cli_child.lua:107> (spec/fixtures/cli_child.lua:107) | [waiting in wait_all]",
      "function <spec/fixtures/cli_child.lua:100> (spec/fixtures/cli_child.lua:100) | [waiting on fork #2]",
      "function <spec/fixtures/cli_child.lua:103> (spec/fixtures/cli_child.lua:103) | [waiting on channel #1 (recv)]",
      "nap (spec/fixtures/cli_child.lua:90) | [sleeping]",
      "[fork #8 'forever'] | [sleeping]",
    }) do
      assert.truthy(text:find(want, 1, true), want .. " not in:\n" .. text)
    end
    assert.matches("function <spec/fixtures/cli_child%.lua:105> %(spec/fixtures/cli_child%.lua:105%) | %[waiting on fd %d+ %(read%)%]", text)
    -- cpu mode: a process asleep in its poller uses (almost) no CPU
    local ctick = tonumber(cerr:match("in (%d+) ticks"))
    assert.is_true(tonumber(cerr:match("(%d+) samples")) <= ctick / 10, cerr)
  end)

  it("svg and speedscope outputs: the function named, the JSON well-formed #child", function()
    local pid = start_hot(30)
    local dir = cli.tmpdir()
    local _, s1, e1 = record(pid, ("--duration 1 -o %s/hot.svg"):format(dir))
    local _, s2, e2 = record(pid, ("--duration 1 -o %s/hot.json"):format(dir))
    -- --format wins over the extension
    local _, s3, e3 = record(pid, ("--duration 0.5 --format folded -o %s/hot.out.svg"):format(dir))
    cli.kill(pid)
    assert.are.equal(0, s1, e1)
    assert.are.equal(0, s2, e2)
    assert.are.equal(0, s3, e3)
    local svg = assert(read(dir .. "/hot.svg"))
    assert.matches("^<%?xml", svg)
    assert.matches("</svg>\n?$", svg)
    assert.truthy(svg:find("crunch (examples/hot.lua:", 1, true))
    assert.truthy(svg:find("asyncstack record", 1, true))
    local json = assert(read(dir .. "/hot.json"))
    -- a strict parser too, where there is one
    if cli.sh("command -v python3") ~= "" then
      local _, st = cli.sh(("python3 -m json.tool %s/hot.json >/dev/null"):format(dir))
      assert.are.equal(0, st)
    end
    local doc = cli.json(json)
    assert.are.equal("https://www.speedscope.app/file-format-schema.json", doc["$schema"])
    local frames, prof = doc.shared.frames, doc.profiles[1]
    assert.are.equal("sampled", prof.type)
    local named = false
    for _, fr in ipairs(frames) do named = named or fr.name:match("^crunch ") ~= nil end
    assert.is_true(named)
    assert.are.equal(#prof.samples, #prof.weights)
    for _, stack in ipairs(prof.samples) do
      for _, i in ipairs(stack) do assert.truthy(frames[i + 1], "frame index " .. i) end
    end
    assert.matches("^[^\n]+ %d+\n", assert(read(dir .. "/hot.out.svg")))
  end)

  it("Ctrl-C ends the recording early and still writes the file #child", function()
    local pid = start_hot(60)
    local dir = cli.tmpdir()
    local p = assert(io.popen(("%s record %d --duration 60 -o %s/int.folded 2>%s/err & echo $!")
      :format(cli.tool, pid, dir, dir)))
    local tool = tonumber(p:read("l"))
    p:close()
    local socket = require "socket"
    socket.sleep(1)
    os.execute("kill -INT " .. tool)
    local ended = cli.wait_until(function() return not cli.exists("/proc/" .. tool .. "/stat")
      or (cli.proc_state(tool)) == "Z" end, 10)
    cli.kill(pid)
    assert.truthy(ended, "the tool did not end on SIGINT")
    local err = read(dir .. "/err")
    assert.matches(SUMMARY, err)
    assert.matches(" Hz, interrupted): ", err, 1, true)
    local stacks = folded(assert(read(dir .. "/int.folded")))
    assert.matches("^crunch ", stacks[1].frames[#stacks[1].frames])
  end)

  it("the target exiting mid-recording ends it; the file holds what was taken #child", function()
    local pid = start_hot(60)
    local dir = cli.tmpdir()
    -- the test hook kills the target after that many reads (procmem.c)
    local _, status, err = record(pid, ("--mode wall --duration 30 -o %s/gone.folded"):format(dir),
                                  "ASYNCSTACK_TEST_EXIT_AFTER_READS=20000")
    cli.kill(pid)
    assert.are.equal(0, status, err)
    assert.matches("asyncstack: process " .. pid .. " exited during the recording: the file " ..
                   "holds the samples taken before\n", err, 1, true)
    assert.matches(SUMMARY, err:match("\n(.*)$"))
    local stacks = folded(assert(read(dir .. "/gone.folded")))
    assert.is_true(#stacks > 0)
    assert.is_true(tonumber(err:match("for ([%d.]+) s")) < 20)
  end)

  describe("errors as the other commands give them", function()
    local function fails(args, status, message)
      local out, st, err = cli.tool_run(args)
      assert.are.equal(message .. "\n", err)
      assert.are.equal("", out)
      assert.are.equal(status, st)
    end

    it("usage errors name the argument (status 2) #child", function()
      fails("record", 2, "asyncstack record: a process id is needed")
      fails("record -o x.folded", 2, "asyncstack record: a process id is needed")
      fails("record abc -o x.folded", 2, "asyncstack record: bad process id 'abc'")
      fails("record 1 2 -o x.folded", 2, "asyncstack record: one process id only (got another: '2')")
      fails("record 1", 2, "asyncstack record: -o FILE is needed (.folded, .json or .svg)")
      fails("record 1 -o", 2, "asyncstack record: -o needs a value")
      fails("record 1 -o x.png", 2, "asyncstack record: cannot tell the format of 'x.png' " ..
            "from its extension (.folded, .json or .svg): give --format folded|speedscope|svg")
      fails("record 1 --hz 0 -o x.folded", 2,
            "asyncstack record: bad --hz '0' (samples per second, more than 0 and at most 10000)")
      fails("record 1 --hz fast -o x.folded", 2,
            "asyncstack record: bad --hz 'fast' (samples per second, more than 0 and at most 10000)")
      fails("record 1 --hz 20000 -o x.folded", 2,
            "asyncstack record: bad --hz '20000' (samples per second, more than 0 and at most 10000)")
      fails("record 1 --duration -1 -o x.folded", 2,
            "asyncstack record: bad --duration '-1' (seconds, more than 0)")
      fails("record 1 --duration", 2, "asyncstack record: --duration needs a value")
      fails("record 1 --mode gpu -o x.folded", 2, "asyncstack record: bad --mode 'gpu' (cpu or wall)")
      fails("record 1 --format xml -o x.folded", 2,
            "asyncstack record: bad --format 'xml' (folded, speedscope or svg)")
      fails("record 1 --stop -o x.folded", 2, "asyncstack record: unknown option '--stop'")
      local out, st = cli.tool_run("record --help")
      assert.are.equal(0, st)
      assert.matches("^usage: asyncstack record PID %[%-%-hz 199%]", out)
      out, st = cli.tool_run("--help")
      assert.are.equal(0, st)
      assert.matches("\n       asyncstack record PID ", out)
    end)

    it("no such process, no asyncstack loaded, a file it cannot write (status 1) #child", function()
      local p = assert(io.popen("sh -c 'echo $$'"))
      local gone = tonumber(p:read("l"))
      p:close()
      fails(("record %d -o /tmp/x.folded"):format(gone), 1, "asyncstack: no process with pid " .. gone)
      p = assert(io.popen("env -u LD_PRELOAD sleep 60 >/dev/null 2>&1 & echo $!"))
      local sleeper = tonumber(p:read("l"))
      p:close()
      local ok, err = pcall(fails, ("record %d -o /tmp/x.folded"):format(sleeper), 1,
        ("asyncstack: process %d has no asyncstack loaded (no file it maps has an asyncstack_debug section)")
          :format(sleeper))
      cli.kill(sleeper)
      assert(ok, err)
      local pid = start_hot(30)
      ok, err = pcall(function()
        fails(("record %d --duration 0.2 -o /nonexistent/dir/x.folded"):format(pid), 1,
          "asyncstack: cannot write /nonexistent/dir/x.folded: No such file or directory")
        local out, st, text = cli.tool_run(("record %d -o /tmp/x.folded"):format(pid),
          "setpriv --reuid=nobody --regid=nogroup --clear-groups")
        assert.are.equal(("asyncstack: cannot read process %d: permission denied: process %d belongs to user root (uid 0) and the tool runs as user nobody (uid 65534): reading another user's process needs CAP_SYS_PTRACE (run it as root, or as that user)\n")
          :format(pid, pid), text)
        assert.are.equal("", out)
        assert.are.equal(1, st)
      end)
      cli.kill(pid)
      assert(ok, err)
    end)
  end)
end)
