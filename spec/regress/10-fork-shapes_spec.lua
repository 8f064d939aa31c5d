-- Issue 12 item 12: shapes.
--   * frame.fork was a fork id while task.fork is a Fork. Now `fork_id` is
--     the id in both (frames: fork_id, from_fork_id; tasks: fork_id, as
--     well as id), task.fork stays the Fork, and frame.fork / from_fork stay
--     as the old names of the ids.
--   * f.id (a method read as a field) is the method, a function, as with
--     Lua's own methods (io.stdout.write); the mistakes it leads to, f.id()
--     and f.id(x), now say how to call it.
local as = require "asyncstack"

describe("regress 10: frame and task shapes", function()
  it("gives frames and tasks the same fork_id", function()
    local frames, tasks, me
    as.run(function()
      me = as.current()
      as.fork(function() frames = as.debug_backtrace { async = true } end)
      as.sleep(0.001)           -- not waiting for it: its chain goes through its spawn site
      tasks = as.tasks()
    end)
    assert.are.equal(me:id(), tasks[1].fork_id)
    assert.are.equal(tasks[1].id, tasks[1].fork_id)
    assert.are.equal(me, tasks[1].fork)
    local top = frames[1]
    assert.is_number(top.fork_id)
    assert.are.equal(top.fork_id, top.fork)          -- the old name
    -- the spawn site's frame: from the child, in the root
    local spawn
    for _, fr in ipairs(frames) do if fr.spawn_site then spawn = fr end end
    assert.are.equal(top.fork_id, spawn.from_fork_id)
    assert.are.equal(spawn.from_fork_id, spawn.from_fork)
    assert.are.equal(me:id(), spawn.fork_id)
  end)

  it("says how to call a method read as a field", function()
    as.run(function()
      local f = as.current()
      assert.are.equal("function", type(f.id))
      assert.are.equal(f:id(), f.id(f))
      local ok, msg = pcall(function() return f.id() end)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'id' %(asyncstack%.Fork expected, got no value; call it as f:id%(%)%)$", msg)
      ok, msg = pcall(function() return f.name(5) end)
      assert.matches("bad argument #1 to 'name' %(asyncstack%.Fork expected, got number; call it as f:name%(%)%)$", msg)
    end)
  end)
end)
