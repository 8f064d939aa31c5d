-- demo.lua: what asyncstack adds to a Lua trace, in one screen.
--
-- A "handler" fork reads records from a generator coroutine; the generator
-- parses each record, and the parser fails on a bad one. Plain Lua would
-- show only the generator's own frames. asyncstack shows the generator,
-- the coroutine that resumed it, the fork it runs in, and (async = true)
-- the fork that is waiting for it, down to the code that called run().
local as = require "asyncstack"

local function parse(record)
  if not record:find("=") then
    -- a trace taken here, three coroutine/fork hops away from run()
    print(as.traceback("parse: bad record '" .. record .. "'", 1, { async = true }))
    return nil
  end
  return record:match("(%w+)=(%w+)")
end

local function records(lines)
  return coroutine.wrap(function()
    for _, line in ipairs(lines) do
      as.sleep(0.01)                  -- pretend to wait for I/O
      coroutine.yield(line, parse(line))
    end
  end)
end

local function handle(lines)
  local count = 0
  for _, key in records(lines) do
    if key then count = count + 1 end
  end
  return count
end

as.run(function()
  local worker = as.fork(handle, { "a=1", "b=2", "oops", "c=3" })
  worker:name("handler")
  print(("handler parsed %d records"):format(as.wait(worker)))
end)
