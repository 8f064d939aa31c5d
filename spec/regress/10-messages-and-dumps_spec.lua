-- Issue 12 item 11: messages and dumps.
--   * a timeout named the fork's id only: "timed out waiting for fork #5
--     (index 3)"; it now names the fork and where it is blocked;
--   * a failed fork nobody had waited for yet vanished from as.dump();
--   * durations under a second printed as "0.0s";
--   * tostring(f) said "fork #7 (worker)" while every other view says
--     "fork #7 'worker'";
--   * an ended spawner lost its name in "spawned by".
local as = require "asyncstack"

local HERE = "spec/regress/10-messages-and-dumps_spec.lua"
local HERE_PAT = HERE:gsub("%p", "%%%0")

local function line_of(marker)
  local n = 0
  for text in io.lines(HERE) do
    n = n + 1
    if text:find(marker, 1, true) and not text:find("line_of", 1, true) then return n end
  end
end

describe("regress 10: messages and dumps", function()
  it("names the fork and where it is blocked in a wait timeout", function()
    local e1, e2, id, other
    as.run(function()
      local f = as.fork(function() as.sleep(10) end)   -- SLEEP_A
      f:name("worker")
      id = f:id()
      local g = as.fork(function()
        local ch = as.channel()
        ch:recv()                                       -- RECV_B
      end)
      other = g:id()
      local _, e = as.pwait(f, 0.01)
      e1 = e
      local ok
      ok, e2 = pcall(as.wait_all, { as.fork(function() end), f, g }, 0.01)
      assert.is_false(ok)
      f:cancel(); g:cancel()
    end)
    assert.are.equal(("pwait: timed out waiting for fork #%d 'worker' (sleeping at %s:%d)")
                       :format(id, HERE, line_of("SLEEP_A")), e1:getMessage())
    assert.are.equal(("wait_all: timed out waiting for fork #%d 'worker' (index 2, sleeping at %s:%d), "
                      .. "fork #%d (index 3, waiting on a channel at %s:%d)")
                       :format(id, HERE, line_of("SLEEP_A"), other, HERE, line_of("RECV_B")),
                     e2:getMessage())
  end)

  it("shows a failed fork nobody waited for in the dump until it is retrieved", function()
    local before, after, id
    local reports = {}
    as.on_unhandled(function(err) reports[#reports + 1] = err end)
    as.run(function()
      local f = as.fork(function() error("disk full\nsecond line") end)
      f:name("writer")
      id = f:id()
      as.sleep(0.01)
      before = as.dump()
      as.pwait(f)
      after = as.dump()
    end)
    as.on_unhandled(nil)
    assert.matches("^scheduler: 2 forks %(1 running, 1 failed%), ", before)
    assert.matches(("\nfork #%d 'writer' %%[failed %%d+ms ago: %s:%%d+: disk full%%]  spawned by fork #%%d+ 'main' at %s:%%d+\n"
                    .. "\t#0 %%[C%%] in function 'error'\n"
                    .. "\t#1 %s:%%d+ in function <%s:%%d+>\n")
                     :format(id, HERE_PAT, HERE_PAT, HERE_PAT, HERE_PAT), before)
    assert.is_nil(after:find("'writer'", 1, true))
    assert.matches("^scheduler: 1 fork %(1 running%), ", after)
    assert.are.equal(0, #reports)
  end)

  it("prints durations under a second in ms", function()
    local text = as.run(function()
      as.fork(function() as.sleep(0.5) end):name("napper")
      as.sleep(0.02)
      return as.dump()
    end)
    assert.matches("\nfork #%d+ 'napper' %[sleeping %d+ms of 500ms%]", text)
  end)

  it("labels a fork the same way in tostring and in every view", function()
    local label, traced
    as.run(function()
      local f = as.current()
      f:name("worker")
      label = tostring(f)
      traced = as.traceback()
      assert.are.equal(("fork #%d 'worker'"):format(f:id()), label)
    end)
    assert.is_truthy(traced:find("(root of " .. label .. ")", 1, true))
  end)

  it("keeps an ended spawner's name in spawned by (dump and trace)", function()
    local dump, trace
    as.run(function()
      local done = as.channel()
      as.fork(function()
        as.current():name("producer")
        as.fork(function()
          as.sleep(0.02)
          trace = tostring(as.Exception("late"))
          done:send(true)
        end):name("kid")
      end)
      as.sleep(0.01)
      dump = as.dump()
      done:recv()
    end)
    assert.matches("\nfork #%d+ 'kid' %[sleeping %d+ms of 20ms%]  spawned by fork #%d+ 'producer' %(ended%) at ", dump)
    assert.matches("\n\t%[fork #%d+ 'kid' spawned by fork #%d+ 'producer' at ", trace)
  end)
end)
