-- Found by running Lua's own test files under the bridge (issue 12, "It
-- must show"; spec/luatests): testes/all.lua sets `debug = nil` and each
-- test file does `local debug = require "debug"`. install() and run()
-- patched only the global tables, so with the global gone debug.traceback
-- stayed Lua's inside forks (no async trace), and with `coroutine = nil`
-- require "coroutine" handed out the unbridged resume, which cannot pass a
-- fork's suspension up.
--
--   local as = require "asyncstack"
--   debug = nil
--   local debug = require "debug"
--   as.run(function() print(debug.traceback("hi")) end)  -- no "(root of fork #1 'main')"
--
-- Where: src/bridge.c, as_bridge_install/uninstall (lua_getglobal only).
-- Fixed: the bridge patches the library tables in package.loaded (what
-- require returns) and the global ones when they are other tables.
local as = require "asyncstack"
local core = require "asyncstack.core"

-- Runs fn with the globals `debug` and `coroutine` removed (busted itself
-- needs them back before it sees an assertion fail), and returns its results.
local function without_globals(fn)
  local saved_debug, saved_coroutine = _G.debug, _G.coroutine
  _G.debug, _G.coroutine = nil, nil
  local r = table.pack(pcall(fn))
  _G.debug, _G.coroutine = saved_debug, saved_coroutine
  as.uninstall()
  assert(r[1], r[2])
  return table.unpack(r, 2, r.n)
end

describe("regression: 10-install-without-library-globals", function()
  it("bridges require'd libraries when the globals are gone (install)", function()
    local dbg, co = require "debug", require "coroutine"
    local original_resume = co.resume
    local installed = without_globals(function()
      as.install()
      local t = { dbg.traceback, co.resume, co.wrap }
      as.uninstall()
      return t
    end)
    assert.are.equal(core.bridged.traceback, installed[1])
    assert.are.equal(core.bridged.resume, installed[2])
    assert.are.equal(core.bridged.wrap, installed[3])
    assert.are.equal(original_resume, co.resume)
    assert.are_not.equal(core.bridged.traceback, dbg.traceback)
  end)

  it("bridges them for a run() too: async traces and suspensions in generators", function()
    local dbg, co = require "debug", require "coroutine"
    local text, got = without_globals(function()
      return as.run(function()
        local g = co.wrap(function() as.sleep(0.001); co.yield(dbg.traceback("hi")) end)
        return g(), "after"
      end)
    end)
    assert.matches("%(root of fork #%d+ 'main'%)", text)
    assert.matches("%[coroutine resumed at ", text)
    assert.are.equal("after", got)
    assert.are_not.equal(core.bridged.resume, co.resume)   -- run() put it back
  end)
end)
