-- README.md stays true (issue 12 item 14).
--
-- Convention for README code blocks, which this spec enforces:
--   ```lua             a complete program: run here, in a child lua5.4 with
--                      the checkout's LUA_PATH / LUA_CPATH; it must exit 0
--                      and print nothing to stderr.
--   ```lua signature   a listing of call shapes, not a program: not run.
--   ``` / ```text ...  output, shell commands: not run (the dump sample
--                      below is checked against the real output instead).
-- Any other ```lua... info string is an error, so a block cannot opt out by
-- accident.

local function read(path)
  local f = assert(io.open(path))
  local s = f:read("a")
  f:close()
  return s
end

-- Every fenced block: { info = "lua", code = "...", line = N }.
local function fenced_blocks(text)
  local blocks, current, n = {}, nil, 0
  for line in (text .. "\n"):gmatch("(.-)\n") do
    n = n + 1
    local fence, info = line:match("^(```+)%s*(.-)%s*$")
    if current then
      if fence and info == "" then
        blocks[#blocks + 1] = current
        current = nil
      else
        current.lines[#current.lines + 1] = line
      end
    elseif fence then
      current = { info = info, line = n, lines = {} }
    end
  end
  assert(current == nil, "README.md: a code block opened and never closed")
  for _, b in ipairs(blocks) do b.code = table.concat(b.lines, "\n") .. "\n" end
  return blocks
end

-- Runs `code` (or, with `file`, that file as it is named) in a child lua5.4.
local function run_lua(code, file)
  local path = file or os.tmpname()
  if not file then
    local f = assert(io.open(path, "w"))
    f:write(code)
    f:close()
  end
  local errpath = os.tmpname()
  local cpath = os.getenv("LUA_CPATH") or "build/?.so;;"
  local lpath = os.getenv("LUA_PATH") or "lua/?.lua;lua/?/init.lua;;"
  local p = assert(io.popen(("ulimit -c 0; LUA_PATH='%s' LUA_CPATH='%s' timeout 60 lua5.4 %s 2>%s; echo \"status=$?\"")
    :format(lpath, cpath, path, errpath)))
  local out = p:read("a")
  p:close()
  local stderr = read(errpath)
  if not file then os.remove(path) end
  os.remove(errpath)
  return out:gsub("status=%d+%s*$", ""), tonumber(out:match("status=(%d+)%s*$")), stderr
end

local readme = read("README.md")
local blocks = fenced_blocks(readme)

describe("README.md", function()
  it("marks every lua block as a program (```lua) or a listing (```lua signature)", function()
    local programs = 0
    for _, b in ipairs(blocks) do
      if b.info:match("^lua") then
        assert(b.info == "lua" or b.info == "lua signature",
          ("README.md:%d: unknown code block marker '```%s'"):format(b.line, b.info))
        if b.info == "lua" then programs = programs + 1 end
      end
    end
    assert.is_true(programs >= 6, "expected the README's examples as ```lua blocks")
  end)

  for _, b in ipairs(blocks) do
    if b.info == "lua" then
      it(("runs the lua block at line %d as shown"):format(b.line), function()
        local out, status, stderr = run_lua(b.code)
        assert(status == 0 and stderr == "",
          ("README.md:%d: exit status %s\nstdout:\n%s\nstderr:\n%s"):format(b.line, tostring(status), out, stderr))
      end)
    end
  end

  it("shows as.dump()'s real output for examples/dump.lua", function()
    local sample = readme:match("\n```\n(scheduler: .-\n)```\n")
    assert(sample, "README.md: no dump sample (a ``` block starting 'scheduler: ')")
    local out, status, stderr = run_lua(nil, "examples/dump.lua")
    assert.are.equal(0, status, stderr)
    -- durations vary from run to run (their digits only: the unit, ms under
    -- a second, and the form must be what prints); everything else must be
    -- what prints
    local function shape(s) return (s:gsub("%d+ms", "Tms"):gsub("%d+%.%ds", "T.Ts")) end
    assert.are.equal(shape(out), shape(sample))
  end)
end)
