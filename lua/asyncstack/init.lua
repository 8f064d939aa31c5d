-- asyncstack: a fork scheduler with async stack traces for Lua 5.4.
--
-- This file is the policy layer over asyncstack.core (C): how traces read as
-- text, what a failed fork's waiters see, how a deadlock is reported. The
-- mechanism (scheduler, async stack, bridge, trace walking) is in src/.
-- Requiring it touches no globals; run() installs the coroutine bridge only
-- for its own duration, install() does it for good.

local core = require "asyncstack.core"

local concat, format, insert = table.concat, string.format, table.insert
local type, tostring = type, tostring

local M = {}

-- Frames of this directory's Lua files are ours: traces hide them.
do
  local source = debug.getinfo(1, "S").source
  core.set_internal_prefix((source:gsub("[^/\\]*$", "")))
end

---------------------------------------------------------------- formatting

local function fork_label(id, name)
  if name then return format("fork #%d '%s'", id, name) end
  return format("fork #%d", id)
end

-- The name of a function as Lua's own traceback finds it for nameless
-- frames: a field of a loaded module ("_G." dropped). Used only for spawn
-- sites, whose caller context is gone.
local function loaded_name(fn)
  for modname, mod in pairs(package.loaded) do
    if type(mod) == "table" then
      for key, value in pairs(mod) do
        if value == fn and type(key) == "string" then
          if modname == "_G" then return key end
          return modname .. "." .. key
        end
      end
    end
  end
end

-- What Lua's traceback prints after " in ".
local function describe(fr)
  local name, namewhat = fr["function"], fr.namewhat
  if name and namewhat and namewhat ~= "" then
    if namewhat == "global" then return format("function '%s'", name) end
    return format("%s '%s'", namewhat, name)
  end
  if fr.spawn_site and fr.func then
    local found = loaded_name(fr.func)
    if found then return format("function '%s'", found) end
  end
  if fr.what == "main" then return "main chunk" end
  if fr.what ~= "C" then return format("function <%s:%d>", fr.file, fr.linedefined or 0) end
  return "?"
end

local function location(fr)
  if fr.line then return format("%s:%d", fr.file, fr.line) end
  return fr.file
end

local function boundary_line(fr)
  local kind = fr.boundary
  if kind == "coroutine" then
    return format("[coroutine resumed at %s in %s]", location(fr), describe(fr))
  elseif kind == "awaited" then
    return format("[%s awaited by %s at %s in %s]", fork_label(fr.from_fork, fr.from_fork_name),
                  fork_label(fr.fork, fr.fork_name), location(fr), describe(fr))
  elseif kind == "spawned" then
    return format("[%s spawned by %s at %s in %s]", fork_label(fr.from_fork, fr.from_fork_name),
                  fork_label(fr.fork, fr.fork_name), location(fr), describe(fr))
  elseif kind == "run" then
    return format("[%s started by run() at %s in %s]", fork_label(fr.from_fork, fr.from_fork_name),
                  location(fr), describe(fr))
  elseif kind == "unbridged" then
    return "[coroutine resumed outside the asyncstack bridge]"
  end
end

local function frame_line(fr)
  local line
  if fr.line then
    line = format("%s:%d: in %s", fr.file, fr.line, describe(fr))
  else
    line = format("%s: in %s", fr.file, describe(fr))
  end
  if fr.root then line = line .. "  (root of " .. fork_label(fr.fork, fr.fork_name) .. ")" end
  return line
end

local HEAD, TAIL = 100, 100  -- frames shown at each end of a very long trace

-- Appends the lines of `frames[i]` to `out`.
local function add_frame(out, fr)
  if fr.boundary then out[#out + 1] = boundary_line(fr) end
  if not fr.spawn_site then out[#out + 1] = frame_line(fr) end
  if fr.tailcall then out[#out + 1] = "(...tail calls...)" end
end

-- Text in debug.traceback's shape for a frame sequence (see core walk).
local function format_trace(msg, frames)
  local out, n = {}, #frames
  if n <= HEAD + TAIL then
    for i = 1, n do add_frame(out, frames[i]) end
  else
    for i = 1, HEAD do add_frame(out, frames[i]) end
    out[#out + 1] = format("...\t(skipping %d levels)", n - HEAD - TAIL)
    for i = n - TAIL + 1, n do add_frame(out, frames[i]) end
  end
  local text = "stack traceback:\n\t" .. concat(out, "\n\t")
  if n == 0 then text = "stack traceback:" end
  if msg ~= nil then return msg .. "\n" .. text end
  return text
end
M.format_trace = format_trace

--------------------------------------------------------------- policy hooks

-- A fork failed: waiters re-raise the original value; a string message also
-- carries the async trace of the place it was raised.
core.set_hook("on_failure", function(err, frames)
  if type(err) == "string" then return format_trace(err, frames) end
  return err
end)

core.set_hook("format", format_trace)

-- Where a suspended fork is: its innermost visible frame.
local function await_site(fork)
  local fr = core.fork_backtrace(fork, { limit = 1 })[1]
  if fr then return format("%s in %s", location(fr), describe(fr)) end
  return "an unknown place"
end

local function blocked_reason(info)
  if info.status == "waiting" and info.waiting_for then
    return format("waiting for fork #%d", info.waiting_for)
  elseif info.status == "sleeping" then
    return "sleeping forever"
  end
  return info.status .. (info.await_kind and (" (" .. info.await_kind .. ")") or "")
end

core.set_hook("on_deadlock", function(forks)
  local lines = { format("run: deadlock: %d fork%s blocked and none can make progress:",
                         #forks, #forks == 1 and " is" or "s are") }
  for _, f in ipairs(forks) do
    local info = core.fork_info(f)
    lines[#lines + 1] = format("\t%s %s at %s", fork_label(info.id, info.name),
                               blocked_reason(info), await_site(f))
  end
  return concat(lines, "\n")
end)

------------------------------------------------------------------ public API

M.run = core.run
M.fork = core.fork
M.wait = core.wait
M.pwait = core.pwait
M.sleep = core.sleep
M.yield = core.yield
M.now = core.now
M.current = core.current
M.debug_backtrace = core.debug_backtrace
M.fork_backtrace = core.fork_backtrace
M.traceback = core.traceback
M.install = core.install
M.uninstall = core.uninstall
M.crash = require "asyncstack.crash"

return M
