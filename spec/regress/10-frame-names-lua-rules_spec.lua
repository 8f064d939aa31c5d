-- Issue 12 item 5: inside forks frames were named only by their call site,
-- unlike Lua 5.4's luaL_traceback (a global name from package.loaded
-- first, then how the function was called), and a fork's root function
-- was named differently in each view:
--
--   function gen() coroutine.yield(debug.traceback()) end
--   local alias = helper            -- a global function
--   -- inside a fork: "in function <t.lua:1>" (Lua: "in function 'gen'"),
--   -- "in upvalue 'alias'" (Lua: "in function 'helper'"); a local
--   -- `consume` spawned as a fork: 'consume' in the dump, <t.lua:7> in
--   -- the trace of the same fork.
--
-- Fixed: one function names frames (src/render.c as_render_describe) with
-- Lua's rules in every view; a fork's root is named by its global name,
-- else as an upvalue of the function that spawned it. Global names are
-- found in one pass over package.loaded per trace (src/backtrace.c).
local as = require "asyncstack"

-- Globals must be real globals (busted sandboxes the spec's own).
local G = debug.getregistry()._LOADED._G
local SRC = [[
function names_gen() coroutine.yield(debug.traceback("gen", 1)) end
function names_helper() return debug.traceback("helper", 1) end
local alias = names_helper
local function caller() local r = alias() return r end
return caller
]]

local function lines(text)
  local t = {}
  for l in text:gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

describe("regress 10: frames named by Lua 5.4's rules", function()
  local caller
  setup(function() caller = assert(load(SRC, "=names", "t", G))() end)
  teardown(function() G.names_gen, G.names_helper = nil, nil end)

  it("names a global coroutine body 'function name' inside a fork", function()
    local text = as.run(function()
      local co = coroutine.wrap(G.names_gen)
      return co()
    end)
    assert.are.equal("\tnames:1: in function 'names_gen'", lines(text)[3])
  end)

  it("names a global called through a local alias by its global name, as Lua does", function()
    local outside = caller()             -- Lua's own debug.traceback
    local inside = as.run(function() local r = caller() return r end)
    local o, i = lines(outside), lines(inside)
    assert.are.equal("\tnames:2: in function 'names_helper'", o[3])
    -- the frames above the fork's root: the text Lua gives outside
    assert.are.equal(o[3], i[3])
    assert.are.equal(o[4], i[4])
    assert.are.equal("\tnames:4: in upvalue 'caller'", i[4])
  end)

  it("names a fork's root the same way in every view", function()
    local trace, frames, task_frames, dump, err
    local function consume()
      trace = as.traceback("t")
      frames = as.fork_backtrace(as.current())
      for _, t in ipairs(as.tasks()) do
        if t.id == as.current():id() then task_frames = t.backtrace end
      end
      dump = as.dump()
      error("failed in consume", 0)
    end
    as.run(function()
      local f = as.fork(consume)
      local _, e = as.pwait(f)
      err = e
    end)
    assert.matches("in function 'consume'  %(root of fork #%d+%)", trace)
    assert.are.equal("consume", frames[#frames]["function"])
    assert.are.equal("consume", task_frames[#task_frames]["function"])
    assert.matches("\t#0 [^\n]* in function 'consume'\n", dump)
    assert.matches("in function 'consume'  %(root of fork #%d+%)", tostring(err))
    assert.matches("#1 [^\n]*: consume%(%)", err:getTraceAsString())
    assert.are.equal("consume", err:getTrace()[2]["function"])
  end)

  it("uses the module name of a function found in package.loaded", function()
    local loaded = debug.getregistry()._LOADED
    local mod = {}
    loaded.names_mod = mod
    function mod.step() return as.traceback("m") end
    local text = as.run(function() local r = mod.step() return r end)
    loaded.names_mod = nil
    assert.are.equal("\tspec/regress/10-frame-names-lua-rules_spec.lua:88: in function 'names_mod.step'",
                     lines(text)[3])
  end)
end)
