-- asyncstack.profile: the sampling profiler's policy (issue 16). The
-- mechanism is in src/profile.c (timer, SIGPROF handler, raw samples,
-- naming) and src/flame.c (folded, speedscope, svg); this file checks the
-- options and names the calls. as.profile is this table.

local core = require "asyncstack.core"

local type, pairs, tostring, error, pcall = type, pairs, tostring, error, pcall
local format = string.format
local _ENV = nil

local M = {}

local DEFAULT_HZ = 997     -- prime: does not beat with periodic work
local options = { hz = true, mode = true }

local function bad(msg)
  error(format("bad argument #1 to 'profile.start' (%s)", msg), 3)
end

-- as.profile.start{hz = 997, mode = "cpu" | "wall"}: starts sampling the
-- calling thread (one profile per process at a time).
function M.start(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then bad("table expected, got " .. type(opts)) end
  for k in pairs(opts) do
    if not options[k] then bad(format("unknown option %s", type(k) == "string" and "'" .. k .. "'" or tostring(k))) end
  end
  local hz, mode = opts.hz, opts.mode
  if hz == nil then hz = DEFAULT_HZ end
  if mode == nil then mode = "cpu" end
  if type(hz) ~= "number" or hz ~= hz or hz < 1 or hz > 10000 then
    bad(format("hz must be a number from 1 to 10000, got %s", type(hz) == "number" and tostring(hz) or type(hz)))
  end
  if mode ~= "cpu" and mode ~= "wall" then
    bad(format("mode must be \"cpu\" or \"wall\", got %s",
               type(mode) == "string" and "'" .. mode .. "'" or type(mode)))
  end
  if core.profile_running() then
    error("profile.start: a profile is already running (as.profile.stop() ends it)", 2)
  end
  local ok, err = pcall(core.profile_start, hz, mode)
  if not ok then error(err, 2) end
end

-- as.profile.stop() -> the profile (asyncstack.Profile): folded(),
-- speedscope(), svg([title]), info().
function M.stop()
  if not core.profile_running() then
    error("profile.stop: no profile is running", 2)
  end
  return core.profile_stop()
end

-- as.profile.running() -> whether a profile is running in this state.
function M.running()
  return core.profile_running()
end

return M
