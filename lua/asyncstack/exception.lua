-- asyncstack.exception: Exception classes whose trace is the async chain at
-- the place they were created (or, for plain Lua errors, raised).
--
-- Construction stores only a raw capture (core.capture): functions, lines and
-- names, no strings built. Frames, file/line and text are made the first time
-- somebody reads them. Every formatter here is written for hostile values:
-- a __tostring that raises, yields or returns a non-string, enormous
-- messages and very deep stacks must not crash it nor lose the original.

local core = require "asyncstack.core"

local format, concat = string.format, table.concat
local type, rawget = type, rawget
local getmetatable, getinfo = debug.getmetatable, debug.getinfo
local setmetatable, pcall, tostring, error = setmetatable, pcall, tostring, error
local rawset, ipairs = rawset, ipairs
local math_type, math_floor, math_tointeger, math_min = math.type, math.floor, math.tointeger, math.min
local mininteger, maxinteger = math.mininteger, math.maxinteger
local render = core.render
local _ENV = nil

local M = {}

local MESSAGE_SHOWN = 4096   -- bytes of a message shown in tostring()
local TRACE_LIMIT = core.RAISE_SITE_LIMIT  -- frames a capture keeps; the rest are counted
local RETHROWS_KEPT = 8      -- rethrow sites remembered per exception
local CAPTURE = { async = true, limit = TRACE_LIMIT }

-- Class membership by walking raw metatables: no metamethod of the value
-- (__index, __metatable, ...) can run or lie. In C (src/exception.c): the
-- metatable, then raw __parent fields, at most 64 hops.
local instance_of = core.instance_of

local Exception = {}
Exception.__index = Exception
Exception.__name = "asyncstack.Exception"
Exception.__class_name = "asyncstack.Exception"
M.Exception = Exception

local function is_exception(value) return instance_of(value, Exception) end
M.is_exception = is_exception

-- A message for any error value, never raising: strings as they are,
-- numbers converted, else a __tostring result if it is a string, else the
-- value's type as lua.c describes it.
local function describe_value(value)
  local kind = type(value)
  if kind == "string" then return value end
  if kind == "number" then return tostring(value) end
  local mt = getmetatable(value)
  if type(mt) == "table" and rawget(mt, "__tostring") ~= nil then
    local ok, text = pcall(tostring, value)
    if ok and type(text) == "string" then return text end
  end
  local name = type(mt) == "table" and rawget(mt, "__name")
  return format("(error object is a %s value)", type(name) == "string" and name or kind)
end
M.describe_value = describe_value

