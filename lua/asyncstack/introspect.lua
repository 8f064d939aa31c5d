-- asyncstack.introspect: every live fork as data (tasks) and as a report
-- (dump), in the spirit of BugStalker's `async backtrace all` and Go's
-- goroutine dump: each fork, its state and for how long, what it waits on,
-- who spawned it and where, and its async backtrace at the await point.

local core = require "asyncstack.core"
local exception = require "asyncstack.exception"

local format, concat = string.format, table.concat
local type, ipairs, error, rawget = type, ipairs, error, rawget
local io_type, math_type, math_max, math_floor = io.type, math.type, math.max, math.floor
local fork_label, render = core.fork_label, core.render
local names_session = core.names_session
local _ENV = nil

local M = {}

local STATE_ORDER = { "running", "runnable", "sleeping", "waiting", "failed" }
local FAILURE_SHOWN = 200   -- bytes of a failed fork's message in a dump

local function site_of(fr)
  if not fr then return nil end
  return { file = fr.file, line = fr.line, ["function"] = fr["function"],
           namewhat = fr.namewhat, what = fr.what }
end

-- One table per live fork (see README "Introspection" for the fields),
-- and the raw capture its backtrace was read from.
local function task_of(fork, now, with_backtrace)
  local info = core.fork_info(fork)
  local raw = core.fork_capture(fork, not with_backtrace and { limit = 1 } or nil)
  local frames = core.expand(raw)
  local t = {
    id = info.id, fork_id = info.id, name = info.name, status = info.status,
    since = now - info.since, resumes = info.resumes,
    spawned_by = info.spawned_by ~= 0 and info.spawned_by or nil,
    spawner_name = info.spawner_name,
    spawn = info.spawn_file and { file = info.spawn_file, line = info.spawn_line,
                                  linedefined = info.spawn_linedefined } or nil,
    waiters = info.waiters,
    fork = fork,
  }
  if info.await_kind then
    local await = site_of(frames[1]) or {}
    await.kind = info.await_kind
    t.await = await
  end
  t.error = info.error                    -- a failed fork's error
  t.waiting_for = info.waiting_for        -- fork ids, or "channel #3 (recv)", "fd 5 (read)"
  t.combinator = info.combinator
  if info.status == "sleeping" then
    t.sleep_started = info.since
    t.deadline = info.deadline
  elseif info.deadline then
    t.deadline = info.deadline
  end
  if with_backtrace then t.backtrace = frames end
  return t, raw
end

