local helper = require "spec.helper"

describe("asyncstack", function()
  describe("require", function()
    it("touches no globals and installs nothing", function()
      local out, status = helper.run_child([[
        local before = {}
        for k, v in pairs(_G) do before[k] = v end
        local resume, wrap, tb = coroutine.resume, coroutine.wrap, debug.traceback
        local as = require "asyncstack"
        for k, v in pairs(_G) do
          if before[k] ~= v and k ~= "package" then error("global changed: " .. k) end
        end
        for k in pairs(before) do
          if _G[k] == nil then error("global removed: " .. k) end
        end
        assert(coroutine.resume == resume and coroutine.wrap == wrap and debug.traceback == tb)
        assert(type(as.run) == "function")
        print("ok")
      ]])
      assert.are.equal("ok\n", out)
      assert.are.equal(0, status)
    end)

    it("returns the same module table on a second require", function()
      assert.are.equal(require "asyncstack", require "asyncstack")
    end)
  end)
end)