local function bounded(text)
  if #text <= MESSAGE_SHOWN then return text end
  return text:sub(1, MESSAGE_SHOWN) .. format("... (%d more bytes)", #text - MESSAGE_SHOWN)
end

---------------------------------------------------------------- construction

local function new(class, message, code, previous, raw)
  return setmetatable({
    _message = message, _code = code, _previous = previous, _raw = raw,
  }, class)
end

local function arg_error(class, n, expected, value)
  error(format("bad argument #%d to '%s' (%s expected, got %s)", n,
               rawget(class, "__short_name"), expected,
               value == nil and "nil" or (getmetatable(value) and rawget(getmetatable(value), "__name"))
                 or type(value)), 3)
end

-- Class(message [, code [, previous]])
local function construct(class, message, code, previous)
  if message == nil then message = ""
  elseif type(message) == "number" then message = tostring(message)
  elseif type(message) ~= "string" then arg_error(class, 1, "string", message) end
  if code == nil then code = 0
  elseif math_type(code) ~= "integer" then
    if math_type(code) == "float" and code == math_floor(code) and code == code
       and code > mininteger and code < maxinteger then
      code = math_tointeger(code)
    else
      arg_error(class, 2, "integer", code)
    end
  end
  if previous ~= nil and not is_exception(previous) then
    arg_error(class, 3, "asyncstack.Exception", previous)
  end
  return new(class, message, code, previous, core.capture(CAPTURE))
end

-- A class's metatable: calling it constructs, and what the class lacks is
-- looked up in its parent (a table __index: no function call per lookup,
-- as in Cancelled:is(e) on every failure).
local function class_tostring(class) return "class " .. rawget(class, "__class_name") end
local function class_meta(parent)
  return { __call = construct, __index = parent, __tostring = class_tostring }
end
setmetatable(Exception, class_meta(nil))
Exception.__short_name = "Exception"

-- Class:extend(name) -> a subclass; instances are members of every ancestor.
function Exception.extend(class, name)
  if not (type(class) == "table" and rawget(class, "__class_name")) then
    error("bad argument #1 to 'extend' (exception class expected)", 2)
  end
  if type(name) ~= "string" or name == "" then
    -- called as Class:extend(name) the name is argument #1, as C counts it
    local as_method = (getinfo(1, "n") or {}).namewhat == "method"
    error(format("bad argument #%d to 'extend' (non-empty string expected, got %s)",
                 as_method and 1 or 2, name == "" and "empty string" or type(name)), 2)
  end
  local sub = {
    __parent = class, __class_name = name, __name = name,
    __short_name = name:match("[^.]*$"),
    __tostring = rawget(Exception, "__tostring"),
    __concat = rawget(Exception, "__concat"),
  }
  sub.__index = sub
  return setmetatable(sub, class_meta(class))
end

-- Class:is(value): value is an instance of Class or of a subclass.
function Exception.is(class, value)
  return instance_of(value, class)
end

------------------------------------------------------------------- readers

-- Readers check their self, so a bad call names the reader, not an
-- internal rawget (level 3: the caller of the reader).
local function check_self(self, fname)
  if not is_exception(self) then
    local mt = getmetatable(self)
    local name = type(mt) == "table" and rawget(mt, "__name")
    error(format("bad argument #1 to '%s' (asyncstack.Exception expected, got %s)", fname,
                 type(name) == "string" and name or type(self)), 3)
  end
end

function Exception:getMessage() check_self(self, "getMessage"); return rawget(self, "_message") end
function Exception:getCode() check_self(self, "getCode"); return rawget(self, "_code") end
function Exception:getPrevious() check_self(self, "getPrevious"); return rawget(self, "_previous") end

-- The original error value of an ErrorException (what error() was given).
function Exception:getOriginal()
  check_self(self, "getOriginal")
  if rawget(self, "_has_original") then return rawget(self, "_original") end
  return nil
end

function Exception:getTrace()
  check_self(self, "getTrace")
  local frames = rawget(self, "_frames")
  if not frames then
    frames = core.expand(rawget(self, "_raw"))
    rawset(self, "_frames", frames)
  end
  return frames
end

-- The site of a trace: its first Lua frame with a line, and its index.
local function site_of(frames)
  for i, fr in ipairs(frames) do
    if fr.what ~= "C" and fr.line then return fr, i end
  end
end

-- Where it was created (or raised): the site of its trace.
local function origin(self)
  return (site_of(self:getTrace()))
end

function Exception:getFile()
  check_self(self, "getFile")
  local fr = origin(self)
  return fr and fr.file
end

function Exception:getLine()
  check_self(self, "getLine")
  local fr = origin(self)
  return fr and fr.line
end

-- PHP's format: "#0 file(line): function()" per frame, then "#N {main}".
function Exception:getTraceAsString()
  check_self(self, "getTraceAsString")
  return render(rawget(self, "_raw"), "php")
end

---------------------------------------------------------------- rethrows

-- wait()/pwait() handed this exception on; remember where (`raw`: the
-- capture C made there, or false when the exception's trace already shows
-- that site: C checked it as rethrow_sections would, see
-- as_backtrace_push_rethrow_site). Every rethrow counts: _rethrows.n, and
-- the first RETHROWS_KEPT are kept ({ how =, raw = }, or false). In C
-- (src/exception.c): it runs at every wait that hands an exception on.
M.note_rethrow = core.rethrow_note(RETHROWS_KEPT)

local function class_name(e)
  local mt = getmetatable(e)
  return type(mt) == "table" and rawget(mt, "__class_name") or "asyncstack.Exception"
end

-- "Class: message in file:line". The location goes on the message's first
-- line (a multi-line message, such as a deadlock's dump, keeps its other
-- lines as they are), and is left out when the message already starts with
-- it (error("x") inside the same line: "t.lua:6: x").
local function header(e)
  local message = bounded(describe_value(rawget(e, "_message")))
  local file, line = e:getFile(), e:getLine()
  if not file then return class_name(e) .. ": " .. message end
  local at = format("%s:%d", file, line)
  if message:sub(1, #at + 1) == at .. ":" then return class_name(e) .. ": " .. message end
  local first, rest = message:match("^([^\n]*)(\n.*)$")
  if not first then return format("%s: %s in %s", class_name(e), message, at) end
  local colon = first:sub(-1) == ":" and ":" or ""
  if colon ~= "" then first = first:sub(1, -2) end
  return format("%s: %s in %s%s%s", class_name(e), first, at, colon, rest)
end

-- True when the trace already shows this frame (same fork, function, line):
-- a waiter that was waiting when the exception was created is in it.
local function already_shown(frames, fr)
  if not fr then return true end
  for _, other in ipairs(frames) do
    if other.fork_id == fr.fork_id and other.func == fr.func and other.line == fr.line then
      return true
    end
  end
  return false
end

local function rethrow_sections(e, out)
  local list = rawget(e, "_rethrows")
  if not list then return end
  local main = e:getTrace()
  for i = 1, math_min(list.n, RETHROWS_KEPT) do
    local r = list[i]
    if r then
      local frames = core.expand(r.raw)
      local site, at = site_of(frames)
      if not site and frames[1] then site, at = frames[1], 1 end
      if not already_shown(main, site) then
        out[#out + 1] = render(r.raw, "rethrow", r.how, at)
        out[#out + 1] = render(r.raw, "traceback")
      end
    end
  end
  if list.n > RETHROWS_KEPT then
    out[#out + 1] = format("(and %d more rethrows)", list.n - RETHROWS_KEPT)
  end
end

-- Class, message, location, the trace, where it was rethrown, then the
-- previous exceptions (bounded, cycle-safe).
local function to_string(e)
  -- its traces (main, rethrows, previous exceptions) share one pass over
  -- package.loaded for names
  local session <close> = core.names_session()
  local out, seen, depth = {}, {}, 0
  while e ~= nil and depth < 16 and not seen[e] do
    seen[e] = true
    if depth > 0 then out[#out + 1] = "\nprevious exception:" end
    out[#out + 1] = header(e)
    out[#out + 1] = render(rawget(e, "_raw"), "traceback")
    rethrow_sections(e, out)
    e = rawget(e, "_previous")
    depth = depth + 1
  end
  return concat(out, "\n")
end

Exception.__tostring = function(e)
  local ok, text = pcall(to_string, e)
  if ok then return text end
  return class_name(e) .. ": (message could not be formatted: " .. describe_value(text) .. ")"
end

-- `"failed: " .. e` and `e .. "!"` work as with tostring(e) (string idioms
-- on errors from wait). Anything but strings and numbers on the other side
-- raises as Lua's own concatenation does.
Exception.__concat = function(a, b)
  local function side(v)
    local kind = type(v)
    if kind == "string" or kind == "number" then return v end
    if is_exception(v) then return tostring(v) end
    error(format("attempt to concatenate a %s value", kind), 3)
  end
  return side(a) .. side(b)
end

------------------------------------------------------------- built-ins

M.ErrorException = Exception:extend("asyncstack.ErrorException")
M.Timeout = Exception:extend("asyncstack.Timeout")
M.Cancelled = Exception:extend("asyncstack.Cancelled")
M.Deadlock = Exception:extend("asyncstack.Deadlock")
for _, class in ipairs({ M.ErrorException, M.Timeout, M.Cancelled, M.Deadlock }) do
  rawset(class, "__short_name", rawget(class, "__class_name"):match("[^.]*$"))
end

-- An ErrorException for a plain error value, with the given raw trace.
-- (wrap_error: the same for a value known not to be an exception.)
local ErrorException = M.ErrorException
local function wrap_error(value, raw)
  -- one constructor (as new() but with the original): no rehash per field
  return setmetatable({
    _message = type(value) == "string" and value or describe_value(value), _code = 0, _raw = raw,
    _original = value, _has_original = true,
  }, ErrorException)
end
M.wrap_error = wrap_error

function M.from_error(value, raw)
  if is_exception(value) then return value end
  return wrap_error(value, raw)
end

-- A built-in error of `kind` ("Timeout", ...) with the capture `raw` of the
-- place it is raised (C passes it: src/module.h new_error).
function M.new_error(kind, message, raw)
  local class = M[kind] or Exception
  return new(class, message, 0, nil, raw)
end

core.set_exception_class(Exception, M.Cancelled)
return M
