-- Reads busted's JSON output (-o json) on stdin, prints each failure and
-- error, then the plain line "N passed, N failed" (errors count as failed,
-- pending tests are reported as skipped). Exits non-zero on any failure or
-- when the JSON cannot be read (so CI never passes on a broken run).
local text = io.read("a")
local start = text:find("{", 1, true)
if not start then
  io.write(text)
  print("0 passed, 1 failed")
  os.exit(1)
end

-- a minimal JSON reader: busted's output is plain objects, arrays, strings,
-- numbers, booleans and null
local pos = start
local function skip() pos = text:find("[^ \t\r\n]", pos) or #text + 1 end
local value
local function str()
  local out = {}
  pos = pos + 1
  while true do
    local c = text:sub(pos, pos)
    if c == '"' then pos = pos + 1; return table.concat(out) end
    if c == "\\" then
      local e = text:sub(pos + 1, pos + 1)
      local map = { n = "\n", t = "\t", r = "\r", b = "\b", f = "\f" }
      if e == "u" then
        local code = tonumber(text:sub(pos + 2, pos + 5), 16)
        out[#out + 1] = code < 128 and string.char(code) or "?"
        pos = pos + 6
      else
        out[#out + 1] = map[e] or e
        pos = pos + 2
      end
    elseif c == "" then error("unterminated string")
    else out[#out + 1] = c; pos = pos + 1 end
  end
end
function value()
  skip()
  local c = text:sub(pos, pos)
  if c == "{" then
    local t = {}
    pos = pos + 1; skip()
    if text:sub(pos, pos) == "}" then pos = pos + 1; return t end
    while true do
      skip(); local k = str(); skip(); pos = pos + 1
      t[k] = value(); skip()
      local d = text:sub(pos, pos); pos = pos + 1
      if d == "}" then return t end
    end
  elseif c == "[" then
    local t = {}
    pos = pos + 1; skip()
    if text:sub(pos, pos) == "]" then pos = pos + 1; return t end
    while true do
      t[#t + 1] = value(); skip()
      local d = text:sub(pos, pos); pos = pos + 1
      if d == "]" then return t end
    end
  elseif c == '"' then return str()
  elseif text:sub(pos, pos + 3) == "true" then pos = pos + 4; return true
  elseif text:sub(pos, pos + 4) == "false" then pos = pos + 5; return false
  elseif text:sub(pos, pos + 3) == "null" then pos = pos + 4; return nil
  else
    local num = text:match("^-?[%d.eE+-]+", pos)
    pos = pos + #num
    return tonumber(num)
  end
end

local ok, result = pcall(value)
if not ok or type(result) ~= "table" then
  io.write(text)
  print("could not read busted's output: " .. tostring(result))
  print("0 passed, 1 failed")
  os.exit(1)
end
local function show(kind, list)
  for _, t in ipairs(list or {}) do
    local el = t.element or {}
    print(("%s: %s"):format(kind, el.name or t.name or "?"))
    if t.message then print("  " .. tostring(t.message):gsub("\n", "\n  ")) end
    if t.trace and t.trace.traceback then print("  " .. t.trace.traceback:gsub("\n", "\n  ")) end
  end
end
show("FAILED", result.failures)
show("ERROR", result.errors)
local passed = #(result.successes or {})
local failed = #(result.failures or {}) + #(result.errors or {})
local skipped = #(result.pendings or {})
print(("%d passed, %d failed, %d skipped"):format(passed, failed, skipped))
os.exit(failed == 0 and passed > 0 and 0 or 1)
