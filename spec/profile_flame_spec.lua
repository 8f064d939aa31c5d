-- src/flame.c on its own (issue 16): the stack aggregator and its writers
-- from a C program with no Lua (build/test/flametool, src-test/flametool.c),
-- as a command that samples another process would use them. #child
local child = require "spec.support.signal_child"

local tool = child.build_dir .. "/test/flametool"

local function run(format, input, title)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(input)
  f:close()
  local out, status = child.shell(("%s %s %s < %s"):format(tool, format, title or "", path))
  os.remove(path)
  return out, status
end

local INPUT = table.concat({
  "main;handler;parse 3",
  "main;handler;parse 4",           -- the same stack again: added up
  "main;handler;\"quoted\" \\back 2",
  "main;idle 1",
  "main 1",                         -- samples in the root frame itself
}, "\n") .. "\n"

describe("asyncstack flame writers (src/flame.c) #child", function()
  it("links no Lua: a plain C program uses them", function()
    local out = child.shell("ldd " .. tool)
    assert.is_nil(out:find("liblua", 1, true), out)
  end)

  it("folded: equal stacks added up, children in byte order, a count per line", function()
    local out, status = run("folded", INPUT)
    assert.are.equal(0, status, out)
    assert.truthy(out:find("flametool: 11 samples, 5 frames, 4 stacks\n", 1, true), out)
    assert.are.equal(table.concat({
      "main 1",
      "main;handler;\"quoted\" \\back 2",
      "main;handler;parse 7",
      "main;idle 1",
    }, "\n") .. "\n", (out:gsub("flametool: [^\n]*\n", "")))
  end)

  it("speedscope: frames shared, one sample stack per distinct stack, JSON escaped", function()
    local out, status = run("speedscope", INPUT, "'my run'")
    assert.are.equal(0, status, out)
    assert.truthy(out:find('"name":"my run"', 1, true))
    assert.truthy(out:find('{"name":"\\"quoted\\" \\\\back"}', 1, true), out)
    assert.truthy(out:find('"unit":"none","startValue":0,"endValue":11,', 1, true), out)
    -- frame ids in order of first sight: main 0, handler 1, parse 2, quoted 3, idle 4
    assert.truthy(out:find('"samples":[[0],[0,1,3],[0,1,2],[0,4]],\n"weights":[1,2,7,1]', 1, true), out)
  end)

  it("svg: a frame per node with its share in the title, text escaped", function()
    local out, status = run("svg", INPUT, "'a <title>'")
    assert.are.equal(0, status, out)
    assert.truthy(out:find(">a &lt;title&gt;</text>", 1, true), out)
    assert.truthy(out:find("<title>parse (7 samples, 63.64%)</title>", 1, true), out)
    assert.truthy(out:find("<title>&quot;quoted&quot; \\back (2 samples, 18.18%)</title>", 1, true), out)
    assert.truthy(out:find("<title>all (11 samples, 100.00%)</title>", 1, true), out)
    assert.truthy(out:find("</svg>\n", 1, true))
  end)
end)
