-- examples/profile.lua: as.profile over a small pipeline. One fork fetches
-- documents (a sleep stands for the network) into a channel; two forks
-- parse them, pulling words out of a generator. Writes a flame graph
-- (profile.svg, or the path given) and prints the folded stacks' top lines.
--
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' \
--     lua5.4 examples/profile.lua [out.svg] [wall|cpu]
local as = require "asyncstack"

local out = arg[1] or "profile.svg"
local mode = arg[2] or "wall"

local function checksum(word)
  local h = 0
  for i = 1, #word do h = (h * 31 + word:byte(i)) % 4294967296 end
  return h
end

-- A generator: the words of a document, one per resume.
local function words(doc)
  return coroutine.wrap(function()
    for word in doc:gmatch("%a+") do coroutine.yield(word) end
  end)
end

local function parse(doc)
  local sum = 0
  for word in words(doc) do sum = sum + checksum(word) % 7 end
  return sum
end

local function fetch(i)
  as.sleep(0.005 * (i % 3 + 1))             -- the network, in this example
  return ("lorem ipsum dolor sit amet consectetur "):rep(500 * i)
end

local function fetch_all(docs, n)
  for i = 1, n do docs:send(fetch(i)) end
  docs:close()
end

local function parse_all(docs)
  local total = 0
  for doc in docs do total = total + parse(doc) end
  return total
end

as.profile.start { hz = 997, mode = mode }
as.run(function()
  local docs = as.channel(2)
  local fetcher = as.fork(fetch_all, docs, 16)
  fetcher:name("fetcher")
  local parsers = {}
  for k = 1, 2 do
    parsers[k] = as.fork(parse_all, docs)
    parsers[k]:name("parser " .. k)
  end
  as.wait_all(parsers)
  as.wait(fetcher)
end)
local profile = as.profile.stop()

local f = assert(io.open(out, "w"))
f:write(profile:svg("examples/profile.lua: a fetcher and two parsers"))
f:close()

local info = profile:info()
print(("%s profile: %d samples in %.2f s, %d stacks; wrote %s"):format(
  info.mode, info.samples, info.seconds, info.stacks, out))
-- the heaviest stacks, as folded lines (root first)
local lines = {}
for line in profile:folded():gmatch("[^\n]+") do lines[#lines + 1] = line end
table.sort(lines, function(a, b)
  return tonumber(a:match("(%d+)$")) > tonumber(b:match("(%d+)$"))
end)
for i = 1, math.min(5, #lines) do
  -- leave out what lies below run(): the interpreter's frames
  print((lines[i]:gsub("^.-(%[fork )", "%1", 1)))
end