-- as.tasks([opts]) -> { task, ... } in id order; {} outside run().
function M.tasks(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error(format("bad argument #1 to 'tasks' (table expected, got %s)", type(opts)), 2)
  end
  local with_backtrace = not (opts and opts.backtrace == false)
  local sched = core.scheduler_info()
  if not sched then return {} end
  local now, out = core.now(), {}
  -- one pass over package.loaded names the functions of every fork
  local session <close> = names_session()
  for i, fork in ipairs(sched.forks) do out[i] = (task_of(fork, now, with_backtrace)) end
  return out
end

-- "250ms" under a second (not "0.2s"), "1.5s", "120s".
local function seconds(s)
  local ms = math_floor(s * 1000 + 0.5)
  if ms < 1000 then return format("%dms", ms) end
  if s >= 100 then return format("%.0fs", s) end
  return format("%.1fs", s)
end

-- The first line of a failure's message, bounded.
local function failure_text(err)
  local text = exception.is_exception(err) and err:getMessage() or exception.describe_value(err)
  text = text:match("^[^\n]*")
  if #text > FAILURE_SHOWN then text = text:sub(1, FAILURE_SHOWN) .. "..." end
  return text
end

-- "[sleeping 1.5s of 5.0s]", "[waiting on fork #3 for 2.0s]", ...
local function state_text(t, now)
  if t.status == "sleeping" then
    if t.deadline then
      return format("sleeping %s of %s", seconds(t.since), seconds(t.deadline - t.sleep_started))
    end
    return format("sleeping %s, forever", seconds(t.since))
  elseif t.status == "waiting" and t.waiting_for then
    local what
    if type(t.waiting_for) == "string" then
      what = t.waiting_for
    elseif #t.waiting_for == 1 and not t.combinator then
      what = format("fork #%d", t.waiting_for[1])
    else
      local ids = {}
      for i, id in ipairs(t.waiting_for) do ids[i] = "#" .. id end
      what = format("forks %s (%s)", concat(ids, ", "), t.combinator or "wait")
    end
    local text = format("waiting on %s for %s", what, seconds(t.since))
    if t.deadline then text = text .. format(", timeout in %s", seconds(math_max(0, t.deadline - now))) end
    return text
  elseif t.status == "waiting" and t.await then
    return format("waiting on %s for %s", t.await.kind, seconds(t.since))
  elseif t.status == "failed" then
    return format("failed %s ago: %s", seconds(t.since), failure_text(t.error))
  elseif t.status == "runnable" and t.await and t.await.kind == "yield" then
    return format("runnable, yielded %s ago", seconds(t.since))
  end
  return t.status
end

local function spawn_text(t, by_id)
  local where = ""
  if t.spawn then
    where = (t.spawn.line or -1) > 0 and format(" at %s:%d", t.spawn.file, t.spawn.line)
            or format(" at %s", t.spawn.file)
  end
  if not t.spawned_by then return "spawned by run()" .. where end
  local parent = by_id[t.spawned_by]
  local label = parent and fork_label(parent.id, parent.name)
                or fork_label(t.spawned_by, t.spawner_name) .. " (ended)"
  return "spawned by " .. label .. where
end

-- The block of one fork: header line, then its backtrace at the await point.
local function fork_block(out, t, raw, by_id, now)
  out[#out + 1] = format("%s [%s]  %s", fork_label(t.id, t.name), state_text(t, now),
                         spawn_text(t, by_id))
  -- a failed fork's raw is its exception's: its own frames only
  local lines = raw and render(raw, "dump", t.status == "failed" and t.id or nil) or ""
  if lines ~= "" then out[#out + 1] = lines end
end

local function header(sched, tasks)
  local counts, parts = {}, {}
  for _, t in ipairs(tasks) do counts[t.status] = (counts[t.status] or 0) + 1 end
  for _, state in ipairs(STATE_ORDER) do
    if counts[state] then parts[#parts + 1] = format("%d %s", counts[state], state) end
  end
  local fds = core.watched_fds()
  return format("scheduler: %d fork%s (%s), run queue %d, %d timer%s, %d fd%s",
                #tasks, #tasks == 1 and "" or "s", concat(parts, ", "),
                sched.runq, sched.timers, sched.timers == 1 and "" or "s",
                fds, fds == 1 and "" or "s")
end

-- The report for `tasks` (raws[i]: the capture of tasks[i]); spawners are
-- looked up in `all` (default: tasks), so a one-fork dump still names a
-- live spawner.
local function report(tasks, raws, sched, all)
  local now, by_id, out = core.now(), {}, {}
  for _, t in ipairs(all or tasks) do by_id[t.id] = t end
  out[1] = header(sched, tasks)
  for i, t in ipairs(tasks) do fork_block(out, t, raws[i], by_id, now) end
  return concat(out, "\n") .. "\n"
end

-- Tasks with backtraces of the live forks and of the failed forks nobody
-- has retrieved yet (until a wait sees them or they are reported), in id
-- order, and their raw captures.
local function dumped_tasks(sched)
  local now, tasks, raws = core.now(), {}, {}
  local live, failed, i, j, n = sched.forks, sched.failed, 1, 1, 0
  while live[i] or failed[j] do
    local fork
    if failed[j] and (not live[i] or failed[j]:id() < live[i]:id()) then
      fork, j = failed[j], j + 1
    else
      fork, i = live[i], i + 1
    end
    n = n + 1
    tasks[n], raws[n] = task_of(fork, now, true)
    if tasks[n].status == "failed" and exception.is_exception(tasks[n].error) then
      raws[n] = rawget(tasks[n].error, "_raw")      -- its raise site: the stack is gone
    end
  end
  return tasks, raws
end

-- as.dump([file | {fork = id}]) -> text (when no file is given)
function M.dump(target)
  local file, only
  if io_type(target) == "file" then
    file = target
  elseif type(target) == "table" then
    only = target.fork
    if only ~= nil and math_type(only) ~= "integer" then
      error(format("bad option 'fork' to 'dump' (integer expected, got %s)",
                   math_type(only) or type(only)), 2)
    end
    file = target.file
  elseif target ~= nil then
    error(format("bad argument #1 to 'dump' (file or table expected, got %s)",
                 io_type(target) or type(target)), 2)
  end
  local sched = core.scheduler_info()
  local text
  if not sched then
    text = "scheduler: not running (no asyncstack.run() is active)\n"
  else
    -- one pass over package.loaded names the functions of every fork
    local session <close> = names_session()
    local tasks, raws = dumped_tasks(sched)
    if only then
      local one, one_raw = {}, {}
      for i, t in ipairs(tasks) do if t.id == only then one[1], one_raw[1] = t, raws[i] end end
      if not one[1] then
        text = format("fork #%d: no such live fork\n", only)
      else
        text = report(one, one_raw, sched, tasks):gsub("^[^\n]*\n", "")
      end
    else
      text = report(tasks, raws, sched)
    end
  end
  if file then
    file:write(text)
    file:flush()
    return nil
  end
  return text
end

-- The part of a deadlock message that describes the blocked forks.
function M.blocked_report(forks)
  local sched = core.scheduler_info()
  local now, tasks, raws = core.now(), {}, {}
  local session <close> = names_session()
  for i, fork in ipairs(forks) do tasks[i], raws[i] = task_of(fork, now, true) end
  return report(tasks, raws, sched)
end

return M
