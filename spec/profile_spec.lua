-- as.profile (issue 16): the sampling profiler in process. CPU attribution
-- across forks through a generator, the wall view of waiting forks, the
-- three output formats, and bad arguments.
local as = require "asyncstack"
local helper = require "spec.helper"

local SPEC = "spec/profile_spec.lua"

-- The folded text as {frames = {...}, count = n} per line.
local function parse_folded(text)
  local stacks = {}
  for line in text:gmatch("[^\n]+") do
    local path, count = line:match("^(.*) (%d+)$")
    assert(path, "not a folded line: " .. line)
    local frames = {}
    for frame in path:gmatch("[^;]+") do frames[#frames + 1] = frame end
    stacks[#stacks + 1] = { frames = frames, count = tonumber(count) }
  end
  return stacks
end

local function index_of(frames, text, from)
  for i = from or 1, #frames do
    if frames[i] == text then return i end
  end
end

local function find_frame(frames, pattern, from, to)
  for i = from or 1, to or #frames do
    if frames[i]:find(pattern, 1, true) then return i end
  end
end

-- Busy work whose cost is proportional to n.
local function burn(n)
  local x = 0
  for i = 1, n do x = x + (i % 13) * 0.25 end
  return x
end

local GEN_LINE = debug.getinfo(1, "l").currentline + 2
local function numbers(rounds)
  return coroutine.wrap(function()
    for _ = 1, rounds do coroutine.yield(burn(100000)) end
  end)
end

-- A fork's root: pulls every value of a generator, yielding between them.
local BURNER_LINE = debug.getinfo(1, "l").currentline + 3
local function burner(rounds)
  local sum = 0
  for v in numbers(rounds) do
    sum = sum + v
    as.yield()
  end
  return sum
end

describe("asyncstack.profile", function()
  after_each(function()
    if as.profile.running() then as.profile.stop() end
  end)

  -- about 1 s of CPU: #slow, so `make valgrind` and gc-stress leave it out
  -- (`make profile-stress` samples under valgrind and ASan)
  describe("cpu mode #slow", function()
    local stacks, a_id, b_id, main_id, run_line

    setup(function()
      -- rounds of ~0.8 ms: about 1 s of CPU in all, ~250 signals: CPU-time
      -- timers fire at the kernel's tick (250 Hz here), each signal weighted
      -- by the expirations it stands for. The share's standard deviation
      -- is then under 3 points.
      local rounds = 300
      as.profile.start { hz = 997, mode = "cpu" }
      run_line = debug.getinfo(1, "l").currentline + 1
      as.run(function()
        local a = as.fork(burner, 3 * rounds)
        local b = as.fork(burner, rounds)
        a:name("A")
        b:name("B")
        a_id, b_id, main_id = a:id(), b:id(), as.current():id()
        as.wait_all({ a, b })
      end)
      local p = as.profile.stop()
      stacks = parse_folded(p:folded())
    end)

    it("attributes the CPU of fork A and fork B 3:1 (75 % +- 10 points)", function()
      local a, b = 0, 0
      for _, s in ipairs(stacks) do
        if index_of(s.frames, ("[fork #%d 'A']"):format(a_id)) then a = a + s.count end
        if index_of(s.frames, ("[fork #%d 'B']"):format(b_id)) then b = b + s.count end
      end
      assert.is_true(a + b >= 50, ("only %d samples in A and B"):format(a + b))
      local share = 100 * a / (a + b)
      assert.is_true(share >= 65 and share <= 85,
                     ("A has %.1f %% of A + B (%d / %d)"):format(share, a, a + b))
    end)

    it("shows the generator's frames above A's root, and run()'s caller at the bottom", function()
      local seen = 0
      for _, s in ipairs(stacks) do
        local fork_at = index_of(s.frames, ("[fork #%d 'A']"):format(a_id))
        local leaf = fork_at and find_frame(s.frames, "burn (" .. SPEC .. ":", fork_at)
        if leaf then
          seen = seen + s.count
          -- root first: the code that called run(), main, A's root, the
          -- generator's function, the hot function
          local main_at = assert(index_of(s.frames, ("[fork #%d 'main']"):format(main_id)),
                                 table.concat(s.frames, ";"))
          assert.is_true(main_at < fork_at)
          assert.truthy(s.frames[main_at - 1]:find(SPEC .. ":" .. run_line .. ")", 1, true),
                        s.frames[main_at - 1])
          assert.are.equal("burner (" .. SPEC .. ":" .. BURNER_LINE .. ")", s.frames[fork_at + 1])
          local gen_at = find_frame(s.frames, "function <" .. SPEC .. ":" .. GEN_LINE .. ">", fork_at + 2)
          assert.is_truthy(gen_at, table.concat(s.frames, ";"))
          assert.is_true(gen_at < leaf)
        end
      end
      assert.is_true(seen > 0, "no stack of A reached burn()")
    end)

    it("hides asyncstack's own frames (the bridge, wait_all, yield)", function()
      for _, s in ipairs(stacks) do
        for _, f in ipairs(s.frames) do
          assert.is_nil(f:find("asyncstack/", 1, true), f)
          assert.is_nil(f:find("wait_all", 1, true), f)
        end
      end
    end)
  end)

  describe("wall mode", function()
    it("shows a fork that only sleeps as sleeping, at its await line", function()
      local sleep_line
      local function sleeper()
        sleep_line = debug.getinfo(1, "l").currentline + 1
        as.sleep(0.25)
      end
      local ch = as.channel()
      local s_id, r_id, main_id, c_id
      as.profile.start { hz = 997, mode = "wall" }
      as.run(function()
        local s = as.fork(sleeper)
        s:name("sleeper")
        local r = as.fork(function() return ch:recv(0.25) end)
        r:name("reader")
        s_id, r_id, main_id, c_id = s:id(), r:id(), as.current():id(), ch:id()
        as.wait(s)
        as.pwait(r)
      end)
      local p = as.profile.stop()
      local folded = p:folded()
      local stacks = parse_folded(folded)
      local sleeping, reading, waiting = 0, 0, 0
      for _, st in ipairs(stacks) do
        local n, f = #st.frames, st.frames
        if f[n] == "[sleeping]" and f[n - 2] == ("[fork #%d 'sleeper']"):format(s_id) then
          assert.are.equal(("sleeper (%s:%d)"):format(SPEC, sleep_line), f[n - 1])
          sleeping = sleeping + st.count
        elseif f[n] == ("[waiting on channel #%d (recv)]"):format(c_id) then
          assert.are.equal(("[fork #%d 'reader']"):format(r_id), f[n - 2])
          reading = reading + st.count
        elseif f[n] == ("[waiting on fork #%d]"):format(s_id) then
          assert.truthy(index_of(f, ("[fork #%d 'main']"):format(main_id)))
          waiting = waiting + st.count
        end
      end
      -- ~250 ticks in 0.25 s; a loaded machine or valgrind delivers fewer
      assert.is_true(sleeping >= 20, folded)
      assert.is_true(reading >= 20, folded)
      assert.is_true(waiting >= 20, folded)
      assert.are.equal("wall", p:info().mode)
    end)
  end)

  describe("outputs", function()
    local p
    setup(function()
      as.profile.start { hz = 997, mode = "wall" }
      as.run(function()
        local f = as.fork(function() as.sleep(0.05) end)
        f:name("nap")
        as.wait(f)
      end)
      p = as.profile.stop()
    end)

    it("folded(): root first, ';' between frames, a count per line", function()
      local text = p:folded()
      local total = 0
      for line in text:gmatch("[^\n]+") do
        local path, count = line:match("^(.+) (%d+)$")
        assert.truthy(path, line)
        total = total + tonumber(count)
      end
      assert.are.equal(p:info().samples, total)
    end)

    it("speedscope(): speedscope's file format, one sampled profile of every fork", function()
      local json = p:speedscope()
      assert.truthy(json:find('"$schema":"https://www.speedscope.app/file-format-schema.json"', 1, true))
      assert.truthy(json:find('"type":"sampled"', 1, true))
      assert.truthy(json:find('"unit":"milliseconds"', 1, true))
      assert.truthy(json:find('{"name":"[sleeping]"}', 1, true))
      assert.truthy(json:find("'nap']\"}", 1, true))
      -- as many sample stacks as weights
      local samples = json:match('"samples":%[(.-)%],\n"weights"')
      local weights = json:match('"weights":%[(.-)%]')
      local ns, nw = 0, 0
      for _ in samples:gmatch("%[[%d,]*%]") do ns = ns + 1 end
      for _ in weights:gmatch("[%d.e+-]+") do nw = nw + 1 end
      assert.are.equal(ns, nw)
      assert.is_true(ns > 0)
    end)

    it("svg(): a self-contained SVG with the frames, a script and no network", function()
      local svg = p:svg("title & <test>")
      assert.truthy(svg:find("^<%?xml"))
      assert.truthy(svg:find("<svg ", 1, true))
      assert.truthy(svg:find("title &amp; &lt;test&gt;", 1, true))
      assert.truthy(svg:find("[sleeping]", 1, true))
      assert.truthy(svg:find("<script><![CDATA[", 1, true))
      assert.is_nil(svg:find("https?://[^\"]*%.js"))
      assert.is_nil(svg:find("href=", 1, true))
    end)

    it("info(): mode, rate, samples, ticks, signals and the handler's time", function()
      local info = p:info()
      assert.are.equal("wall", info.mode)
      assert.are.equal(997, info.hz)
      assert.is_false(info.running)
      assert.is_true(info.samples > 0)
      assert.is_true(info.signals > 0)
      assert.is_true(info.handler_seconds >= 0)
      assert.are.equal(0, info.dropped)
      assert.matches("^asyncstack.Profile %(wall, ", tostring(p))
    end)
  end)

  describe("an empty profile", function()
    it("writes empty outputs that are still well formed", function()
      as.profile.start { hz = 1 }
      local p = as.profile.stop()
      assert.are.equal("", p:folded())
      assert.truthy(p:speedscope():find('"samples":[],\n"weights":[]', 1, true))
      assert.truthy(p:svg():find("</svg>\n$"))
      assert.are.equal(0, p:info().samples)
    end)
  end)

  describe("outside run()", function()
    it("samples the main thread's frames", function()
      as.profile.start { hz = 997, mode = "wall" }
      local t = as.now()
      while as.now() - t < 0.05 do burn(1000) end
      local text = as.profile.stop():folded()
      assert.truthy(text:find("^%[outside run%(%)%];"), text)
      assert.truthy(text:find("burn (" .. SPEC .. ":", 1, true), text)
    end)
  end)

  describe("bad arguments", function()
    local cases = {
      { 5, "bad argument #1 to 'profile.start' (table expected, got number)" },
      { { hz = 0 }, "bad argument #1 to 'profile.start' (hz must be a number from 1 to 10000, got 0)" },
      { { hz = "fast" }, "bad argument #1 to 'profile.start' (hz must be a number from 1 to 10000, got string)" },
      { { hz = 0 / 0 }, "bad argument #1 to 'profile.start' (hz must be a number from 1 to 10000, got " .. tostring(0 / 0) .. ")" },
      { { mode = "cycles" }, "bad argument #1 to 'profile.start' (mode must be \"cpu\" or \"wall\", got 'cycles')" },
      { { mode = 1 }, "bad argument #1 to 'profile.start' (mode must be \"cpu\" or \"wall\", got number)" },
      { { rate = 100 }, "bad argument #1 to 'profile.start' (unknown option 'rate')" },
    }
    for _, c in ipairs(cases) do
      it("start(" .. tostring(c[1]) .. "): " .. c[2], function()
        assert.are.equal(c[2], helper.error_of(as.profile.start, c[1]))
        assert.is_false(as.profile.running())
      end)
    end

    it("start() while a profile runs", function()
      as.profile.start()
      assert.are.equal("profile.start: a profile is already running (as.profile.stop() ends it)",
                       helper.error_of(as.profile.start))
      assert.is_true(as.profile.running())
      as.profile.stop()
    end)

    it("stop() with no profile running", function()
      assert.are.equal("profile.stop: no profile is running", helper.error_of(as.profile.stop))
    end)

    it("a method called without its profile", function()
      as.profile.start()
      local p = as.profile.stop()
      assert.are.equal("bad argument #1 to 'folded' (asyncstack.Profile expected, got no value; call it as profile:folded())",
                       helper.error_of(p.folded))
      assert.are.equal("bad argument #1 to 'svg' (asyncstack.Profile expected, got string; call it as profile:svg())",
                       helper.error_of(p.svg, "x"))
      assert.are.equal("bad argument #2 to 'svg' (string expected, got table)",
                       helper.error_of(p.svg, p, {}))
    end)
  end)
end)
