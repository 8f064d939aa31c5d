-- Found by the reliability work (issue 8, bad input for wait_all/wait_any):
-- the combinators check the caller's list when called, but their
-- continuation (combinator_k, combinator_outcome, the timeout message)
-- reads the same table again, trusting every item to be a fork:
-- list_fork() is lua_touserdata() of whatever is there now. If the program
-- changes the list while the wait is blocked, a non-userdata item gives a
-- NULL fork (as_fork_ended(NULL): SIGSEGV), another userdata (a channel) is
-- read as a fork (garbage id in the message), and a shortened list drops
-- members (wait_all returns {n = 0}).
--
--   local as = require "asyncstack"
--   as.run(function()
--     local a = as.fork(function() as.sleep(0.01); return "a" end)
--     local list = { a }
--     local w = as.fork(function() return as.wait_all(list) end)
--     as.yield()                   -- w is blocked in wait_all
--     list[1] = "x"                -- or list[2] = "y"
--     as.wait(w)                   -- Segmentation fault when a ends
--   end)
--
-- Where: src/wait.c combinator / combinator_k. Copy the forks into the
-- node array (nodes[i].target already holds them; keep the userdata
-- anchored in a private table) and build the outcome from that copy, never
-- from the caller's table.
--
-- Fixed (ab6e300): wait_all/wait_any work on a private copy of the list
-- made when called.
local helper = require "spec.helper"


local SCRIPT = [[
local as = require "asyncstack"
local mode = %q
local res = as.run(function()
  local a = as.fork(function() as.sleep(0.01); return "a" end)
  local list = { a }
  local w = as.fork(function() return as.wait_all(list) end)
  as.yield()
  if mode == "string" then list[1] = "x"
  elseif mode == "grow" then list[2] = "y"
  elseif mode == "channel" then list[1] = as.channel()
  else list[1] = nil end
  local ok, r = as.pwait(w)
  return ok and r
end)
print("result", res and res.n, res and res[1])
]]

describe("regression: combinator-list-mutated", function()
  for _, mode in ipairs { "string", "grow", "channel", "emptied" } do
    it(("wait_all answers for the forks it was given when the list changes meanwhile (%s) #child"):format(mode),
       function()
      local out, status = helper.run_child(SCRIPT:format(mode))
      assert.are.equal(0, status, out)
      assert.matches("result\t1\ta", out)
    end)
  end
end)
