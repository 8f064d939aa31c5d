local helper = require "spec.helper"

local function run_example(name, args)
  local out, status = helper.run_child(("arg = { %s }\ndofile('examples/%s')"):format(args or "", name))
  assert.are.equal(0, status, out)
  return out
end

describe("asyncstack.examples", function()
  describe("chain.lua", function()
    it("lists the frames of all 31 forks in order, outermost last", function()
      local print_ = _G.print
      _G.print = function() end  -- the example prints its trace; keep the spec output clean
      local ok, chain = pcall(dofile, "examples/chain.lua")
      _G.print = print_
      assert(ok, chain)
      local forks, own = {}, chain.own_frames
      for _, fr in ipairs(chain.async_frames) do
        if fr.fork and forks[#forks] ~= fr.fork then forks[#forks + 1] = fr.fork end
      end
      assert.are.equal(31, #forks)
      for i = 2, #forks do assert.are.equal(forks[i - 1] - 1, forks[i]) end
      assert.are.equal("chain(0)", chain.async_frames[1].fork_name)
      local last_in_fork
      for _, fr in ipairs(chain.async_frames) do
        if fr.fork then last_in_fork = fr end
      end
      assert.are.equal("main", last_in_fork.fork_name)
      assert.is_true(last_in_fork.root)
      -- without async the trace ends at level 0's own fork root
      assert.are.equal(1, #own)
      assert.is_true(own[1].root)
      assert.are.equal(forks[1], own[1].fork)
      assert.are.equal(465, chain.total)
    end)
  end)

  describe("generators.lua", function()
    it("traces through the generator and three nested coroutines", function()
      local out = run_example("generators.lua")
      assert.matches("inside the generator, item 3\nstack traceback:\n\texamples/generators.lua:16: in function <examples/generators.lua:12>\n\t%[coroutine resumed at examples/generators.lua:25 in function 'consume'%]\n\texamples/generators.lua:25: in function 'consume'  %(root of fork #%d+ 'consumer'%)\n", out)
      local _, resumes = out:match("innermost of three nested coroutines\n(.-)\nsum"):gsub("coroutine resumed at", "")
      assert.are.equal(3, resumes)
      assert.matches("sum of items: 6\nnested result: level3 < level2 < level1\n$", out)
    end)
  end)

  describe("demo.lua", function()
    it("prints an async trace from the generator to run()'s caller", function()
      local out = run_example("demo.lua")
      assert.matches("parse: bad record 'oops'\nstack traceback:\n\texamples/demo.lua:13: in upvalue 'parse'", out)
      assert.matches("%[fork #%d+ 'handler' awaited by fork #%d+ 'main' at examples/demo.lua:39", out)
      assert.matches("handler parsed 3 records\n$", out)
    end)
  end)
end)

describe("asyncstack.examples crawler.lua", function()
  it("times out on /slow, shows where its fork is blocked, and reports the other pages #child", function()
    local out = run_example("crawler.lua")
    assert.matches("^wait_all failed: wait_all: timed out waiting for fork #%d+ 'fetch /slow' "
                   .. "%(index 3, waiting on an fd at examples/crawler%.lua:51%)\n"
                   .. "asyncstack%.Timeout: wait_all: timed out waiting for fork #%d+ 'fetch /slow' "
                   .. "%(index 3, waiting on an fd at examples/crawler%.lua:51%) in examples/crawler%.lua:%d+\n"
                   .. "stack traceback:\n\texamples/crawler%.lua:%d+: in function <examples/crawler%.lua:%d+>  %(root of fork #1 'main'%)\n", out)
    -- the late fetch, blocked reading the status line, and the page server behind it
    assert.matches("\nfork #%d+ 'fetch /slow' %[waiting on fd %d+ %(read%) for [%d.]+m?s, timeout in [%d.]+m?s%]  "
                   .. "spawned by fork #1 'main' at examples/crawler%.lua:%d+\n"
                   .. "\t#0 examples/crawler%.lua:%d+ in upvalue 'read_head'\n"
                   .. "\t#1 examples/crawler%.lua:%d+ in [^\n]*'fetch'\n", out)
    assert.matches("\nfork #%d+ 'page server' %[waiting on fd %d+ %(read%) for [%d.]+m?s%]  spawned by fork #%d+ 'site'", out)
    assert.matches("\nresults:\n"
                   .. "  GET /        %-> 200, 13 bytes\n"
                   .. "  GET /about   %-> 200, 32 bytes\n"
                   .. "  GET /slow    %-> still waiting, cancelled\n"
                   .. "  GET /news    %-> 200, 1300 bytes\n"
                   .. "  GET /missing %-> 404, 12 bytes\n$", out)
  end)
end)
