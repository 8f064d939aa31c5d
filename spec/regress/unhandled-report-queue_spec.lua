-- Issue 8, found by `make gc-stress` (random programs under setpause 0:
-- "run() raised attempt to index a nil value", and failures "reported 0
-- times, seen by no waiter").
--
-- Failures of forks collected during run() are queued by their finalizer
-- (as_sched_report_unhandled appends at rawlen + 1 to the pending table)
-- and delivered by drain_pending, which reads n = rawlen once, then calls
-- the on_unhandled hook for entries 1..n, setting each to nil after it. A
-- finalizer that runs meanwhile (the handler allocates, a collection step
-- runs) appends behind holes: the entry lands past n, and the next drain's
-- rawlen on {nil, nil, nil, D, E} is 0 (the report is lost) or 5 (entry 1
-- is nil and `lua_getfield(L, -2, "error")` raises "attempt to index a nil
-- value" from the scheduler loop: run() raises that plain string and
-- abandons every live fork).
--
-- A second way to lose a report, seen under `make gc-stress` in
-- generational mode (random program 8000919 after the whole suite; traced
-- with fprintf in a debug build): a fork whose finalizer runs after the
-- loop's last drain, during report_unretrieved (push_sorted_keys allocates,
-- a minor collection runs, finalizers with it), is queued (st->sched is
-- still set) with f->reported = 1, so report_unretrieved skips it and
-- nobody drains the queue again before run() returns.
--
-- Where: src/sched.c drain_pending, as_sched_report_unhandled and the end
-- of sched_run. Drain a list taken out of the way (swap in a fresh pending
-- table before calling any hook), or keep explicit head/tail counters
-- instead of rawlen; and drain until the queue stays empty after
-- report_unretrieved (or report directly once the loop has ended).
local as = require "asyncstack"

-- Fixed: drain_pending swaps the queue out before calling any hook and
-- loops until it stays empty; report_unretrieved drains once more.

describe("regression: unhandled-report-queue", function()
  it("reports every collected failure once, even those queued while the handler runs", function()
    local reports, keep = {}, nil
    as.on_unhandled(function(e)
      reports[#reports + 1] = e:getMessage():match("fail (%w+)")
      if keep then   -- D and E become garbage and are finalized now
        keep = nil
        collectgarbage()
        collectgarbage()
      end
    end)
    local ok, err = pcall(as.run, function()
      local function failing(name) return function() error("fail " .. name, 0) end end
      for _, n in ipairs { "A", "B", "C" } do as.fork(failing(n)) end
      keep = { as.fork(failing("D")), as.fork(failing("E")) }
      as.yield()                           -- all five fail; nobody waits for them
      collectgarbage()
      collectgarbage()                     -- A, B, C are finalized: three reports queued
      as.yield()                           -- the loop drains them
      as.sleep(0.01)
    end)
    as.on_unhandled(nil)
    table.sort(reports)
    assert.is_true(ok, tostring(err))      -- today: "attempt to index a nil value"
    assert.are.same({ "A", "B", "C", "D", "E" }, reports)
  end)
end)
