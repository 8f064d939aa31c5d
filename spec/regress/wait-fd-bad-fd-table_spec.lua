-- Found by the reliability work (issue 8, bad input for wait_fd): a
-- well-formed but closed fd number makes wait_fd grow the scheduler's fd
-- table to the next power of two above it before epoll_ctl refuses the fd.
-- Every fd below 2^24 passes the range check, so one bad call allocates
-- and zeroes up to 2^24 entries of 16 bytes (256 MiB; the doubling
-- reallocations touch about 400 MiB of RSS), then raises a clear error:
--
--   local as = require "asyncstack"
--   as.run(function()
--     print(pcall(as.wait_fd, (1 << 24) - 1, "r", 0))
--     --> false  wait_fd: cannot watch fd 16777215: Bad file descriptor
--   end)
--   -- VmHWM of the process: ~396 MB (a few MB without the call)
--
-- The table stays until run() ends.
--
-- Where: src/fdwait.c ensure_fd / fdwait_wait_fd. Check the fd first
-- (fcntl(fd, F_GETFD), or register with epoll before growing the table),
-- or bound the table by RLIMIT_NOFILE instead of 2^24.
--
-- Fixed (d87e716): wait_fd checks that the fd is open before sizing its fd
-- table by the fd's number.
local helper = require "spec.helper"


local SCRIPT = [[
local as = require "asyncstack"
local function hwm()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmHWM:%s*(%d+)")
    if kb then return tonumber(kb) end
  end
end
local before = hwm()
local ok, err
as.run(function() ok, err = pcall(as.wait_fd, (1 << 24) - 1, "r", 0) end)
print("grew", hwm() - before, ok, err)
]]

describe("regression: wait-fd-bad-fd-table", function()
  it("a closed fd number is refused without allocating a table as large as the number #child", function()
    local out, status = helper.run_child(SCRIPT)
    assert.are.equal(0, status, out)
    local grew = tonumber(out:match("grew\t(%d+)"))
    assert.matches("cannot watch fd 16777215: Bad file descriptor", out, 1, true)
    assert.is_true(grew ~= nil and grew < 32 * 1024, "peak RSS grew by " .. tostring(grew) .. " kB")
  end)
end)
