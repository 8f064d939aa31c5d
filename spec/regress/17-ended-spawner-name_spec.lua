-- Issue 17: the spawner's name is no longer copied into every fork it
-- spawns (a user value and a string push per fork); the run keeps the name
-- of a named fork that ends while forks it spawned live, and drops it with
-- the last of them. What dumps, tasks and traces say stays.
local as = require "asyncstack"

describe("regress 17: an ended spawner's name", function()
  it("is kept for its live children in dumps, tasks and traces", function()
    local text, task, frames, parent_id
    as.run(function()
      local ch = as.channel()
      local parent = as.fork(function()
        as.current():name("parent")
        as.fork(function()
          ch:recv()
          frames = as.debug_backtrace { async = true }
        end)
      end)
      parent_id = parent:id()
      as.wait(parent)
      for _, t in ipairs(as.tasks()) do
        if t.spawned_by == parent_id then task = t end
      end
      text = as.dump()
      ch:send(1)
    end)
    assert.are.equal("parent", task.spawner_name)
    assert.matches("spawned by fork #" .. parent_id .. " 'parent' %(ended%) at ", text)
    local named
    for _, fr in ipairs(frames) do
      if fr.fork_id == parent_id then named = fr.fork_name end
    end
    assert.are.equal("parent", named)
  end)

  it("is the live spawner's current name", function()
    local task
    as.run(function()
      as.current():name("before")
      local child = as.fork(function() as.sleep(1) end)
      as.current():name("after")
      as.yield()
      task = as.tasks()[2]
      child:cancel()
    end)
    assert.are.equal("after", task.spawner_name)
  end)

  it("stays while any of its children lives", function()
    local names
    as.run(function()
      local gate = as.channel()
      local parent = as.fork(function()
        as.current():name("p")
        for _ = 1, 3 do as.fork(function() gate:recv() end) end
        as.fork(function() end)             -- ends before its spawner
      end)
      as.wait(parent)
      local kids = {}
      for _, t in ipairs(as.tasks()) do
        if t.spawned_by == parent:id() then kids[#kids + 1] = t.spawner_name end
      end
      names = { #kids, kids[1], kids[3] }
      for _ = 1, 2 do gate:send(true) end
      as.yield()
      local left = {}
      for _, t in ipairs(as.tasks()) do
        if t.spawned_by == parent:id() then left[#left + 1] = t.spawner_name end
      end
      names[4], names[5] = #left, left[1]
      gate:send(true)
    end)
    assert.are.same({ 3, "p", "p", 1, "p" }, names)
  end)

  it("of run()'s root is its name after it returned", function()
    local task, text, root_id
    as.run(function()
      root_id = as.current():id()
      as.fork(function()
        as.sleep(0.001)
        task = as.tasks()[1]
        text = as.dump()
      end)
    end)
    assert.are.equal("main", task.spawner_name)
    assert.matches("spawned by fork #" .. root_id .. " 'main' %(ended%) at ", text)
  end)
end)
