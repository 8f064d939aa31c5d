-- Issue 12 item 13: `luarocks make` installed whatever build/ held.
--
-- The rockspec's make build ran `make` in the checkout with LuaRocks' flags;
-- a core.so left in build/ by an earlier `make` (other flags, other sources,
-- another Lua's headers) was newer than its sources, so it was what got
-- installed. Now the rockspec builds with BUILD=build-rock through the
-- Makefile's `rock` target, which empties that directory first.
--
-- This spec copies the checkout's sources to a scratch directory, plants a
-- bogus core.so (newer than every source) in both build/ and build-rock/,
-- runs `luarocks --lua-version 5.4 make --tree <tmp>` there and checks that
-- the installed module is a real one: it loads, runs a fork and reports the
-- version. Needs luarocks (CI installs it); offline.

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1; echo \"exit=$?\""))
  local out = p:read("a")
  p:close()
  return out:gsub("exit=(%d+)%s*$", ""), tonumber(out:match("exit=(%d+)%s*$"))
end

describe("issue 12 item 13: luarocks make", function()
  it("rebuilds the module instead of installing a stale build/ #child", function()
    local out, status = sh("command -v luarocks")
    assert.are.equal(0, status, "luarocks is needed for this spec (apt-get install luarocks): " .. out)
    local dir = sh("mktemp -d"):gsub("%s+$", "")
    local ok, err = pcall(function()
      out, status = sh(("cp -r Makefile asyncstack-scm-1.rockspec LICENSE src lua tool gdb %s/"):format(dir))
      assert.are.equal(0, status, out)
      for _, b in ipairs { "build", "build-rock" } do
        out, status = sh(("mkdir -p %s/%s/asyncstack %s/%s/obj && echo 'not a shared object' > %s/%s/asyncstack/core.so && touch -d '+1 hour' %s/%s/asyncstack/core.so")
          :format(dir, b, dir, b, dir, b, dir, b))
        assert.are.equal(0, status, out)
      end
      out, status = sh(("cd %s && luarocks --lua-version 5.4 make --tree %s/tree asyncstack-scm-1.rockspec"):format(dir, dir))
      assert.are.equal(0, status, out)
      out, status = sh(("LUA_PATH='%s/tree/share/lua/5.4/?.lua;%s/tree/share/lua/5.4/?/init.lua' LUA_CPATH='%s/tree/lib/lua/5.4/?.so' lua5.4 -e \"local as = require 'asyncstack'; print(as._VERSION, as.run(function() return as.wait(as.fork(function() return 42 end)) end))\"")
        :format(dir, dir, dir))
      assert.are.equal(0, status, out)
      assert.matches("^asyncstack %d+%.%d+%.%d+[%w%-]*\t42\n$", out)
      -- the planted file in build/ is untouched: the rock did not use build/
      local f = assert(io.open(dir .. "/build/asyncstack/core.so"))
      assert.are.equal("not a shared object\n", f:read("a"))
      f:close()
    end)
    sh("rm -rf " .. dir)
    assert(ok, err)
  end)
end)
