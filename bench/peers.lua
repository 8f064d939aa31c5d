-- bench/peers.lua: the peers of issue 17's rows (bench/run.lua rows 11-18):
-- cqueues, luv and copas, each loaded on first use, with the kernels that
-- measure what the asyncstack kernel of the same row measures, written the
-- way each library is meant to be used.
--
-- A peer that is not installed is not an error: P.missing(name) gives the
-- note its rows print instead of a figure. Peers are loaded only by the rows
-- that use them (each row runs in a child process of its own): a module in
-- package.loaded slows Lua's traceback, and asyncstack's, down.
--
-- Kernels take an operation count n and return the CPU seconds the n
-- operations took, as in bench/kernels.lua.

local create, resume, yield, status = coroutine.create, coroutine.resume,
                                      coroutine.yield, coroutine.status
local running = coroutine.running
local clock = os.clock

local P = {}

local function noop() end

------------------------------------------------------------ availability

-- Debian bookworm's lua-copas (1.2.0-2, copas 1.1.7) installs copas.lua for
-- Lua 5.1 and 5.2 only; it is plain Lua and runs on 5.4 with LuaSocket, so
-- it is taken from there when no copas is on the 5.4 path. Its coxpcall
-- (lua-coxpcall) sits in the 5.2/5.3 directories.
local COPAS_DIRS = { "/usr/share/lua/5.3/?.lua", "/usr/share/lua/5.2/?.lua" }

local function copas_path()
  if package.searchpath("copas", package.path) then return package.path end
  local extra = package.path
  for _, d in ipairs(COPAS_DIRS) do extra = extra .. ";" .. d end
  if package.searchpath("copas", extra) then return extra end
  return nil
end

local found = {
  cqueues = function() return package.searchpath("cqueues", package.path) end,
  luv = function() return package.searchpath("luv", package.cpath) end,
  copas = function()
    return copas_path() and package.searchpath("socket", package.path)
  end,
  socket = function() return package.searchpath("socket", package.path) end,
}

local PACKAGE = { cqueues = "lua-cqueues", luv = "lua-luv", copas = "lua-copas",
                  socket = "lua-socket" }

-- nil when `name` can be loaded, else why not (the note a skipped row prints).
function P.missing(name)
  if found[name]() then return nil end
  return string.format("%s not installed (apt-get install %s)", name, PACKAGE[name])
end

local loaded = {}

function P.load(name)
  if loaded[name] then return loaded[name] end
  local why = P.missing(name)
  if why then error(why, 0) end
  local m
  if name == "copas" then
    local saved = package.path
    package.path = copas_path()
    m = require "copas"
    package.path = saved
  else
    m = require(name)
  end
  loaded[name] = m
  return m
end

-- The version a peer reports, for the header of the peers' table.
function P.version(name)
  if P.missing(name) then return "not installed" end
  local m = P.load(name)
  if name == "cqueues" then return "cqueues " .. tostring(m.VERSION or "?") end
  if name == "luv" then
    return "luv " .. (m.version_string and m.version_string() or "?")
      .. (m.version and (" (libuv " .. tostring(m.version()) .. ")") or "")
  end
  if name == "copas" then return tostring(m._VERSION or "copas ?") end
  if name == "socket" then return tostring(m._VERSION) end
  return "?"
end

-- What copas has: Debian's 1.1.7 has only socket threads (addthread runs a
-- coroutine at once; there is no sleep, no queue, no way to wait for a
-- thread or to yield to the dispatcher), so only the TCP echo row can use
-- it. Later copas versions have copas.sleep and copas.queue; no kernels for
-- them are written here (nothing on this system to run them against), so
-- with such a copas those rows say that instead.
function P.copas_lacks(what)
  local why = P.missing("copas")
  if why then return why end
  local copas = P.load("copas")
  local version = tostring(copas._VERSION)
  if what == "queue" then
    if copas.queue then return version .. " has copas.queue, but bench/peers.lua has no kernel for it yet" end
    return version .. " has no copas.queue"
  end
  if copas.sleep then
    return version .. " has copas.sleep, but bench/peers.lua has no kernel for it yet"
  end
  local lacks = { sleep = "no copas.sleep", yield = "no way to yield to its dispatcher (no copas.sleep)",
                  wait = "no way to wait for a thread to end" }
  return version .. " has " .. assert(lacks[what], what)
