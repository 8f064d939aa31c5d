-- Calls that push many values from one Lua thread onto another: the C code
-- must make room on the receiving stack first (lua_checkstack) before
-- lua_pushvalue / lua_xmove. An ordinary Lua build does not check this and
-- usually survives; `make test-apicheck` runs this file under a Lua built
-- with LUA_USE_APICHECK, where a missing check aborts at the push (issue 13
-- D12: wait.c delivering a fork's results). Known aborts are listed in
-- tools/apicheck-known.txt until they are fixed.
local as = require "asyncstack"

local function many(n)
  local t = {}
  for i = 1, n do t[i] = i end
  return table.unpack(t, 1, n)
end

describe("C API contract: many values across threads", function()
  it("wait() returns all 200 results of a fork", function()
    local n, last = as.run(function()
      local f = as.fork(many, 200)
      local r = table.pack(as.wait(f))
      return r.n, r[r.n]
    end)
    assert.are.equal(200, n)
    assert.are.equal(200, last)
  end)

  it("pwait() returns true and all 200 results of a fork", function()
    local ok, n = as.run(function()
      local f = as.fork(many, 200)
      local r = table.pack(as.pwait(f))
      return r[1], r.n - 1
    end)
    assert.is_true(ok)
    assert.are.equal(200, n)
  end)

  it("run() returns all 200 results of its root fork", function()
    local r = table.pack(as.run(many, 200))
    assert.are.equal(200, r.n)
    assert.are.equal(200, r[200])
  end)

  it("a generator yields 200 values at once through the bridge inside a fork", function()
    local n = as.run(function()
      local gen = coroutine.wrap(function() coroutine.yield(many(200)) end)
      return select("#", gen())
    end)
    assert.are.equal(200, n)
  end)

  it("a channel carries a value to a fork blocked deep in a generator", function()
    local v = as.run(function()
      local ch = as.channel()
      local f = as.fork(function()
        local gen = coroutine.wrap(function() coroutine.yield(ch:recv()) end)
        return gen()
      end)
      as.yield()
      ch:send("deep")
      return as.wait(f)
    end)
    assert.are.equal("deep", v)
  end)
end)
