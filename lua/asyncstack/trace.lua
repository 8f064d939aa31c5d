-- asyncstack.trace: the text form of traces, in debug.traceback's shape,
-- with one marker line per coroutine or fork boundary (README "Traces").
-- Pure formatting over frame tables (core.expand); no state.

local core = require "asyncstack.core"

local concat, format = table.concat, string.format
local type, tostring = type, tostring

local M = {}

-- Text is built with `..` rather than string.format on the per-frame path:
-- a traceback formats every frame, and concatenation of strings and
-- integers costs a fraction of format's buffer and tostring machinery
-- (bench/run.lua row 5).

local function fork_label(id, name)
  if name then return "fork #" .. id .. " '" .. name .. "'" end
  return "fork #" .. id
end

-- The name of a function as Lua's own traceback finds it for nameless
-- frames: a field of a loaded module ("_G." dropped). Used only for spawn
-- sites, whose caller context is gone. The search is in C (core.global_name).
local loaded_name = core.global_name

-- The name under which `fn` is an upvalue of `holder`, if it is one.
local function upvalue_name(holder, fn)
  if type(holder) ~= "function" then return nil end
  for i = 1, 255 do
    local name, value = debug.getupvalue(holder, i)
    if name == nil then return nil end
    if value == fn and name ~= "" then return name end
  end
end

-- A name for a frame Lua could not name: a fork's root function (started by
-- the scheduler, so no call instruction names it) or a spawn site. Tried: a
-- field of a loaded module, then an upvalue of the function in the next
-- frame, which is the one that waited for or spawned this fork.
local function guess_name(frames, i)
  local fr = frames[i]
  if not (fr.root or fr.spawn_site) or type(fr.func) ~= "function" then return nil end
  local found = loaded_name(fr.func)
  if found then return found end
  local nxt = frames[i + 1]
  if nxt then return upvalue_name(nxt.func, fr.func) end
  return upvalue_name(frames.spawn_func, fr.func)
end

-- What Lua's traceback prints after " in ". `frames, i` (optional) let a
-- nameless fork root borrow a name (guess_name).
local function describe(fr, frames, i)
  local name, namewhat = fr["function"], fr.namewhat
  if name and namewhat and namewhat ~= "" then
    if namewhat == "global" then return "function '" .. name .. "'" end
    return namewhat .. " '" .. name .. "'"
  end
  local guessed = frames and guess_name(frames, i)
  if guessed then return "function '" .. guessed .. "'" end
  local what = fr.what
  if what == "main" then return "main chunk" end
  if what ~= "C" then return "function <" .. tostring(fr.file) .. ":" .. (fr.linedefined or 0) .. ">" end
  return "?"
end

local function location(fr)
  local line = fr.line
  if line then return tostring(fr.file) .. ":" .. line end
  return fr.file
end

local function boundary_line(fr, frames, i)
  local kind = fr.boundary
  if kind == "coroutine" then
    return format("[coroutine resumed at %s in %s]", location(fr), describe(fr, frames, i))
  elseif kind == "awaited" then
    return format("[%s awaited by %s%s at %s in %s]", fork_label(fr.from_fork, fr.from_fork_name),
                  fork_label(fr.fork, fr.fork_name), fr.via and (" in " .. fr.via) or "",
                  location(fr), describe(fr, frames, i))
  elseif kind == "spawned" then
    return format("[%s spawned by %s at %s in %s]", fork_label(fr.from_fork, fr.from_fork_name),
                  fork_label(fr.fork, fr.fork_name), location(fr), describe(fr, frames, i))
  elseif kind == "run" then
    return format("[%s started by run() at %s in %s]", fork_label(fr.from_fork, fr.from_fork_name),
                  location(fr), describe(fr, frames, i))
  elseif kind == "unbridged" then
    return "[coroutine resumed outside the asyncstack bridge]"
  end
end

local function frame_line(fr, frames, i)
  local text, line = nil, fr.line
  if line then
    text = tostring(fr.file) .. ":" .. line .. ": in " .. describe(fr, frames, i)
  else
    text = tostring(fr.file) .. ": in " .. describe(fr, frames, i)
  end
  if fr.root then text = text .. "  (root of " .. fork_label(fr.fork, fr.fork_name) .. ")" end
  return text
end

local HEAD, TAIL = 100, 100  -- frames shown at each end of a very long trace

-- Appends the lines of `frames[i]` to `out`.
local function add_frame(out, frames, i)
  local fr = frames[i]
  if fr.after_tailcall then out[#out + 1] = "(...tail calls...)" end
  if fr.boundary then out[#out + 1] = boundary_line(fr, frames, i) end
  if not fr.spawn_site then out[#out + 1] = frame_line(fr, frames, i) end
  if fr.tailcall then out[#out + 1] = "(...tail calls...)" end
end

-- Text in debug.traceback's shape for a frame sequence (see core walk).
local function format_trace(msg, frames)
  local out, n = {}, #frames
  if n <= HEAD + TAIL then
    for i = 1, n do add_frame(out, frames, i) end
  else
    for i = 1, HEAD do add_frame(out, frames, i) end
    out[#out + 1] = format("...\t(skipping %d levels)", n - HEAD - TAIL)
    for i = n - TAIL + 1, n do add_frame(out, frames, i) end
  end
  if frames.omitted then
    out[#out + 1] = format("...\t(%d more frames omitted)", frames.omitted)
  end
  local text = "stack traceback:\n\t" .. concat(out, "\n\t")
  if #out == 0 then text = "stack traceback:" end
  if msg ~= nil then return msg .. "\n" .. text end
  return text
end

M.format = format_trace
M.fork_label = fork_label
M.describe = describe
M.guess_name = guess_name
M.location = location
return M