end

------------------------------------------------------------------ cqueues

local cq_controller
local function cq()
  local cqueues = P.load("cqueues")
  cq_controller = cq_controller or cqueues.new()
  return cq_controller, cqueues
end

local function cq_loop(q)
  local ok, err = q:loop()
  if not ok then error(err, 0) end
end

-- row 13: ping-pong between two cqueues coroutines through two mailboxes,
-- each a value slot and a cqueues.condition: the sender fills the slot and
-- signals, the receiver waits on the condition while the slot is empty.
function P.cq_pingpong(n)
  local q = cq()
  local condition = require "cqueues.condition"
  local function mailbox() return { cv = condition.new() } end
  local function put(box, v) box.v = v; box.cv:signal() end
  local function take(box)
    while box.v == nil do box.cv:wait() end
    local v = box.v
    box.v = nil
    return v
  end
  local ping, pong = mailbox(), mailbox()
  local t
  q:wrap(function()
    for _ = 1, n do put(pong, take(ping)) end
  end)
  q:wrap(function()
    local t0 = clock()
    for i = 1, n do
      put(ping, i)
      if take(pong) ~= i then error("cqueues ping-pong: wrong value", 0) end
    end
    t = clock() - t0
  end)
  cq_loop(q)
  return t
end

-- row 14: n coroutines each sleeping once, for sleep_ms(i) milliseconds;
-- the whole run.
function P.cq_sleep_spread(n, sleep_ms)
  local q, cqueues = cq()
  local sleep = cqueues.sleep
  local t0 = clock()
  for i = 1, n do
    local s = sleep_ms(i) / 1000
    q:wrap(function() sleep(s) end)
  end
  cq_loop(q)
  return clock() - t0
end

-- row 16: n cqueues coroutines asleep (cqueues.sleep), for the memory row;
-- they never wake (the child process exits).
function P.cq_sleepers(n)
  local q, cqueues = cq()
  local sleep = cqueues.sleep
  local function body() sleep(1e6) end
  for _ = 1, n do q:wrap(body) end
  local ok, err = q:step(0)          -- every coroutine runs to its sleep
  if not ok then error(err, 0) end
  return q
end

---------------------------------------------------------------------- luv

-- luv is libuv's callbacks: a coroutine is woken by a handle's callback.
-- row 11: "fork + finish + wait": a new coroutine started by a 0 ms timer
-- (setTimeout(fn, 0) as luvit does it), the loop run until it is done.
function P.luv_timer_run(n)
  local uv = P.load("luv")
  local run, new_timer = uv.run, uv.new_timer
  local t0 = clock()
  for _ = 1, n do
    local timer = new_timer()
    timer:start(0, 0, function()
      timer:close()
      resume(create(noop))
    end)
    run()
  end
  return clock() - t0
end

-- row 12: a coroutine giving the loop a turn: an idle handle resumes it on
-- every loop iteration (luvit's setImmediate is a check handle, same cost).
function P.luv_idle_yield(n)
  local uv = P.load("luv")
  local idle = uv.new_idle()
  local t
  local co = create(function()
    local t0 = clock()
    for _ = 1, n do yield() end
    t = clock() - t0
  end)
  idle:start(function()
    resume(co)
    if status(co) == "dead" then idle:stop() end
  end)
  uv.run()
  idle:close()
  uv.run()
  return t
end

local function luv_sleep(uv, ms)
  local co = running()
  local timer = uv.new_timer()
  timer:start(ms, 0, function()
    timer:close()
    resume(co)
  end)
  yield()
end

-- row 14: n coroutines each sleeping once on a timer of its own.
function P.luv_sleep_spread(n, sleep_ms)
  local uv = P.load("luv")
  local t0 = clock()
  for i = 1, n do
    local ms = sleep_ms(i)
    resume(create(function() luv_sleep(uv, ms) end))
  end
  uv.run()
  return clock() - t0
end

-- row 16: n coroutines asleep on luv timers, for the memory row.
function P.luv_sleepers(n)
  local uv = P.load("luv")
  local function body() luv_sleep(uv, 1e9) end
  for _ = 1, n do resume(create(body)) end
  return uv
end

return P
