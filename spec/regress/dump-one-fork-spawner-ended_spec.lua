-- Found while writing examples/crawler.lua (issue 6): as.dump{fork = id}
-- says the fork's spawner has ended when it is alive, because report()
-- looks spawners up among the dumped forks only:
--
--   local as = require "asyncstack"
--   as.run(function()
--     local child = as.fork(function() as.sleep(1) end)
--     as.yield()
--     io.write(as.dump { fork = child:id() })
--     child:cancel()
--   end)
--   --> fork #2 [sleeping 0.0s of 1.0s]  spawned by fork #1 (ended) at t.lua:3
--
-- fork #1 is running. Pending until fixed; then turn `pending` into `it`.
local as = require "asyncstack"

describe("regress: as.dump{fork = id}", function()
  it("names a live spawner as live", function()
    local text
    as.run(function()
      as.current():name("parent")
      local child = as.fork(function() as.sleep(1) end)
      as.yield()
      text = as.dump { fork = child:id() }
      child:cancel()
    end)
    assert.matches("spawned by fork #%d+ 'parent' at ", text)
  end)
end)
