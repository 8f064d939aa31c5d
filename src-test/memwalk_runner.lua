-- memwalk_runner.lua: runs a spec file written for busted (describe / it /
-- assert.are.equal / are.same / is_true / is_false / is_nil / matches /
-- truthy) under an interpreter that busted cannot run under (the Lua
-- releases built by `make test-lua-versions`). Prints one line per failure
-- and "N successes / N failures (Lua 5.4.x)" like busted's summary; exits 1 on failure.
--   lua src-test/memwalk_runner.lua spec/memwalk_spec.lua
local spec_file = assert(arg[1], "usage: memwalk_runner.lua SPEC")

local passed, failed, names = 0, 0, {}

local function fail(msg, level)
  error(msg or "assertion failed", (level or 1) + 1)
end

local function show(v)
  if type(v) == "string" then return ("%q"):format(v) end
  return tostring(v)
end

local function deep_equal(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  for k, v in pairs(a) do if not deep_equal(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

local assert_ = {are = {}, is_ = {}}
function assert_.are.equal(expected, actual, msg)
  if expected ~= actual then
    fail(("%sexpected %s, got %s"):format(msg and msg .. ": " or "",
      show(expected), show(actual)), 2)
  end
end
function assert_.are.same(expected, actual, msg)
  if not deep_equal(expected, actual) then
    fail((msg and msg .. ": " or "") .. "tables differ", 2)
  end
end
function assert_.is_true(v, msg) if v ~= true then fail(msg or ("expected true, got " .. show(v)), 2) end end
function assert_.is_false(v, msg) if v ~= false then fail(msg or ("expected false, got " .. show(v)), 2) end end
function assert_.is_nil(v, msg) if v ~= nil then fail(msg or ("expected nil, got " .. show(v)), 2) end end
function assert_.truthy(v, msg) if not v then fail(msg or "expected a true value", 2) end end
function assert_.matches(pattern, s, msg)
  if type(s) ~= "string" or not s:find(pattern) then
    fail(("%s%s does not match %s"):format(msg and msg .. ": " or "", show(s), show(pattern)), 2)
  end
end
setmetatable(assert_, {__call = function(_, v, msg, ...)
  if not v then fail(msg or "assertion failed", 2) end
  return v, msg, ...
end})

local env = setmetatable({
  assert = assert_,
  describe = function(name, body)
    names[#names + 1] = name
    body()
    names[#names] = nil
  end,
  it = function(name, body)
    local full = table.concat(names, " ") .. " " .. name
    local ok, err = xpcall(body, debug.traceback)
    if ok then passed = passed + 1
    else
      failed = failed + 1
      print(("FAIL %s\n  %s"):format(full, tostring(err):gsub("\n", "\n  ")))
    end
  end,
  pending = function() end,
}, {__index = _G})

local chunk = assert(loadfile(spec_file, "t", env))
chunk()
local ident = (require "asyncstack_memwalk").release() or _VERSION
print(("%d success%s / %d failure%s (%s)"):format(passed, passed == 1 and "" or "es",
  failed, failed == 1 and "" or "s", ident:match("Lua [%d.]+") or ident))
os.exit(failed == 0 and 0 or 1)
