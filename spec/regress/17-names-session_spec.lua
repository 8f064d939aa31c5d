-- Issue 17: async trace text spent 90 % searching package.loaded for
-- function names: as.dump() made two passes per fork (its frame tables and
-- its text), an exception's text one per trace it shows. Where:
-- src/framename.c (core.names_session), lua/asyncstack/introspect.lua,
-- exception.lua. Inside a session the name found for a function (or that
-- it has none) is remembered; it must give the same names as a search per
-- trace, and nothing may outlive the session.
local as = require "asyncstack"
local core = require "asyncstack.core"

local loaded = debug.getregistry()._LOADED

local function named_fn() return core.capture({ async = true }) end
local function unnamed_fn() return core.capture({ async = true }) end

describe("regress: names found once per batch of traces", function()
  after_each(function() loaded.names_session_mod = nil end)

  it("gives the text a trace has outside a session", function()
    loaded.names_session_mod = { named_fn = named_fn }
    local raws = as.run(function()
      local a = as.wait(as.fork(named_fn))
      local b = as.wait(as.fork(unnamed_fn))
      return { a, b }
    end)
    local plain = { core.render(raws[1], "traceback"), core.render(raws[2], "traceback") }
    local inside
    do
      local session <close> = core.names_session()
      inside = { core.render(raws[2], "traceback"), core.render(raws[1], "traceback"),
                 core.render(raws[1], "traceback") }
    end
    assert.matches("function 'names_session_mod.named_fn'", plain[1])
    assert.are.equal(plain[1], inside[2])
    assert.are.equal(plain[1], inside[3])
    assert.are.equal(plain[2], inside[1])
  end)

  it("remembers nothing once closed: a module loaded later names its functions", function()
    local raw = as.run(function() return as.wait(as.fork(named_fn)) end)
    local before, after
    do
      local session <close> = core.names_session()
      before = core.render(raw, "traceback")
    end
    loaded.names_session_mod = { named_fn = named_fn }
    do
      local outer <close> = core.names_session()
      do
        local inner <close> = core.names_session()
      end
      after = core.render(raw, "traceback")    -- the outer session is still open
    end
    assert.not_matches("names_session_mod", before)
    assert.matches("function 'names_session_mod.named_fn'", after)
    assert.are.equal(after, core.render(raw, "traceback"))
  end)

  it("as.dump() names the functions of every fork", function()
    loaded.names_session_mod = { named_fn = function() as.sleep(1) end }
    local text = as.run(function()
      for _ = 1, 3 do as.fork(loaded.names_session_mod.named_fn) end
      as.yield()
      local t = as.dump()
      for _, t2 in ipairs(as.tasks()) do if t2.fork ~= as.current() then t2.fork:cancel() end end
      return t
    end)
    local n = 0
    for _ in text:gmatch("function 'names_session_mod.named_fn'") do n = n + 1 end
    assert.are.equal(3, n)
  end)
end)
