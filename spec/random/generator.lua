-- spec/random/generator.lua: seeded random programs for asyncstack (issue 8).
--
-- Three phases, all driven by one table of op kinds (OPS, below):
--
--   generate(seed)   a program description: one fork spec per fork (the root
--                    first), each with a body, a tree of ops. Generation also
--                    works out, statically, what each fork must do: the exact
--                    sequence of events it records, whether it ends done or
--                    failed and with which error (errors carry numeric tags).
--   run(program)     an interpreter: runs the program under as.run, each op
--                    recording events per fork, and checking on the spot what
--                    can only be checked there (traces, as.tasks, as.dump).
--   check(result)    the invariants, over the whole run:
--                    * every fork ran its ops in program order and recorded
--                      exactly the events the program implies, ending once
--                      with the status it implies (done / failed, or
--                      cancelled for a cancel op's victim); when the root
--                      failed, the others may instead be cancelled part-way
--                      (a prefix of their events), never otherwise;
--                    * every failure is seen exactly once: by one or more
--                      waiters (wait, pwait, run), or else by one report to
--                      as.on_unhandled, never both, never twice, always with
--                      the error the program raised;
--                    * every trace (debug_backtrace, traceback, fork_backtrace,
--                      as.tasks backtraces, exception traces) lists the
--                      program's own calls in order and ends at the fork's
--                      root; with async it goes on through the right fork;
--                    * the scheduler holds no fork after run, as.current() is
--                      nil, the coroutine bridge is gone.
--                    "The process never crashes" is the caller's side: any
--                    crash takes busted down with it.
--
-- Determinism: a private xorshift64* generator seeded per program, never
-- math.random. The interleaving of forks does depend on time (sleeps are
-- real, 0-2 ms), so no invariant depends on the interleaving. The ops of
-- channels, combinators, cancellation and timeouts keep to that: a channel
-- has one producer and one consumer; a wait_all/wait_any has at most one
-- failing member; a cancel targets a victim that is certainly parked (it
-- says so over a channel first), not started, or itself; a timeout is only
-- ever set on something that cannot end in time (a parked victim, a channel
-- nobody else holds), or so long (60 s) that it never fires. See "channels,
-- combinators, cancel, timeouts" below.
--
-- EXTENSION POINT (done: channels, cancel, timeouts, wait_all/wait_any,
-- wait_fd and closing a waited-for fd on UDP sockets the program owns):
-- a new op kind is one entry in OPS with four functions:
--   gen(g, gc)        builds the op table (`gc` is the generation context:
--                     the fork spec, visible fork handles, depth, coroutine
--                     nesting, the shadow stack of marker names); must set
--                     op.raises (tag) / op.raises_wait when it raises;
--   sim(s, op)        appends the events the op records when it runs;
--   exec(rt, fx, op, shadow)  runs it (record(rt, fx, ...) for each event);
--   weight(gc)        0 when the op cannot appear in this context.
-- and, when it changes what "the status the program implies" means (cancel),
-- the fork outcome rules in gen_fork and the delivery rules in check().
-- Look for "EXTENSION" below for each of those places.

local as = require "asyncstack"

local M = {}

local format, concat = string.format, table.concat
local pack = table.pack

-- Read before any run() installs the bridge: the unbridged original.
local RAW_RESUME = coroutine.resume
local BRIDGED_RESUME = require("asyncstack.core").bridged.resume

--------------------------------------------------------------------- PRNG

-- xorshift64* (Vigna), on Lua 5.4's wrapping 64-bit integers; the seed is
-- scrambled with splitmix64 so that consecutive seeds give unrelated streams.
local Rng = {}
Rng.__index = Rng

local function splitmix64(x)
  x = x + 0x9E3779B97F4A7C15
  x = (x ~ (x >> 30)) * 0xBF58476D1CE4E5B9
  x = (x ~ (x >> 27)) * 0x94D049BB133111EB
  return x ~ (x >> 31)
end

function M.rng(seed)
  local state = splitmix64(math.tointeger(seed) or error("integer seed expected"))
  if state == 0 then state = 1 end
  return setmetatable({ state = state }, Rng)
end

function Rng:next()
  local x = self.state
  x = x ~ (x >> 12)
  x = x ~ (x << 25)
  x = x ~ (x >> 27)
  self.state = x
  return x * 0x2545F4914F6CDD1D
end

-- Integer in [lo, hi].
function Rng:int(lo, hi)
  local span = hi - lo + 1
  if span <= 1 then return lo end
  return lo + ((self:next() >> 11) % span)
end

function Rng:chance(p) return (self:next() >> 11) < p * (1 << 53) end

function Rng:pick(list) return list[self:int(1, #list)] end

-- Picks a key of `weights` (name -> weight >= 0) in proportion to its weight;
-- `order` fixes the iteration order so the choice is deterministic.
function Rng:weighted(order, weights)
  local total = 0
  for _, k in ipairs(order) do total = total + weights[k] end
  if total <= 0 then return nil end
  local r = self:int(1, total)
  for _, k in ipairs(order) do
    r = r - weights[k]
    if r <= 0 then return k end
  end
end

------------------------------------------------------------------ helpers

local function copy(list)
  local out = {}
  for i = 1, #list do out[i] = list[i] end
  return out
end

local function push(list, v)
  local out = copy(list)
  out[#out + 1] = v
  return out
end

-- The tag an error value carries: "<<E12>>" in a string (whatever position
-- prefixes wrap added), {tag = 12}, an Exception's message, or an
-- ErrorException's original value; as.Cancelled is the tag "C" (a cancel
-- op's victim, see "cancel" below).
local function tag_of(value)
  if as.Exception:is(value) then
    if as.Cancelled:is(value) then return "C" end
    if as.ErrorException:is(value) then
      local t = tag_of(value:getOriginal())
      if t then return t end
    end
    return tag_of(value:getMessage())
  end
  if type(value) == "string" then return tonumber(value:match("<<E(%d+)>>")) end
  if type(value) == "table" and math.type(rawget(value, "tag")) == "integer" then
    return rawget(value, "tag")
  end
  return nil
end
M.tag_of = tag_of

local Custom = as.Exception:extend("random.Custom")

-- The values a fork returns; wait/pwait must hand them on unchanged.
local function fork_results(id) return "r" .. id, nil, id end
local function results_text(r, from)
  local parts = {}
  for i = from, r.n do parts[#parts + 1] = tostring(r[i]) end
  return concat(parts, ",")
end
local function expected_results_text(id)
  return results_text(pack(fork_results(id)), 1)
end

--------------------------------------------------------------- op kinds

local OPS, ORDER = {}, {}
local function op_kind(name, def)
  OPS[name] = def
  ORDER[#ORDER + 1] = name
end
M.OPS, M.ORDER = OPS, ORDER

-- forward declarations: generation and execution recurse through ops
local gen_block, gen_fork, gen_special_fork, new_spec, sim_block, exec_block
local record, observe, problem, check_frames, check_tasks, clear_state
local fork_root, call_body, pcall_body, coro_body
local YIELDED, DONE = {}, {}

local SLEEPS = { 0, 0, 0, 0.001, 0.002 }

-- The size of programs: ranges drawn per program (and per block).
local SHAPE = {
  forks = { 1, 16 },        -- most forks a program may create
  depth = { 0, 3 },         -- most nested blocks (pcall, call, coroutine)
  root_body = { 3, 10 },    -- ops in run()'s root fork
  body = { 1, 7 },          -- ops in another fork
  block = { 1, 4 },         -- ops in a nested block
  deep_block = 2,           -- ... from depth 3 on
}
M.SHAPE = SHAPE

-- What a fork is blocked in, for the checks other forks make meanwhile
-- (check_tasks, the fork_backtrace trace style, check_continuation):
--   state          the await kind as.tasks() reports: sleep, yield, wait,
--                  channel
--   blocked_shadow the program's own calls at the await point
--   waiting_for    spec id of the fork a wait/pwait waits for
--   waiting_list   spec id -> true, the forks a wait_all/wait_any waits for
--   loose          the wait may end before its targets do (a timeout, a
--                  combinator's fail-fast or first-to-end): the scheduler
--                  may already have unlinked it while `state` still says wait
--   chan           {id =, op = "send"|"recv"} of a blocked channel call
local function set_state(fx, state, shadow)
  fx.state, fx.blocked_shadow = state, shadow
end

function clear_state(fx)
  fx.state, fx.waiting_for, fx.waiting_list, fx.loose, fx.chan, fx.fdwait = nil, nil, nil, nil, nil, nil
end

-- Whether the fork `other` (interpreter state) waits for spec id `sid`.
local function waits_for(other, sid)
  return other.state == "wait" and (other.waiting_for == sid
         or (other.waiting_list ~= nil and other.waiting_list[sid] == true))
end

local function new_op(g, kind)
  g.nops = g.nops + 1
  return { kind = kind, n = g.nops }
end

-- Whether an op inside `gc` may still spawn a fork.
local function can_fork(g) return g.prog.nforks < g.max_forks end

op_kind("sleep", {
  weight = function() return 8 end,
  gen = function(g)
    local op = new_op(g, "sleep")
    op.seconds = g.rng:pick(SLEEPS)
    return op
  end,
  sim = function(s, op) s:ev(">" .. op.n); s:ev("<" .. op.n) end,
  exec = function(rt, fx, op, shadow)
    record(rt, fx, ">" .. op.n)
    fx.state, fx.blocked_shadow = "sleep", shadow
    as.sleep(op.seconds)
    fx.state = nil
    record(rt, fx, "<" .. op.n)
  end,
})

op_kind("yield", {
  weight = function() return 6 end,
  gen = function(g) return new_op(g, "yield") end,
  sim = function(s, op) s:ev(">" .. op.n); s:ev("<" .. op.n) end,
  exec = function(rt, fx, op, shadow)
    record(rt, fx, ">" .. op.n)
    fx.state, fx.blocked_shadow = "yield", shadow
    as.yield()
    fx.state = nil
    record(rt, fx, "<" .. op.n)
  end,
})

-- coroutine.yield() at the fork's own level (no user coroutine between):
-- the scheduler treats it as as.yield().
op_kind("ryield", {
  weight = function(gc) return gc.coro == 0 and 2 or 0 end,
  gen = function(g) return new_op(g, "ryield") end,
  sim = function(s, op) s:ev(">" .. op.n); s:ev("<" .. op.n) end,
  exec = function(rt, fx, op, shadow)
    record(rt, fx, ">" .. op.n)
    fx.state, fx.blocked_shadow = "yield", shadow
    local r = pack(coroutine.yield("ignored"))
    fx.state = nil
    if r.n ~= 0 then problem(rt, fx, op, "coroutine.yield at the fork level returned %d values", r.n) end
    record(rt, fx, "<" .. op.n)
  end,
})

-- coroutine.yield() inside a user coroutine: back to its driver.
op_kind("cyield", {
  weight = function(gc) return gc.coro > 0 and 8 or 0 end,
  gen = function(g, gc)
    local op = new_op(g, "cyield")
    op.value = g.rng:int(1, 99)
    return op
  end,
  sim = function(s, op) s:ev(">" .. op.n); s:ev("~" .. s.coro[#s.coro]); s:ev("<" .. op.n) end,
  exec = function(rt, fx, op)
    record(rt, fx, ">" .. op.n)
    local back = coroutine.yield(YIELDED, op.value)
    if back ~= op.value then problem(rt, fx, op, "resume passed %s, expected %s", tostring(back), op.value) end
    record(rt, fx, "<" .. op.n)
  end,
})

-- Starts the fork of spec `sid` (fork op, chan op, cancel op) and registers
-- its handle: strongly, or weakly when the program forgets it.
local function spawn(rt, fx, op, sid, named, forget)
  local h = as.fork(fork_root, rt, sid, sid * 7)
  rt.ids[h:id()] = sid
  rt.runtime_id[sid] = h:id()
  if forget then rt.weak[sid] = h else rt.strong[sid] = h end
  if named then
    h:name("f" .. sid)
    if tostring(h) ~= format("fork #%d 'f%d'", h:id(), sid) then
      problem(rt, fx, op, "tostring(fork) is %q", tostring(h))
    end
  elseif tostring(h) ~= format("fork #%d", h:id()) then
    problem(rt, fx, op, "tostring(fork) is %q", tostring(h))
  end
  if h:status() ~= "runnable" then problem(rt, fx, op, "a new fork is %s", h:status()) end
  return h
end

op_kind("fork", {
  weight = function(gc, g) return can_fork(g) and 12 or 0 end,
  gen = function(g, gc)
    local op = new_op(g, "fork")
    op.forget = g.rng:chance(0.15)
    op.named = g.rng:chance(0.3)
    local child = gen_fork(g, gc.spec, gc.visible)
    op.child = child.id
    child.forget = op.forget
    if not op.forget then gc.visible[#gc.visible + 1] = child.id end
    return op
  end,
  sim = function(s, op) s:ev(">" .. op.n); s:ev("<" .. op.n) end,
  exec = function(rt, fx, op)
    record(rt, fx, ">" .. op.n)
    spawn(rt, fx, op, op.child, op.named, op.forget)
    record(rt, fx, "<" .. op.n)
  end,
})

-- wait (re-raises the target's failure) and pwait (returns it).
op_kind("wait", {
  weight = function(gc) return #gc.visible > 0 and 14 or 0 end,
  gen = function(g, gc)
    local op = new_op(g, "wait")
    op.target = g.rng:pick(gc.visible)
    op.protected = g.rng:chance(0.4)
    local outcome = g.prog.forks[op.target].outcome
    if outcome.status == "failed" then
      if op.protected then
        op.leave = "fail:" .. outcome.tag
      else
        op.raises, op.raises_wait = outcome.tag, op.target
      end
    else
      op.leave = "ok:" .. expected_results_text(op.target)
    end
    return op
  end,
  sim = function(s, op)
    s:ev(">" .. op.n)
    if not op.raises then s:ev("<" .. op.n .. ":" .. op.leave) end
  end,
  exec = function(rt, fx, op, shadow)
    record(rt, fx, ">" .. op.n)
    local h = rt.strong[op.target]
    fx.state, fx.waiting_for, fx.blocked_shadow = "wait", op.target, shadow
    if op.protected then
      local r = pack(as.pwait(h))
      clear_state(fx)
      if r[1] == true then
        record(rt, fx, format("<%d:ok:%s", op.n, results_text(r, 2)))
      else
        observe(rt, op.target, r[2], "pwait in fork " .. fx.spec.id)
        if as.Exception:is(r[2]) then rt.check_exception(rt, fx, op, r[2])
        else problem(rt, fx, op, "pwait returned a %s, not an exception", type(r[2])) end
        record(rt, fx, format("<%d:fail:%s", op.n, tostring(tag_of(r[2]))))
      end
    else
      local r = pack(as.wait(h))       -- a failure propagates from here
      clear_state(fx)
      record(rt, fx, format("<%d:ok:%s", op.n, results_text(r, 1)))
    end
  end,
})

local ERROR_STYLES = { "string", "table", "exception", "custom" }

op_kind("error", {
  weight = function(gc) return (gc.spec.id == 1 and gc.depth == 0) and 1 or 3 end,
  gen = function(g, gc)
    local op = new_op(g, "error")
    g.ntags = g.ntags + 1
    op.tag = g.ntags
    op.style = g.rng:pick(ERROR_STYLES)
    op.raises = op.tag
    g.prog.origins[op.tag] = { fork = gc.spec.id, shadow = copy(gc.shadow), style = op.style }
    return op
  end,
  sim = function(s, op) s:ev(">" .. op.n) end,
  exec = function(rt, fx, op)
    record(rt, fx, ">" .. op.n)
    -- the same text in every program: equal strings across forks and runs
    -- (spec/regress/stale-error-trace_spec.lua)
    local text = format("<<E%d>>", op.tag)
    if op.style == "string" then error(text)
    elseif op.style == "table" then error({ tag = op.tag })
    elseif op.style == "exception" then error(as.Exception(text, op.tag))
    else error(Custom(text)) end
  end,
})

-- A protected call around a block: Lua's pcall or as.pcall.
op_kind("pcall", {
  weight = function(gc) return gc.depth < gc.max_depth and 5 or 0 end,
  gen = function(g, gc)
    local op = new_op(g, "pcall")
    op.style = g.rng:chance(0.5) and "pcall" or "aspcall"
    op.body = gen_block(g, gc, "pcall")
    op.caught, op.caught_wait = op.body.raises, op.body.raises_wait
    return op
  end,
  sim = function(s, op)
    s:ev(">" .. op.n)
    local raised = sim_block(s, op.body)
    if raised then s:ev("!" .. op.n .. ":" .. raised) end
    s:ev("<" .. op.n)
  end,
  exec = function(rt, fx, op, shadow)
    record(rt, fx, ">" .. op.n)
    local inner = push(shadow, "pcall")
    local ok, err
    if op.style == "pcall" then ok, err = pcall(pcall_body, rt, fx, op, inner)
    else ok, err = as.pcall(pcall_body, rt, fx, op, inner) end
    clear_state(fx)                       -- a wait may have raised
    if not ok then
      if op.style == "aspcall" and not as.Exception:is(err) then
        problem(rt, fx, op, "as.pcall returned a %s, not an exception", type(err))
      end
      if op.caught_wait then observe(rt, op.caught_wait, err, "pcall in fork " .. fx.spec.id) end
      if as.Exception:is(err) then rt.check_exception(rt, fx, op, err) end
      record(rt, fx, format("!%d:%s", op.n, tostring(tag_of(err))))
    elseif err ~= true then
      problem(rt, fx, op, "the protected block returned %s", tostring(err))
    end
    record(rt, fx, "<" .. op.n)
  end,
})

-- A plain call to another function (a frame of "the program's own calls").
op_kind("call", {
  weight = function(gc) return gc.depth < gc.max_depth and 3 or 0 end,
  gen = function(g, gc)
    local op = new_op(g, "call")
    op.body = gen_block(g, gc, "call")
    op.raises, op.raises_wait = op.body.raises, op.body.raises_wait
    return op
  end,
  sim = function(s, op)
    s:ev(">" .. op.n)
    local raised = sim_block(s, op.body)
    if not raised then s:ev("<" .. op.n) end
    return raised
  end,
  exec = function(rt, fx, op, shadow)
    record(rt, fx, ">" .. op.n)
    local r = call_body(rt, fx, op, push(shadow, "call"))
    if r ~= true then problem(rt, fx, op, "call returned %s", tostring(r)) end
    record(rt, fx, "<" .. op.n)
  end,
})

-- A user coroutine inside the fork, driven to its end: through
-- coroutine.wrap (its errors propagate) or coroutine.resume (they are
-- returned, and the driver swallows them). Its body may block the fork.
op_kind("coro", {
  weight = function(gc) return gc.depth < gc.max_depth and 5 or 0 end,
  gen = function(g, gc)
    local op = new_op(g, "coro")
    op.style = g.rng:chance(0.5) and "wrap" or "resume"
    op.body = gen_block(g, gc, "coro")
    if op.style == "wrap" then
      op.raises, op.raises_wait = op.body.raises, op.body.raises_wait
    else
      op.caught, op.caught_wait = op.body.raises, op.body.raises_wait
    end
    return op
  end,
  sim = function(s, op)
    s:ev(">" .. op.n)
    s.coro[#s.coro + 1] = op.n
    local raised = sim_block(s, op.body)
    s.coro[#s.coro] = nil
    if raised and op.style == "wrap" then return raised end
    if raised then s:ev("!" .. op.n .. ":" .. raised) end
    s:ev("<" .. op.n)
  end,
  exec = function(rt, fx, op, shadow)
    record(rt, fx, ">" .. op.n)
    local inner = push(shadow, "coro")
    if op.style == "wrap" then
      local gen = coroutine.wrap(coro_body)
      local v, value = gen(rt, fx, op, inner)
      while v == YIELDED do
        record(rt, fx, "~" .. op.n)
        v, value = gen(value)
      end
      if v ~= DONE then problem(rt, fx, op, "the generator ended with %s", tostring(v)) end
    else
      local co = coroutine.create(coro_body)
      local ok, v, value = coroutine.resume(co, rt, fx, op, inner)
      while ok and v == YIELDED do
        record(rt, fx, "~" .. op.n)
        ok, v, value = coroutine.resume(co, value)
      end
      if not ok then
        clear_state(fx)
        -- Lua leaves an errored coroutine's <close> variables pending
        -- until it is closed (a cancel victim's guard runs here)
        coroutine.close(co)
        if op.caught_wait then observe(rt, op.caught_wait, v, "resume in fork " .. fx.spec.id) end
        record(rt, fx, format("!%d:%s", op.n, tostring(tag_of(v))))
      elseif v ~= DONE then
        problem(rt, fx, op, "the coroutine ended with %s", tostring(v))
      end
      if coroutine.status(co) ~= "dead" then problem(rt, fx, op, "the coroutine is %s", coroutine.status(co)) end
    end
    record(rt, fx, "<" .. op.n)
  end,
})

local TRACE_STYLES = { "backtrace", "async", "traceback", "limit", "other" }

op_kind("trace", {
  weight = function() return 6 end,
  gen = function(g)
    local op = new_op(g, "trace")
    op.style = g.rng:pick(TRACE_STYLES)
    return op
  end,
  sim = function(s, op) s:ev(">" .. op.n); s:ev("<" .. op.n) end,
  exec = function(rt, fx, op, shadow)
    record(rt, fx, ">" .. op.n)
    rt.check_trace(rt, fx, op, shadow)
    if rt.at_trace then rt.at_trace(rt, fx, op) end   -- opts.at_trace
    record(rt, fx, "<" .. op.n)
  end,
})

op_kind("tasks", {
  weight = function() return 3 end,
  gen = function(g)
    local op = new_op(g, "tasks")
    op.dump = g.rng:chance(0.3)
    return op
  end,
  sim = function(s, op) s:ev(">" .. op.n); s:ev("<" .. op.n) end,
  exec = function(rt, fx, op, shadow)
    record(rt, fx, ">" .. op.n)
    check_tasks(rt, fx, op, shadow)
    record(rt, fx, "<" .. op.n)
  end,
})

op_kind("gc", {
  weight = function() return 1 end,
  gen = function(g)
    local op = new_op(g, "gc")
    op.full = g.rng:chance(0.5)
    return op
  end,
  sim = function(s, op) s:ev(">" .. op.n); s:ev("<" .. op.n) end,
  exec = function(rt, fx, op)
    record(rt, fx, ">" .. op.n)
    if op.full then collectgarbage() else collectgarbage("step", 10) end
    record(rt, fx, "<" .. op.n)
  end,
})

-- A scheduler call where Lua cannot yield: it must raise, naming the call.
local NOYIELD = {
  sort = function()
    return pcall(table.sort, { 3, 1, 2 }, function(a, b) as.sleep(0); return a < b end)
  end,
  tostring = function()
    return pcall(tostring, setmetatable({}, { __tostring = function() as.yield(); return "x" end }))
  end,
  gsub = function()
    return pcall(string.gsub, "ab", "%w", function() as.sleep(0) end)
  end,
}
local NOYIELD_CALL = { sort = "sleep", tostring = "yield", gsub = "sleep" }
local NOYIELD_ORDER = { "sort", "tostring", "gsub" }

op_kind("noyield", {
  weight = function() return 1 end,
  gen = function(g)
    local op = new_op(g, "noyield")
    op.style = g.rng:pick(NOYIELD_ORDER)
    return op
  end,
  sim = function(s, op) s:ev(">" .. op.n); s:ev("<" .. op.n) end,
  exec = function(rt, fx, op)
    record(rt, fx, ">" .. op.n)
    local ok, err = NOYIELD[op.style]()
    local want = NOYIELD_CALL[op.style] .. ": cannot suspend here: a C call that cannot yield"
    if ok or type(err) ~= "string" or not err:find(want, 1, true) then
      problem(rt, fx, op, "%s in a C callback gave %s, %s", NOYIELD_CALL[op.style], tostring(ok), tostring(err))
    end
    record(rt, fx, "<" .. op.n)
  end,
})

-- A coroutine resumed with the original, unbridged coroutine.resume: a
-- scheduler call there raises; a trace there marks the gap.
op_kind("unbridged", {
  weight = function() return RAW_RESUME ~= BRIDGED_RESUME and 1 or 0 end,
  gen = function(g) return new_op(g, "unbridged") end,
  sim = function(s, op) s:ev(">" .. op.n); s:ev("<" .. op.n) end,
  exec = function(rt, fx, op, shadow)
    record(rt, fx, ">" .. op.n)
    local frames
    local ok, err = RAW_RESUME(coroutine.create(function()
      frames = as.debug_backtrace()
      as.sleep(0)
    end))
    local want = "sleep: cannot suspend: this coroutine was resumed by an unbridged coroutine.resume"
    if ok or type(err) ~= "string" or not err:find(want, 1, true) then
      problem(rt, fx, op, "sleep in an unbridged coroutine gave %s, %s", tostring(ok), tostring(err))
    end
    -- the coroutine's own frame, then the gap, then the fork's frames
    local gap
    for i, fr in ipairs(frames or {}) do
      if fr.boundary == "unbridged" then gap = i; break end
    end
    if not gap then
      problem(rt, fx, op, "no 'unbridged' boundary in a trace taken in an unbridged coroutine")
    else
      local rest = {}
      for i = gap, #frames do rest[#rest + 1] = frames[i] end
      check_frames(rt, fx, op, "unbridged trace", rest, shadow, { fork = fx.id })
    end
    record(rt, fx, "<" .. op.n)
  end,
})

------------------------------------ channels, combinators, cancel, timeouts

-- Ops that never raise and never wait for another fork. A cancel victim is
-- made of these only (so it certainly reaches the point where it parks), and
-- so is the part of a channel child before its send/recv role.
local SAFE = {
  sleep = true, yield = true, ryield = true, cyield = true, pcall = true, call = true,
  coro = true, trace = true, tasks = true, gc = true, noyield = true, unbridged = true,
  timeout = true,
}
M.SAFE = SAFE

-- Channel values: deterministic per index; a table must arrive as the very
-- table sent, and false is a value like any other (only nil cannot be sent).
local VALUE_KINDS = { "int", "int", "str", "false", "table" }

-- A timeout that never fires, even under valgrind and `make gc-stress`: the
-- timer is set and removed, nothing waits for it.
M.LONG = 60
local CAPACITIES = { 0, 0, 1, 2, 8 }

local function chan_value(c, i)
  local kind = c.values[i]
  if kind == "int" then return i * 10
  elseif kind == "str" then return "s" .. i
  elseif kind == "false" then return false
  else return c.tables[i] end
end

local function expected_value_text(kind, i)
  if kind == "int" then return tostring(i * 10)
  elseif kind == "str" then return "s" .. i
  elseif kind == "false" then return "F"
  else return "T" end
end

local function value_text(c, i, v)
  if v == false then return "F" end
  if type(v) == "table" then return v == c.tables[i] and "T" or "T(another table)" end
  return tostring(v)
end

-- What a consumer and a producer record at the end of their role.
local function consumer_text(values)
  local parts = {}
  for i, kind in ipairs(values) do parts[i] = expected_value_text(kind, i) end
  parts[#parts + 1] = "closed"
  return "recv:" .. concat(parts, ",") .. "|reclose:false"
end

local function producer_text(values)
  return format("sent:%d|closed|sendclosed", #values)
end

-- Sends the values in order, then closes (ch:close() or a <close>
-- variable); a send after that must raise. `c`: the run's channel record.
local function produce(rt, fx, op, role, shadow, c)
  local ch = c.ch
  do
    -- "tbc" holds the channel in a <close> variable over the sends: when
    -- the root fails while this fork is live, run() abandons it and that
    -- close wakes a consumer still blocked in recv (this crashed once:
    -- spec/regress/abandon-close-wakes-without-scheduler_spec.lua)
    local held <close> = role.close == "tbc" and ch or nil
    for i = 1, #c.values do
      set_state(fx, "channel", shadow)
      fx.chan = { id = ch:id(), op = "send" }
      local ok = ch:send(chan_value(c, i), role.timeout)
      clear_state(fx)
      if ok ~= true then problem(rt, fx, op, "send of value %d returned %s", i, tostring(ok)) end
      if role.yields then
        set_state(fx, "yield", shadow)
        as.yield()
        clear_state(fx)
      end
    end
  end
  if role.close ~= "tbc" then
    local r = ch:close()
    if r ~= true then problem(rt, fx, op, "the first close() returned %s", tostring(r)) end
  end
  local closed = ch:is_closed() and "closed" or "open"
  local ok, err = pcall(ch.send, ch, 1)
  local want = format("send: channel #%d is closed", ch:id())
  local after = "sendclosed"
  if ok or type(err) ~= "string" or not err:find(want, 1, true) then
    after = format("send after close gave %s, %s", tostring(ok), tostring(err))
  end
  return format("sent:%d|%s|%s", #c.values, closed, after)
end

-- Receives every value in order, then nil, "closed"; recv on the drained,
-- closed channel answers at once, and close() again gives false.
local function consume(rt, fx, op, role, shadow, c)
  local ch, parts = c.ch, {}
  local function recv()
    set_state(fx, "channel", shadow)
    fx.chan = { id = ch:id(), op = "recv" }
    local v, why = ch:recv(role.timeout)
    clear_state(fx)
    return v, why
  end
  if role.style == "iter" or role.style == "call" then
    -- "iter": a closure; "call": `for v in ch` (ch() is ch:recv()). Never
    -- `for v in ch.recv, ch`, which handed each value back to recv as its
    -- timeout (spec/regress/channel-recv-iterator_spec.lua). A false value
    -- ends either loop, so these are chosen only without one.
    local i = 0
    if role.style == "iter" then
      for v in recv do
        i = i + 1
        parts[i] = value_text(c, i, v)
      end
    else
      set_state(fx, "channel", shadow)
      fx.chan = { id = ch:id(), op = "recv" }
      for v in ch do
        clear_state(fx)
        i = i + 1
        parts[i] = value_text(c, i, v)
        set_state(fx, "channel", shadow)
        fx.chan = { id = ch:id(), op = "recv" }
      end
      clear_state(fx)
    end
    parts[#parts + 1] = ch:is_closed() and "closed" or "open"
  else
    for i = 1, #c.values do
      local v, why = recv()
      parts[i] = v == nil and ("nil," .. tostring(why)) or value_text(c, i, v)
    end
    local v, why = recv()
    parts[#parts + 1] = (v == nil and why == "closed") and "closed"
                        or format("got %s,%s", tostring(v), tostring(why))
  end
  local v, why = ch:recv(0)
  if v ~= nil or why ~= "closed" then
    problem(rt, fx, op, "recv(0) on a closed, drained channel gave %s, %s", tostring(v), tostring(why))
  end
  return "recv:" .. concat(parts, ",") .. "|reclose:" .. tostring(ch:close())
end

-- A channel between this fork and a child it spawns for the purpose: one
-- produces the op's values, the other consumes them and checks their order.
-- The child's ops before its role never raise (SAFE), so the role happens.
op_kind("chan", {
  weight = function(gc, g) return (can_fork(g) and not gc.safe) and 4 or 0 end,
  gen = function(g, gc)
    local op = new_op(g, "chan")
    op.cap = g.rng:pick(CAPACITIES)
    op.values = {}
    local has_false = false
    for i = 1, g.rng:int(0, 5) do
      op.values[i] = g.rng:pick(VALUE_KINDS)
      if op.values[i] == "false" then has_false = true end
    end
    op.child_produces = g.rng:chance(0.5)
    local function role()
      return {
        timeout = g.rng:chance(0.25) and M.LONG or nil,   -- a timer that never fires
        close = g.rng:chance(0.3) and "tbc" or "close",
        yields = g.rng:chance(0.3),
        style = has_false and "loop" or g.rng:pick({ "loop", "iter", "call" }),
      }
    end
    op.own = role()
    op.named = g.rng:chance(0.3)
    local child = gen_special_fork(g, gc.spec, gc.visible, function(g2)
      local r = new_op(g2, "role")
      r.chan_op, r.values, r.produce, r.role = op.n, op.values, op.child_produces, role()
      return { r }
    end)
    op.child = child.id
    if g.rng:chance(0.6) then gc.visible[#gc.visible + 1] = child.id end
    return op
  end,
  sim = function(s, op)
    s:ev(">" .. op.n)
    s:ev(format("<%d:%s", op.n, op.child_produces and consumer_text(op.values) or producer_text(op.values)))
  end,
  exec = function(rt, fx, op, shadow)
    record(rt, fx, ">" .. op.n)
    local ch = as.channel(op.cap)
    if tostring(ch) ~= format("channel #%d (0/%d)", ch:id(), op.cap) or ch:cap() ~= op.cap
       or ch:len() ~= 0 or ch:is_closed() then
      problem(rt, fx, op, "a new channel of capacity %d is %s", op.cap, tostring(ch))
    end
    local c = { ch = ch, values = op.values, tables = {} }
    for i = 1, #op.values do c.tables[i] = { i } end
    rt.chans[op.n] = c
    spawn(rt, fx, op, op.child, op.named, false)
    local text
    if op.child_produces then text = consume(rt, fx, op, op.own, shadow, c)
    else text = produce(rt, fx, op, op.own, shadow, c) end
    record(rt, fx, format("<%d:%s", op.n, text))
  end,
})

-- The child's side of a chan op (made only by "chan").
op_kind("role", {
  weight = function() return 0 end,
  gen = function() error("role ops are made by chan ops") end,
  sim = function(s, op)
    s:ev(">" .. op.n)
    s:ev(format("<%d:%s", op.n, op.produce and producer_text(op.values) or consumer_text(op.values)))
  end,
  exec = function(rt, fx, op, shadow)
    record(rt, fx, ">" .. op.n)
    local c = rt.chans[op.chan_op]
    local text
    if op.produce then text = produce(rt, fx, op, op.role, shadow, c)
    else text = consume(rt, fx, op, op.role, shadow, c) end
    record(rt, fx, format("<%d:%s", op.n, text))
  end,
})

-- File descriptors the program owns: a UDP socket bound to 127.0.0.1 (one
-- fd; it can send itself a datagram). asyncstack's close_fd is core's until
-- init.lua exports it as as.close_fd.
local socket = require "socket"
local close_fd = as.close_fd or require("asyncstack.core").close_fd

local function udp_socket()
  local u = assert(socket.udp())
  assert(u:setsockname("127.0.0.1", 0))
  return u, math.tointeger(u:getfd())
end

-- wait_fd on an fd of the op's own: "ready" (a datagram is waiting),
-- "writable", "timeout" (nothing arrives: as.Timeout at once or in 1 ms).
local FD_STYLES = { "ready", "writable", "timeout" }

op_kind("fd", {
  weight = function() return 2 end,
  gen = function(g)
    local op = new_op(g, "fd")
    op.style = g.rng:pick(FD_STYLES)
    op.seconds = g.rng:pick({ 0, 0.001 })
    return op
  end,
  sim = function(s, op) s:ev(">" .. op.n); s:ev(format("<%d:%s", op.n, op.style)) end,
  exec = function(rt, fx, op, shadow)
    record(rt, fx, ">" .. op.n)
    local u, fd = udp_socket()
    local guard <close> = setmetatable({}, { __close = function() u:close() end })
    local text
    set_state(fx, "fd", shadow)
    fx.fdwait = format("fd %d (%s)", fd, op.style == "writable" and "write" or "read")
    if op.style == "ready" then
      local ip, port = u:getsockname()
      assert(u:sendto("ping", ip, port))
      local ok, r = pcall(as.wait_fd, fd, "r", M.LONG)
      clear_state(fx)
      local got = ok and u:receive()
      text = (ok and r == true and got == "ping") and "ready" or format("wait_fd gave %s, %s, %s", tostring(ok), tostring(r), tostring(got))
    elseif op.style == "writable" then
      local ok, r = pcall(as.wait_fd, u, "w")
      clear_state(fx)
      text = (ok and r == true) and "writable" or format("wait_fd gave %s, %s", tostring(ok), tostring(r))
    else
      local ok, e = pcall(as.wait_fd, fd, "r", op.seconds)
      clear_state(fx)
      local want = format("wait_fd: timed out waiting for fd %d to be readable", fd)
      if not ok and as.Timeout:is(e) and e:getMessage() == want then
        text = "timeout"
        check_frames(rt, fx, op, "trace of " .. want, e:getTrace(), shadow, { fork = fx.id })
      else
        text = format("wait_fd gave %s, %s", tostring(ok), tostring(e))
      end
    end
    record(rt, fx, format("<%d:%s", op.n, text))
  end,
})

-- An fd closed while this fork waits for it, by a child spawned for the
-- purpose: through asyncstack (close_fd) or behind its back (LuaSocket's
-- own close; the child then opens sockets until one gets the closed number
-- and waits on it: wait_fd finds the stale registration at once; the
-- poller's idle check, the other way a closed fd is found, takes up to a
-- second and is left to spec/regress/11-wait-fd-closed_spec.lua). Either way this fork's wait_fd raises "fd N was
-- closed while waiting for it". The fork tells the child over a channel
-- (capacity 1: the send never blocks) and parks without yielding in
-- between, so the child closes the fd only once the fork waits for it.
local CLOSE_STYLES = { "close_fd", "behind" }

-- The fdclose wait's timeout: none, as the child certainly closes the fd.
-- spec/random/oomprog.lua sets one: under a failing allocator the child may
-- die first, and an fd wait nobody ends is no deadlock run() could report.
M.fd_wait_limit = nil

op_kind("fdclose", {
  weight = function(gc, g) return (can_fork(g) and not gc.safe) and 2 or 0 end,
  gen = function(g, gc)
    local op = new_op(g, "fdclose")
    op.style = g.rng:pick(CLOSE_STYLES)
    op.named = g.rng:chance(0.3)
    local child = gen_special_fork(g, gc.spec, gc.visible, function(g2)
      local r = new_op(g2, "closer")
      r.fd_op, r.style = op.n, op.style
      return { r }
    end)
    op.child = child.id
    if g.rng:chance(0.6) then gc.visible[#gc.visible + 1] = child.id end
    return op
  end,
  sim = function(s, op) s:ev(">" .. op.n); s:ev(format("<%d:closed", op.n)) end,
  exec = function(rt, fx, op, shadow)
    record(rt, fx, ">" .. op.n)
    local u, fd = udp_socket()
    local c = { sync = as.channel(1), fd = fd, sock = u }
    local guard <close> = setmetatable({}, { __close = function() c.sock:close() end })
    rt.fds[op.n] = c
    spawn(rt, fx, op, op.child, op.named, false)
    c.sync:send(true)
    set_state(fx, "fd", shadow)
    fx.fdwait = format("fd %d (read)", fd)
    local ok, e = pcall(as.wait_fd, fd, "r", M.fd_wait_limit)
    clear_state(fx)
    local want = op.style == "close_fd" and "was closed while waiting for it (by close_fd"
                 or "was closed while waiting for it (behind asyncstack's back"
    local text
    if not ok and tostring(e):find(format("wait_fd: fd %d ", fd), 1, true) and tostring(e):find(want, 1, true) then
      text = "closed"
    else
      text = format("wait_fd gave %s, %s", tostring(ok), tostring(e))
    end
    record(rt, fx, format("<%d:%s", op.n, text))
  end,
})

-- The child's side of an fdclose op (made only by "fdclose").
op_kind("closer", {
  weight = function() return 0 end,
  gen = function() error("closer ops are made by fdclose ops") end,
  sim = function(s, op) s:ev(">" .. op.n); s:ev(format("<%d:closed it", op.n)) end,
  exec = function(rt, fx, op, shadow)
    record(rt, fx, ">" .. op.n)
    local c = rt.fds[op.fd_op]
    set_state(fx, "channel", shadow)
    fx.chan = { id = c.sync:id(), op = "recv" }
    c.sync:recv()
    clear_state(fx)
    local text = "closed it"
    if op.style == "close_fd" then
      local ok, e = close_fd(c.fd)
      c.sock:setfd(-1)               -- closed: its own close must not close a reused number
      if ok ~= true then text = format("close_fd gave %s, %s", tostring(ok), tostring(e)) end
    else
      c.sock:close()
      -- new sockets take the lowest free numbers: the closed one comes
      -- up once the lower free ones are taken (no yield in between)
      local opened, u, fd = {}, nil, nil
      repeat
        u, fd = udp_socket()
        opened[#opened + 1] = u
      until fd >= c.fd
      if fd == c.fd then
        set_state(fx, "fd", shadow)
        fx.fdwait = format("fd %d (write)", fd)
        local ok, r = pcall(as.wait_fd, fd, "w", M.LONG)
        clear_state(fx)
        if not (ok and r == true) then text = format("wait_fd on the reused fd gave %s, %s", tostring(ok), tostring(r)) end
      else
        text = format("fd %d was not reused (got %d)", c.fd, fd)
      end
      for _, s in ipairs(opened) do s:close() end
    end
    record(rt, fx, format("<%d:%s", op.n, text))
  end,
})

-- A timeout whose outcome is certain: recv on a channel nobody else has,
-- send on a full one (it must send nothing), wait_all of nothing (no wait).
local TIMEOUT_STYLES = { "recv", "send", "empty" }

op_kind("timeout", {
  weight = function() return 3 end,
  gen = function(g)
    local op = new_op(g, "timeout")
    op.style = g.rng:pick(TIMEOUT_STYLES)
    op.seconds = g.rng:pick({ 0, 0.001 })
    op.cap = g.rng:int(0, 2)
    return op
  end,
  sim = function(s, op)
    local want = op.style == "empty" and "empty" or op.style == "recv" and "Timeout"
                 or format("Timeout|len=%d|drained|closed", op.cap)
    s:ev(">" .. op.n)
    s:ev(format("<%d:%s", op.n, want))
  end,
  exec = function(rt, fx, op, shadow)
    record(rt, fx, ">" .. op.n)
    local text
    if op.style == "empty" then
      local r = as.wait_all({}, op.seconds)
      text = (type(r) == "table" and r.n == 0 and r[1] == nil) and "empty"
             or format("wait_all({}) gave %s", tostring(r))
    else
      local ch = as.channel(op.cap)
      if op.style == "send" then for i = 1, op.cap do ch:send(i) end end
      set_state(fx, "channel", shadow)
      fx.chan = { id = ch:id(), op = op.style }
      local ok, e
      if op.style == "recv" then ok, e = pcall(ch.recv, ch, op.seconds)
      else ok, e = pcall(ch.send, ch, "late", op.seconds) end
      clear_state(fx)
      local want = format("%s: timed out on channel #%d", op.style, ch:id())
      if not ok and as.Timeout:is(e) and e:getMessage() == want then
        text = "Timeout"
        check_frames(rt, fx, op, "trace of " .. want, e:getTrace(), shadow, { fork = fx.id })
      else
        text = format("%s gave %s, %s", op.style, tostring(ok), tostring(e))
      end
      if op.style == "send" then
        local parts = { text, "len=" .. ch:len() }
        local drained = true
        for i = 1, op.cap do
          if ch:recv() ~= i then drained = false end
        end
        parts[#parts + 1] = drained and "drained" or "not drained"
        ch:close()
        local v, why = ch:recv()
        parts[#parts + 1] = (v == nil and why == "closed") and "closed" or "not closed"
        text = concat(parts, "|")
      end
    end
    record(rt, fx, format("<%d:%s", op.n, text))
  end,
})

-- wait_all / wait_any over several visible forks (repeats allowed). At most
-- one distinct member fails, so what the call gives is certain: wait_all
-- fails with that member's failure (unprotected: the fork fails with it),
-- else gives every first result in order; wait_any gives some member's
-- results, or that member's failure (so it is always protected then).
op_kind("combo", {
  weight = function(gc) return (#gc.visible > 0 and not gc.safe) and 5 or 0 end,
  gen = function(g, gc)
    local op = new_op(g, "combo")
    op.mode = g.rng:chance(0.5) and "all" or "any"
    op.members = {}
    for _ = 1, g.rng:int(1, 4) do
      local t = g.rng:pick(gc.visible)
      if g.prog.forks[t].outcome.status == "failed" then
        op.failing = op.failing or t
        if op.failing == t then op.members[#op.members + 1] = t end
      else
        op.members[#op.members + 1] = t
      end
    end
    local distinct = {}
    for _, t in ipairs(op.members) do distinct[t] = true end
    op.distinct = 0
    for _ in pairs(distinct) do op.distinct = op.distinct + 1 end
    op.timeout = g.rng:chance(0.2) and M.LONG or nil      -- never fires
    local failure = op.failing and g.prog.forks[op.failing].outcome
    if op.mode == "all" then
      op.protected = g.rng:chance(0.5)
      if failure and not op.protected then
        op.raises, op.raises_wait = failure.tag, op.failing
      elseif failure then
        op.leave = "fail:" .. failure.tag
      else
        local r = {}
        for i, t in ipairs(op.members) do r[i] = "r" .. t end
        op.leave = "all:" .. concat(r, ",")
      end
    else
      op.protected = op.failing ~= nil or g.rng:chance(0.3)
      op.leave = "any"
    end
    return op
  end,
  sim = function(s, op)
    s:ev(">" .. op.n)
    if not op.raises then s:ev("<" .. op.n .. ":" .. op.leave) end
  end,
  exec = function(rt, fx, op, shadow)
    record(rt, fx, ">" .. op.n)
    local list, set = {}, {}
    for i, sid in ipairs(op.members) do
      list[i] = rt.strong[sid]
      set[sid] = true
    end
    local call = op.mode == "all" and as.wait_all or as.wait_any
    local name = "wait_" .. op.mode
    set_state(fx, "wait", shadow)
    fx.waiting_list = set
    fx.loose = op.distinct > 1 and (op.mode == "any" or op.failing ~= nil)
    local r
    if op.protected then
      r = pack(pcall(call, list, op.timeout))
      clear_state(fx)
      if not r[1] then
        if op.failing then
          observe(rt, op.failing, r[2], name .. " in fork " .. fx.spec.id)
        else
          problem(rt, fx, op, "%s raised %s, but no member fails", name, tostring(r[2]))
        end
        if as.Exception:is(r[2]) then rt.check_exception(rt, fx, op, r[2]) end
        record(rt, fx, format("<%d:%s", op.n, op.mode == "any" and "any" or ("fail:" .. tostring(tag_of(r[2])))))
        return
      end
      r = pack(table.unpack(r, 2, r.n))
    else
      r = pack(call(list, op.timeout))     -- a failure propagates from here
      clear_state(fx)
    end
    if op.mode == "all" then
      local t = r[1]
      local got = {}
      if type(t) ~= "table" or r.n ~= 1 or t.n ~= #list then
        problem(rt, fx, op, "wait_all gave %d values, n = %s", r.n, type(t) == "table" and tostring(t.n) or "?")
      else
        for i = 1, #list do got[i] = tostring(t[i]) end
      end
      record(rt, fx, format("<%d:all:%s", op.n, concat(got, ",")))
    else
      local i = r[1]
      local sid = math.type(i) == "integer" and op.members[i]
      if not sid then
        problem(rt, fx, op, "wait_any gave index %s for %d forks", tostring(i), #list)
      elseif results_text(r, 2) ~= expected_results_text(sid) then
        problem(rt, fx, op, "wait_any gave index %d (fork %d) with %s", i, sid, results_text(r, 2))
      end
      record(rt, fx, format("<%d:any", op.n))
    end
  end,
})

-- Cancellation. A cancel op spawns a victim fork of its own (no other op
-- sees it), and:
--   synced     the victim parks (sleep 60 s or forever, recv or send on a
--              channel nobody else has, pwait or wait_all for the canceller,
--              or a coroutine.yield at its own level: runnable, not blocked)
--              after telling the canceller over a channel; the canceller
--              probes it with waits that time out (or, when the victim
--              pwaits the canceller, that refuse the wait cycle), cancels it
--              and pwaits it;
--   self       the victim cancels itself, then parks: as.Cancelled at once;
--   unstarted  the canceller cancels the victim before it ever runs.
-- The park holds a <close> guard, which records "x<n>" exactly once as
-- as.Cancelled unwinds it. Parks may sit inside call, pcall, as.pcall,
-- coroutine.wrap or coroutine.resume; a pcall or resume catches the
-- Cancelled (the fork may), and then the victim goes on and ends done.
local PARKS = { "sleep", "sleepinf", "recv", "send", "waitparent", "waitall", "ryield" }
local WRAPS = { "call", "pcall", "aspcall", "wrap", "resume" }
-- a coroutine.yield at the fork's own level parks it runnable: no
-- coroutine of the program's around it, and no probe (a wait would let it run)
local LEVEL_WRAPS = { "call", "pcall", "aspcall" }
local CANCEL_VARIANTS = { "synced", "synced", "synced", "self", "unstarted" }
local PROBES = { "wait", "pwait", "pwait0", "wait_all", "wait_any" }

-- Wraps op `inner` in a call / pcall / coroutine op of its own.
local function wrap_op(g, inner, style)
  local kind = (style == "pcall" or style == "aspcall") and "pcall" or style == "call" and "call" or "coro"
  local op = new_op(g, kind)
  op.body = { inner, raises = inner.raises, raises_wait = inner.raises_wait }
  if kind == "pcall" then
    op.style = style
    op.caught = inner.raises
  elseif kind == "call" then
    op.raises = inner.raises
  else
    op.style = style
    if style == "wrap" then op.raises = inner.raises else op.caught = inner.raises end
  end
  return op
end

op_kind("park", {
  weight = function() return 0 end,
  gen = function() error("park ops are made by cancel ops") end,
  sim = function(s, op) s:ev(">" .. op.n); s:ev("x" .. op.n) end,
  exec = function(rt, fx, op, shadow)
    record(rt, fx, ">" .. op.n)
    local guard <close> = setmetatable({}, { __close = function() record(rt, fx, "x" .. op.n) end })
    local _ = guard
    if op.self then
      local r = as.current():cancel()
      if r ~= true then problem(rt, fx, op, "cancelling itself returned %s", tostring(r)) end
    end
    local parent = rt.handle(rt, fx.spec.parent)
    local ch
    if op.park == "recv" or op.park == "send" then ch = as.channel() end
    if op.park == "sleep" or op.park == "sleepinf" then
      set_state(fx, "sleep", shadow)
    elseif op.park == "ryield" then
      set_state(fx, "yield", shadow)
    elseif ch then
      set_state(fx, "channel", shadow)
      fx.chan = { id = ch:id(), op = op.park }
    else
      set_state(fx, "wait", shadow)
      if op.park == "waitparent" then fx.waiting_for = fx.spec.parent
      else fx.waiting_list = { [fx.spec.parent] = true } end
    end
    local sync = rt.sync[fx.spec.id]
    if sync then sync:send(true) end      -- buffered: no suspension until the park
    if op.park == "sleep" then as.sleep(M.LONG)
    elseif op.park == "sleepinf" then as.sleep(math.huge)
    elseif op.park == "recv" then ch:recv(op.timeout)
    elseif op.park == "send" then ch:send("never", op.timeout)
    elseif op.park == "waitparent" then as.pwait(parent)
    elseif op.park == "ryield" then coroutine.yield()
    else as.wait_all({ parent }) end
    clear_state(fx)
    problem(rt, fx, op, "the %s park returned: as.Cancelled was not raised", op.park)
  end,
})

-- What a timeout says about a parked victim (issue 12 item 11): its label
-- and "(<state> at <file>:<line of the park call>)". The park lines are
-- read from this file, so the model follows edits to the park op.
local PARK_WORDS = {
  sleep = "sleeping", sleepinf = "sleeping", recv = "waiting on a channel",
  send = "waiting on a channel", waitparent = "waiting on a fork",
  ryield = "runnable after a yield", wait_all = "waiting on a fork",
}
-- the park calls' lines (trimmed), as written in the park op below
local PARK_LINES = {
  sleep = 'if op.park == "sleep" then as.sleep(M.LONG)',
  sleepinf = 'elseif op.park == "sleepinf" then as.sleep(math.huge)',
  recv = 'elseif op.park == "recv" then ch:recv(op.timeout)',
  send = 'elseif op.park == "send" then ch:send("never", op.timeout)',
  waitparent = 'elseif op.park == "waitparent" then as.pwait(parent)',
  ryield = 'elseif op.park == "ryield" then coroutine.yield()',
  wait_all = 'else as.wait_all({ parent }) end',
}
local park_sites
local function park_site(park)
  if not park_sites then
    local src, n = debug.getinfo(1, "S"), 0
    park_sites = {}
    for text in io.lines(src.source:sub(2)) do
      n = n + 1
      local trimmed = text:match("^%s*(.-)%s*$")
      for kind, line in pairs(PARK_LINES) do
        if trimmed == line then park_sites[kind] = src.short_src .. ":" .. n end
      end
    end
  end
  local kind = PARK_WORDS[park] and park or "wait_all"
  return PARK_WORDS[kind] .. " at " .. assert(park_sites[kind], kind)
end

local function victim_text(h, op, index)
  local name = h:name()
  return format("fork #%d%s (%s%s)", h:id(), name and format(" '%s'", name) or "",
                index and format("index %d, ", index) or "", park_site(op.park))
end

local function probe_expect(op, probe)
  if op.park == "waitparent" and (probe == "wait" or probe == "pwait" or probe == "pwait0") then
    return "cycle"
  end
  return "Timeout"
end

-- A wait on the parked victim that cannot succeed: it times out, or
-- refuses to close the cycle the victim's pwait of this fork would make.
local function run_probe(rt, fx, op, shadow, h, probe)
  local id = h:id()
  set_state(fx, "wait", shadow)
  fx.loose = true
  local ok, e
  if probe == "wait" then
    fx.waiting_for = op.victim
    ok, e = pcall(as.wait, h, 0.001)
  elseif probe == "pwait" or probe == "pwait0" then
    fx.waiting_for = op.victim
    local r = pack(pcall(as.pwait, h, probe == "pwait0" and 0 or 0.001))
    if r[1] and r[2] == false then ok, e = false, r[3]
    elseif r[1] then ok, e = true, r[3]
    else ok, e = false, r[2] end
  else
    fx.waiting_list = { [op.victim] = true }
    ok, e = pcall(probe == "wait_all" and as.wait_all or as.wait_any,
                  probe == "wait_all" and { h } or { h, h }, 0.001)
  end
  clear_state(fx)
  if not ok and as.Timeout:is(e) then
    local want
    if probe == "wait_all" then want = "wait_all: timed out waiting for " .. victim_text(h, op, 1)
    elseif probe == "wait_any" then
      want = format("wait_any: timed out waiting for %s, %s", victim_text(h, op, 1), victim_text(h, op, 2))
    else want = format("%s: timed out waiting for %s", probe == "wait" and "wait" or "pwait", victim_text(h, op)) end
    if e:getMessage() ~= want then problem(rt, fx, op, "%s: %q, expected %q", probe, e:getMessage(), want) end
    check_frames(rt, fx, op, "trace of a " .. probe .. " timeout", e:getTrace(), shadow, { fork = fx.id })
    return "Timeout"
  elseif not ok and type(e) == "string" and e:find("would close a wait cycle", 1, true) then
    local want = format("%s: waiting for fork #%d would close a wait cycle: fork #%d -> fork #%d -> fork #%d",
                        probe == "wait" and "wait" or "pwait", id, fx.id, id, fx.id)
    if not e:find(want, 1, true) then problem(rt, fx, op, "%s: %q, expected %q", probe, e, want) end
    return "cycle"
  end
  return format("%s gave %s, %s", probe, tostring(ok), tostring(e))
end

op_kind("cancel", {
  weight = function(gc, g) return (can_fork(g) and not gc.safe) and 3 or 0 end,
  gen = function(g, gc)
    local op = new_op(g, "cancel")
    op.variant = g.rng:pick(CANCEL_VARIANTS)
    op.park = g.rng:pick(PARKS)
    op.named = g.rng:chance(0.3)
    local victim
    if op.variant == "unstarted" then
      victim = new_spec(g, gc.spec)
      victim.unstarted, victim.body = true, {}
      victim.outcome = { status = "cancelled" }
    else
      victim = gen_special_fork(g, gc.spec, {}, function(g2)
        local park = new_op(g2, "park")
        park.park, park.self, park.raises = op.park, op.variant == "self", "C"
        if park.park == "recv" or park.park == "send" then park.timeout = g2.rng:chance(0.3) and M.LONG or nil end
        local inner = park
        local wraps = op.park == "ryield" and LEVEL_WRAPS or WRAPS
        for _ = 1, g2.rng:int(0, 2) do inner = wrap_op(g2, inner, g2.rng:pick(wraps)) end
        return { inner }
      end, { post_safe = true })
    end
    victim.victim = true
    op.victim = victim.id
    op.outcome = victim.outcome.status
    op.probes = {}
    if op.variant == "synced" and op.park ~= "ryield" then
      for i = 1, g.rng:int(0, 2) do op.probes[i] = g.rng:pick(PROBES) end
    end
    return op
  end,
  sim = function(s, op)
    s:ev(">" .. op.n)
    for _, probe in ipairs(op.probes) do s:ev(format("t%d:%s:%s", op.n, probe, probe_expect(op, probe))) end
    s:ev(format("<%d:%s", op.n, op.outcome))
  end,
  exec = function(rt, fx, op, shadow)
    record(rt, fx, ">" .. op.n)
    local vid = op.victim
    local sync
    if op.variant == "synced" then
      sync = as.channel(1)
      rt.sync[vid] = sync
    end
    local h = spawn(rt, fx, op, vid, op.named, false)
    if op.variant == "unstarted" then
      local r = h:cancel()
      if r ~= true then problem(rt, fx, op, "cancel() of a fork not started returned %s", tostring(r)) end
      if h:status() ~= "runnable" then problem(rt, fx, op, "a cancelled fork not started is %s", h:status()) end
    elseif op.variant == "synced" then
      set_state(fx, "channel", shadow)
      fx.chan = { id = sync:id(), op = "recv" }
      local v = sync:recv()
      clear_state(fx)
      if v ~= true then problem(rt, fx, op, "the victim's signal was %s", tostring(v)) end
      local want = (op.park == "sleep" or op.park == "sleepinf") and "sleeping"
                   or op.park == "ryield" and "runnable" or "waiting"
      if h:status() ~= want then problem(rt, fx, op, "the parked victim is %s, expected %s", h:status(), want) end
      for _, probe in ipairs(op.probes) do
        record(rt, fx, format("t%d:%s:%s", op.n, probe, run_probe(rt, fx, op, shadow, h, probe)))
        if h:status() ~= want then problem(rt, fx, op, "after a %s, the victim is %s", probe, h:status()) end
      end
      local r = h:cancel()
      if r ~= true then problem(rt, fx, op, "cancel() of a parked fork returned %s", tostring(r)) end
      if h:status() ~= "runnable" then problem(rt, fx, op, "a cancelled parked fork is %s", h:status()) end
    end
    set_state(fx, "wait", shadow)
    fx.waiting_for = vid
    local r = pack(as.pwait(h))
    clear_state(fx)
    local got
    if r[1] == true then
      got = "done"
      if results_text(r, 2) ~= expected_results_text(vid) then
        problem(rt, fx, op, "the victim returned %s", results_text(r, 2))
      end
    elseif as.Cancelled:is(r[2]) then
      got = "cancelled"
      local want = format("fork #%d was cancelled%s", h:id(), op.variant == "unstarted" and " before it started" or "")
      if r[2]:getMessage() ~= want then problem(rt, fx, op, "Cancelled says %q, expected %q", r[2]:getMessage(), want) end
    else
      got = "failed:" .. tostring(r[2])
    end
    if h:status() ~= got then problem(rt, fx, op, "pwait gave %s, the victim's status is %s", got, h:status()) end
    local again = h:cancel()
    if again ~= false then problem(rt, fx, op, "cancel() of an ended fork returned %s", tostring(again)) end
    record(rt, fx, format("<%d:%s", op.n, got))
  end,
})

------------------------------------------------------------- generation

-- EXTENSION: the weights of a program; new kinds take their weight() here.
-- In a SAFE context (gc.safe) only the SAFE kinds may appear.
local function pick_kind(g, gc)
  local weights = {}
  for _, kind in ipairs(ORDER) do
    local w = (gc.safe and not SAFE[kind]) and 0 or OPS[kind].weight(gc, g)
    weights[kind] = math.floor(w * (g.bias[kind] or 1))
  end
  return g.rng:weighted(ORDER, weights)
end

-- A block of ops; stops at the first op that raises (the rest would be dead
-- code). `marker` names the function the block runs in (for traces).
function gen_block(g, gc, marker)
  local inner = setmetatable({
    depth = gc.depth + 1,
    coro = gc.coro + (marker == "coro" and 1 or 0),
    shadow = push(gc.shadow, marker),
  }, { __index = gc })
  local block = {}
  local n = g.rng:int(SHAPE.block[1], inner.depth >= 3 and SHAPE.deep_block or SHAPE.block[2])
  for _ = 1, n do
    local op = OPS[pick_kind(g, inner)].gen(g, inner)
    block[#block + 1] = op
    if op.raises then
      block.raises, block.raises_wait = op.raises, op.raises_wait
      break
    end
  end
  return block
end

-- A fork spec: id (spec id: 1 is run()'s root), its body, and what it must
-- do: outcome {status = "done"}, {status = "failed", tag =, wait = spec id
-- of the fork whose failure it re-raised} or, for a cancel op's victim,
-- {status = "cancelled"} (its body raises the pseudo-tag "C").
function new_spec(g, parent, inherited)
  local prog = g.prog
  prog.nforks = prog.nforks + 1
  local spec = { id = prog.nforks, parent = parent and parent.id }
  prog.forks[spec.id] = spec
  local gc = {
    spec = spec, visible = copy(inherited or {}), depth = 0, coro = 0,
    shadow = { "root" }, max_depth = g.max_depth,
  }
  return spec, gc
end

-- Appends up to n random ops to `ops`, stopping after one that raises.
local function gen_ops(g, gc, n, ops)
  for _ = 1, n do
    local op = OPS[pick_kind(g, gc)].gen(g, gc)
    ops[#ops + 1] = op
    if op.raises then
      ops.raises, ops.raises_wait = op.raises, op.raises_wait
      return
    end
  end
end

local function set_outcome(spec, ops)
  spec.body = ops
  if ops.raises == "C" then
    spec.outcome = { status = "cancelled" }
  elseif ops.raises then
    spec.outcome = { status = "failed", tag = ops.raises, wait = ops.raises_wait }
  else
    spec.outcome = { status = "done" }
  end
end

function gen_fork(g, parent, inherited)
  local spec, gc = new_spec(g, parent, inherited)
  local ops = {}
  local n = spec.id == 1 and g.rng:int(SHAPE.root_body[1], SHAPE.root_body[2])
            or g.rng:int(SHAPE.body[1], SHAPE.body[2])
  gen_ops(g, gc, n, ops)
  set_outcome(spec, ops)
  return spec
end

-- A fork built around fixed ops: 0-2 SAFE ops, then core(g, gc) (a list
-- of ops), then, unless the core raised, up to 2 more ops (SAFE ones only
-- with opts.post_safe).
function gen_special_fork(g, parent, inherited, core, opts)
  local spec, gc = new_spec(g, parent, inherited)
  local safe = setmetatable({ safe = true }, { __index = gc })
  local ops = {}
  gen_ops(g, safe, g.rng:int(0, 2), ops)
  assert(not ops.raises, "a SAFE op raised")
  for _, op in ipairs(core(g, gc)) do
    ops[#ops + 1] = op
    if op.raises then
      ops.raises, ops.raises_wait = op.raises, op.raises_wait
      break
    end
  end
  if not ops.raises then gen_ops(g, (opts and opts.post_safe) and safe or gc, g.rng:int(0, 2), ops) end
  set_outcome(spec, ops)
  return spec
end

-- Expected events of each fork, in order (see the sim functions).
local Sim = {}
Sim.__index = Sim
function Sim:ev(e) self.events[#self.events + 1] = e end

function sim_block(s, block)
  for _, op in ipairs(block) do
    local raised = OPS[op.kind].sim(s, op)
    if op.raises then return op.raises end
    assert(raised == nil, "sim raised where gen did not")
  end
  return nil
end

local function simulate(prog)
  for _, spec in ipairs(prog.forks) do
    local s = setmetatable({ events = { "start" }, coro = {} }, Sim)
    local raised = sim_block(s, spec.body)
    assert(raised == (spec.outcome.status == "cancelled" and "C" or spec.outcome.tag) or spec.unstarted,
           "simulation and generation disagree")
    if not raised then s:ev("end") end
    spec.expected = spec.unstarted and {} or s.events
  end
end

-- generate(seed [, opts]) -> program. opts.bias: kind -> weight factor.
function M.generate(seed, opts)
  local rng = M.rng(seed)
  local g = {
    rng = rng, nops = 0, ntags = 0,
    max_forks = rng:int(SHAPE.forks[1], SHAPE.forks[2]),
    max_depth = rng:int(SHAPE.depth[1], SHAPE.depth[2]),
    bias = (opts and opts.bias) or {},
  }
  local prog = { seed = seed, forks = {}, nforks = 0, origins = {} }
  g.prog = prog
  gen_fork(g, nil, {})
  simulate(prog)
  return prog
end

------------------------------------------------------------ description

local function describe_op(op)
  local parts = { format("#%d %s", op.n, op.kind) }
  if op.kind == "sleep" then parts[#parts + 1] = format("%gms", op.seconds * 1000)
  elseif op.kind == "fork" then
    parts[#parts + 1] = "-> fork " .. op.child
    if op.forget then parts[#parts + 1] = "(forgotten)" end
    if op.named then parts[#parts + 1] = "(named)" end
  elseif op.kind == "wait" then
    parts[1] = format("#%d %s", op.n, op.protected and "pwait" or "wait")
    parts[#parts + 1] = "fork " .. op.target
  elseif op.kind == "error" then parts[#parts + 1] = format("%s E%d", op.style, op.tag)
  elseif op.kind == "chan" then
    parts[#parts + 1] = format("cap %d, %d values (%s), child fork %d %s; this fork %s (%s%s%s)",
      op.cap, #op.values, concat(op.values, ","), op.child, op.child_produces and "produces" or "consumes",
      op.child_produces and "consumes" or "produces", op.child_produces and op.own.style or op.own.close,
      op.own.timeout and ", timeout" or "", op.own.yields and ", yields" or "")
  elseif op.kind == "role" then
    parts[#parts + 1] = format("%s for chan op #%d (%s%s%s)", op.produce and "produce" or "consume",
      op.chan_op, op.produce and op.role.close or op.role.style, op.role.timeout and ", timeout" or "",
      op.role.yields and ", yields" or "")
  elseif op.kind == "combo" then
    local m = {}
    for i, t in ipairs(op.members) do m[i] = tostring(t) end
    parts[1] = format("#%d %swait_%s", op.n, op.protected and "protected " or "", op.mode)
    parts[#parts + 1] = "forks " .. concat(m, ",")
  elseif op.kind == "cancel" then
    parts[#parts + 1] = format("%s victim fork %d, park %s", op.variant, op.victim, op.park)
    if #op.probes > 0 then parts[#parts + 1] = "probes " .. concat(op.probes, ",") end
    parts[#parts + 1] = "=> " .. op.outcome
  elseif op.kind == "park" then
    parts[#parts + 1] = op.park .. (op.self and " (cancels itself first)" or "")
  elseif op.kind == "timeout" then
    parts[#parts + 1] = format("%s %gms cap %d", op.style, op.seconds * 1000, op.cap)
  elseif op.kind == "fd" then
    parts[#parts + 1] = op.style == "timeout" and format("timeout %gms", op.seconds * 1000) or op.style
  elseif op.kind == "fdclose" then
    parts[#parts + 1] = format("%s by child fork %d", op.style, op.child)
  elseif op.kind == "closer" then
    parts[#parts + 1] = format("%s for fdclose op #%d", op.style, op.fd_op)
  elseif op.style then parts[#parts + 1] = tostring(op.style) end
  local function tag_name(tag) return tag == "C" and "Cancelled" or ("E" .. tag) end
  if op.raises then parts[#parts + 1] = "=> raises " .. tag_name(op.raises) end
  if op.caught then parts[#parts + 1] = "=> catches " .. tag_name(op.caught) end
  return concat(parts, " ")
end

local function describe_block(out, block, indent)
  for _, op in ipairs(block) do
    out[#out + 1] = indent .. describe_op(op)
    if op.body then describe_block(out, op.body, indent .. "  ") end
  end
end

function M.describe(prog)
  local out = { format("program seed %d: %d forks", prog.seed, prog.nforks) }
  for _, spec in ipairs(prog.forks) do
    out[#out + 1] = format("fork %d%s%s: %s", spec.id,
      spec.parent and (" (child of " .. spec.parent .. ")") or " (run's root)",
      spec.forget and " (forgotten)" or "",
      spec.outcome.status == "failed" and ("fails with E" .. spec.outcome.tag) or spec.outcome.status)
    describe_block(out, spec.body, "  ")
  end
  return concat(out, "\n")
end

------------------------------------------------------------ interpreter

local MARKERS = {}   -- function -> marker name; filled below

function record(rt, fx, e)
  if rt.mutate then
    e = rt.mutate(fx, e)
    if e == nil then return end
  end
  local list = rt.events[fx.spec.id]
  list[#list + 1] = e
  if rt.verbose then
    rt.verbose(format("%8.3fms  fork %d (#%d)  %s", (as.now() - rt.t0) * 1000, fx.spec.id, fx.id, e))
  end
end

function problem(rt, fx, op, fmt, ...)
  local where = format("fork %d%s: ", fx and fx.spec.id or 0, op and (" op #" .. op.n) or "")
  rt.problems[#rt.problems + 1] = where .. format(fmt, ...)
end

-- A waiter saw the failure of fork `spec_id` as `err`.
function observe(rt, spec_id, err, how)
  rt.delivered[spec_id] = (rt.delivered[spec_id] or 0) + 1
  local want = rt.prog.forks[spec_id].outcome.tag
  if tag_of(err) ~= want then
    problem(rt, nil, nil, "%s saw fork %d's failure as %s (tag %s), expected E%s", how, spec_id,
            tostring(err), tostring(tag_of(err)), tostring(want))
  end
end

local ROOT_SHADOW = { "root" }

function fork_root(rt, spec_id, token)
  local spec = rt.prog.forks[spec_id]
  local me = as.current()
  local fx = { spec = spec, id = me and me:id() }
  rt.fx[spec_id] = fx
  if spec_id == 1 then
    rt.ids[fx.id] = 1
    rt.runtime_id[1] = fx.id
    rt.strong[1] = me
  end
  record(rt, fx, "start")
  if token ~= spec_id * 7 then problem(rt, fx, nil, "the fork got argument %s, expected %d", tostring(token), spec_id * 7) end
  if me == nil or rt.ids[me:id()] ~= spec_id then problem(rt, fx, nil, "as.current() is not this fork") end
  me = nil
  exec_block(rt, fx, spec.body, ROOT_SHADOW)
  record(rt, fx, "end")
  return fork_results(spec_id)
end

function call_body(rt, fx, op, shadow)
  exec_block(rt, fx, op.body, shadow)
  return true
end

function pcall_body(rt, fx, op, shadow)
  exec_block(rt, fx, op.body, shadow)
  return true
end

function coro_body(rt, fx, op, shadow)
  exec_block(rt, fx, op.body, shadow)
  return DONE
end

MARKERS[fork_root] = "root"
MARKERS[call_body] = "call"
MARKERS[pcall_body] = "pcall"
MARKERS[coro_body] = "coro"

function exec_block(rt, fx, block, shadow)
  for i = 1, #block do
    local op = block[i]
    OPS[op.kind].exec(rt, fx, op, shadow)
  end
end

------------------------------------------------------------------ traces

local function marker_list(frames, from, to)
  local out = {}
  for i = from, to do
    local m = MARKERS[frames[i].func]
    if m then out[#out + 1] = m end
  end
  return out
end

local function reversed(list)
  local out = {}
  for i = #list, 1, -1 do out[#out + 1] = list[i] end
  return out
end

local function count(list, v)
  local n = 0
  for _, x in ipairs(list) do if x == v then n = n + 1 end end
  return n
end

local function frames_text(frames)
  local out = {}
  for i, fr in ipairs(frames) do
    out[#out + 1] = format("    %d %s:%s %s fork=%s%s%s%s", i, tostring(fr.file), tostring(fr.line),
      MARKERS[fr.func] or tostring(fr["function"] or fr.what), tostring(fr.fork),
      fr.boundary and (" [" .. fr.boundary .. "]") or "", fr.root and " root" or "",
      fr.spawn_site and " spawn-site" or "")
  end
  return concat(out, "\n")
end

-- Checks that `frames` (innermost first) start with this fork's own calls,
-- `shadow` (outermost first), ending at the fork's root function; returns
-- the index of the root frame. opts.fork: the runtime id every frame of
-- that part must carry; opts.exact: no frame after the root.
function check_frames(rt, fx, op, what, frames, shadow, opts)
  local root
  for i, fr in ipairs(frames) do
    if fr.root then root = i; break end
  end
  local function fail(fmt, ...)
    problem(rt, fx, op, "%s: %s\n  expected calls (innermost first): %s\n  frames:\n%s",
            what, format(fmt, ...), concat(reversed(shadow), " < "), frames_text(frames))
  end
  if not root then fail("no frame is marked as the fork's root") return nil end
  if frames[root].func ~= fork_root then fail("the root frame is not the fork's root function") end
  local got = marker_list(frames, 1, root)
  local want = reversed(shadow)
  if concat(got, " < ") ~= concat(want, " < ") then
    fail("the program's own calls are %s", concat(got, " < "))
  end
  local coros = 0
  for i = 1, root do
    local fr = frames[i]
    if fr.fork ~= opts.fork then fail("frame %d belongs to fork %s", i, tostring(fr.fork)) break end
    if fr.boundary == "coroutine" then coros = coros + 1
    elseif fr.boundary and i > 1 then fail("frame %d has boundary %s", i, fr.boundary) end
    if type(fr.source) == "string" and fr.source:find("asyncstack/[%w_]+%.lua$") then
      fail("frame %d is asyncstack's own %s", i, fr.source)
    end
  end
  if coros ~= count(shadow, "coro") then
    fail("%d coroutine boundaries for %d coroutines", coros, count(shadow, "coro"))
  end
  if opts.exact and #frames ~= root then fail("%d frames after the root", #frames - root) end
  return root
end

-- After the root of fork fx (runtime id `id`), an async trace goes on with
-- the fork waiting for it, else its spawner, else run()'s caller.
local function check_continuation(rt, fx, op, what, frames, root)
  local fr = frames[root + 1]
  local spec = fx.spec
  -- the forks waiting for this one; a loose wait (timeout, combinator) may
  -- already be over in the scheduler while the interpreter still says wait
  local waiters, firm = {}, nil
  for sid, other in pairs(rt.fx) do
    if waits_for(other, spec.id) and rt.live(rt, sid) then
      waiters[#waiters + 1] = other
      if not other.loose then firm = other end
    end
  end
  local function fail(fmt, ...)
    problem(rt, fx, op, "%s: after the root: %s\n  frames:\n%s", what, format(fmt, ...), frames_text(frames))
  end
  if not fr then fail("%s", "nothing") return end
  if fr.from_fork ~= fx.id then fail("from_fork is %s", tostring(fr.from_fork)) end
  if fr.boundary == "awaited" and #waiters > 0 then
    local w = rt.ids[fr.fork] and rt.fx[rt.ids[fr.fork]]
    if not (w and waits_for(w, spec.id)) then
      fail("awaited by fork #%s, which does not wait for this one", tostring(fr.fork))
    end
  elseif firm then
    fail("boundary %s, expected awaited (fork %d waits)", tostring(fr.boundary), firm.spec.id)
  elseif spec.id == 1 then
    if fr.boundary ~= "run" then fail("boundary %s, expected run", tostring(fr.boundary)) end
  else
    if fr.boundary ~= "spawned" then fail("boundary %s, expected spawned", tostring(fr.boundary)) end
    if fr.fork ~= rt.runtime_id[spec.parent] then
      fail("spawned by fork #%s, expected #%s", tostring(fr.fork), tostring(rt.runtime_id[spec.parent]))
    end
  end
end

-- The trace op: one of several ways of taking a trace of the running code.
local function check_trace(rt, fx, op, shadow)
  local style = op.style
  if style == "backtrace" then
    check_frames(rt, fx, op, "debug_backtrace()", as.debug_backtrace(), shadow, { fork = fx.id, exact = true })
  elseif style == "async" then
    local frames = as.debug_backtrace { async = true }
    local root = check_frames(rt, fx, op, "debug_backtrace{async=true}", frames, shadow, { fork = fx.id })
    if root then check_continuation(rt, fx, op, "debug_backtrace{async=true}", frames, root) end
  elseif style == "limit" then
    local frames = as.debug_backtrace { limit = 2 }
    if #frames > 2 then problem(rt, fx, op, "limit = 2 gave %d frames", #frames) end
    local full = as.debug_backtrace()
    for i = 1, #frames do
      if frames[i].func ~= full[i].func then problem(rt, fx, op, "limit changed frame %d", i) end
    end
  elseif style == "traceback" then
    local text = as.traceback("msg")
    local want_coros = count(shadow, "coro")
    local _, got_coros = text:gsub("\n\t%[coroutine resumed at ", "")
    local _, roots = text:gsub(format("%%(root of fork #%d[ )]", fx.id), "")
    if text:sub(1, 21) ~= "msg\nstack traceback:\n" or got_coros ~= want_coros or roots ~= 1
       or not text:find("%(root of fork #%d+[^\n]*$") then
      problem(rt, fx, op, "traceback with %d coroutines, fork #%d:\n%s", want_coros, fx.id, text)
    end
  else
    -- fork_backtrace of another live fork blocked at a known point
    for sid, other in pairs(rt.fx) do
      if other ~= fx and other.state and rt.live(rt, sid) then
        local h = rt.handle(rt, sid)
        if h then
          check_frames(rt, fx, op, "fork_backtrace(fork " .. sid .. ")", as.fork_backtrace(h),
                       other.blocked_shadow, { fork = other.id, exact = true })
        end
        break
      end
    end
    -- and of this fork itself
    check_frames(rt, fx, op, "fork_backtrace(self)", as.fork_backtrace(as.current()), shadow,
                 { fork = fx.id, exact = true })
  end
end

-- An exception seen by a catcher: its trace is that of where the error was
-- created (Exception) or raised (plain error), whatever it went through.
local function check_exception(rt, fx, op, e)
  local tag = tag_of(e)
  local origin = tag and rt.prog.origins[tag]
  if not origin then return end
  check_frames(rt, fx, op, format("trace of exception E%d", tag), e:getTrace(), origin.shadow,
               { fork = rt.runtime_id[origin.fork] })
end

-- as.tasks() (and as.dump()) against what the interpreter knows.
function check_tasks(rt, fx, op, shadow)
  local tasks = as.tasks()
  local seen = {}
  for _, t in ipairs(tasks) do
    local sid = rt.ids[t.id]
    seen[t.id] = true
    if not sid then
      problem(rt, fx, op, "as.tasks() lists fork #%d, which this program did not create", t.id)
    else
      local other = rt.fx[sid]
      if sid == fx.spec.id then
        if t.status ~= "running" then problem(rt, fx, op, "the running fork's task says %s", t.status) end
        check_frames(rt, fx, op, "as.tasks() backtrace of the running fork", t.backtrace, shadow,
                     { fork = fx.id, exact = true })
      elseif not other then
        if t.status ~= "runnable" or #t.backtrace ~= 0 then
          problem(rt, fx, op, "fork %d has not started, but its task says %s with %d frames",
                  sid, t.status, #t.backtrace)
        end
      elseif not other.state then
        problem(rt, fx, op, "fork %d is listed (%s) but is neither blocked nor ended", sid, t.status)
      else
        local ok = { sleep = { sleeping = true, runnable = true },
                     wait = { waiting = true, runnable = true },
                     channel = { waiting = true, runnable = true },
                     fd = { waiting = true, runnable = true },
                     yield = { runnable = true } }
        if not ok[other.state][t.status] then
          problem(rt, fx, op, "fork %d is in %s, but its task says %s", sid, other.state, t.status)
        end
        if t.status == "waiting" and other.state == "wait" and other.waiting_list then
          -- a combinator: the forks it still waits for, each one of its own
          local ids = type(t.waiting_for) == "table" and t.waiting_for or {}
          if #ids == 0 then problem(rt, fx, op, "fork %d waits in a combinator, its task lists no fork", sid) end
          for _, id in ipairs(ids) do
            if not other.waiting_list[rt.ids[id]] then
              problem(rt, fx, op, "fork %d's combinator does not wait for #%d, its task says it does", sid, id)
            end
          end
        elseif t.status == "waiting" and other.state == "wait"
               and (t.waiting_for or {})[1] ~= rt.runtime_id[other.waiting_for] then
          problem(rt, fx, op, "fork %d waits for fork %d, its task says #%s", sid, other.waiting_for,
                  tostring((t.waiting_for or {})[1]))
        elseif t.status == "waiting" and other.state == "channel"
               and t.waiting_for ~= format("channel #%d (%s)", other.chan.id, other.chan.op) then
          problem(rt, fx, op, "fork %d is blocked in %s on channel #%d, its task says %s", sid,
                  other.chan.op, other.chan.id, tostring(t.waiting_for))
        elseif t.status == "waiting" and other.state == "fd" and t.waiting_for ~= other.fdwait then
          problem(rt, fx, op, "fork %d waits for %s, its task says %s", sid, other.fdwait, tostring(t.waiting_for))
        end
        local kind = t.await and t.await.kind
        if kind ~= other.state then
          problem(rt, fx, op, "fork %d is in %s, its task's await kind is %s", sid, other.state, tostring(kind))
        end
        check_frames(rt, fx, op, "as.tasks() backtrace of fork " .. sid, t.backtrace, other.blocked_shadow,
                     { fork = other.id, exact = true })
      end
      if t.spawned_by ~= (sid ~= 1 and rt.runtime_id[rt.prog.forks[sid].parent] or nil) then
        problem(rt, fx, op, "fork %d's task says spawned by %s", sid, tostring(t.spawned_by))
      end
    end
  end
  -- every fork created and not ended is listed; none that ended is
  for sid, rid in pairs(rt.runtime_id) do
    local live = rt.live(rt, sid)
    if live ~= nil and live ~= (seen[rid] == true) then
      problem(rt, fx, op, "fork %d is %s but as.tasks() %s it", sid, live and "live" or "ended",
              seen[rid] and "lists" or "does not list")
    end
    local events = rt.events[sid]
    if events and events[#events] == "end" and seen[rid] then
      problem(rt, fx, op, "fork %d has returned but as.tasks() lists it", sid)
    end
    if not rt.fx[sid] and live == false and not rt.prog.forks[sid].unstarted then
      problem(rt, fx, op, "fork %d never started but has ended", sid)
    end
  end
  if op.dump then
    local text = as.dump()
    local n = tonumber(text:match("^scheduler: (%d+) forks?"))
    -- the dump also lists failed forks nobody has retrieved yet (as.tasks
    -- does not): one "[failed" block per fork the header counts as failed
    local failed = tonumber(text:match("^scheduler: %d+ forks? %([^)\n]-(%d+) failed%)")) or 0
    local blocks = 0
    for _ in text:gmatch("\nfork #%d+[^\n]* %[failed ") do blocks = blocks + 1 end
    if blocks ~= failed then problem(rt, fx, op, "as.dump() counts %d failed forks, shows %d", failed, blocks) end
    if n == nil or n - failed ~= #tasks then
      problem(rt, fx, op, "as.dump() counts %s forks (%d failed), as.tasks() %d", tostring(n), failed, #tasks)
    end
    for _, t in ipairs(tasks) do
      if not text:find(format("\nfork #%d[ \n]", t.id)) then
        problem(rt, fx, op, "as.dump() does not show fork #%d", t.id)
      end
    end
  end
end

-- run(program [, opts]) -> result: events, problems, outcome of run().
-- opts.verbose: function(line) for a running log; opts.at_trace:
-- function(rt, fx, op) called at each trace op; opts.strict: no known-bug
-- allowances; opts.inject: fault injection for the checker's own spec.
function M.run(prog, opts)
  opts = opts or {}
  local rt = {
    prog = prog, events = {}, fx = {}, ids = {}, runtime_id = {},
    strong = {}, weak = setmetatable({}, { __mode = "v" }),
    delivered = {}, reports = {}, problems = {},
    sync = {}, chans = {},     -- cancel victims' park signals, chan ops' channels
    fds = {},                  -- fdclose ops' fds
    verbose = opts.verbose, strict = opts.strict, t0 = as.now(),
    check_trace = check_trace, check_exception = check_exception,
    at_trace = opts.at_trace,  -- function(rt, fx, op) at each trace op (memory walker spec)
  }
  for _, spec in ipairs(prog.forks) do rt.events[spec.id] = {} end
  function rt.handle(_, sid) return rt.strong[sid] or rt.weak[sid] end
  -- true / false, or nil when the handle is gone (a forgotten fork collected)
  function rt.live(_, sid)
    local h = rt.handle(rt, sid)
    if not h then return nil end
    local st = h:status()
    return st ~= "done" and st ~= "failed" and st ~= "cancelled"
  end
  if opts.inject then opts.inject(rt) end

  local resume_before = coroutine.resume
  as.on_unhandled(function(e, info)
    -- collections may run inside this handler and finalize more failed
    -- forks: the scheduler queues their reports and delivers them after
    -- (spec/regress/unhandled-report-queue_spec.lua, fixed)
    local sid = rt.ids[info.id]
    rt.reports[#rt.reports + 1] = { sid = sid, tag = tag_of(e), is_exception = as.Exception:is(e) }
    if as.Exception:is(e) then check_exception(rt, nil, nil, e) end
    if rt.verbose then rt.verbose(format("unhandled report: fork %s (#%d) E%s", tostring(sid), info.id, tostring(tag_of(e)))) end
  end)
  local results = pack(pcall(as.run, fork_root, rt, 1, 7))
  rt.run_ok = results[1]
  rt.run_results = results
  rt.after_run = {
    current = as.current(), ntasks = #as.tasks(), bridge_gone = coroutine.resume == resume_before,
  }
  -- forgotten forks collected now must not be reported again
  rt.reports_at_end = #rt.reports
  collectgarbage()
  collectgarbage()
  as.on_unhandled(nil)
  return rt
end

------------------------------------------------------------------ checks

local function is_prefix(short, long)
  if #short > #long then return false end
  for i = 1, #short do if short[i] ~= long[i] then return false end end
  return true
end

-- check(rt) -> list of problems (empty when every invariant holds)
function M.check(rt)
  local prog = rt.prog
  local problems = {}
  for _, p in ipairs(rt.problems) do problems[#problems + 1] = p end
  local function bad(fmt, ...) problems[#problems + 1] = format(fmt, ...) end

  local root = prog.forks[1]
  local root_failed = root.outcome.status == "failed"
  -- run()'s own outcome
  if root_failed then
    if rt.run_ok then bad("run() returned, but the root fork should fail with E%d", root.outcome.tag)
    else
      local e = rt.run_results[2]
      if not as.Exception:is(e) then bad("run() raised a %s, not an exception", type(e)) end
      if tag_of(e) ~= root.outcome.tag then
        bad("run() raised %s, expected E%d", tostring(e), root.outcome.tag)
      end
      rt.delivered[1] = (rt.delivered[1] or 0) + 1
      if as.Exception:is(e) then check_exception(rt, nil, nil, e) end
    end
  else
    if not rt.run_ok then
      bad("run() raised %s", tostring(rt.run_results[2]))
    elseif results_text(rt.run_results, 2) ~= expected_results_text(1) then
      bad("run() returned %s", results_text(rt.run_results, 2))
    end
  end
  if rt.after_run.current ~= nil then bad("as.current() is not nil after run()") end
  if rt.after_run.ntasks ~= 0 then bad("as.tasks() lists %d forks after run()", rt.after_run.ntasks) end
  if not rt.after_run.bridge_gone then bad("coroutine.resume is still bridged after run()") end

  -- each fork: its events, its status
  local status = {}
  for _, spec in ipairs(prog.forks) do
    local sid = spec.id
    local got, want = rt.events[sid], spec.expected
    local h = rt.handle(rt, sid)
    local created = rt.runtime_id[sid] ~= nil
    local st = h and h:status()
    local full = #got == #want and is_prefix(got, want)
    if not created then
      if #got > 0 then bad("fork %d recorded events but was never created", sid) end
    elseif not is_prefix(got, want) then
      bad("fork %d recorded events that the program does not imply:\n  got  %s\n  want %s",
          sid, concat(got, " "), concat(want, " "))
    elseif st == nil then
      -- a forgotten fork collected after it ended: it ran to its end
      if not full and not root_failed then
        bad("fork %d was collected after only %d of its %d events", sid, #got, #want)
      end
      status[sid] = full and spec.outcome.status or "cancelled"
      if full and spec.outcome.status == "failed" and root_failed and spec.outcome.wait then
        status[sid] = "unknown"   -- blocked in its last wait, or failed there
      end
    elseif st == "cancelled" and spec.outcome.status == "cancelled" then
      -- a cancel op's victim: all its events (the guard's last), unless
      -- the root's failure abandoned it first
      if not full and not root_failed then
        bad("fork %d was cancelled after %d of its %d events:\n  got  %s\n  want %s", sid, #got, #want,
            concat(got, " "), concat(want, " "))
      end
      status[sid] = st
    elseif st == "cancelled" then
      if not root_failed then bad("fork %d was cancelled, but the root did not fail", sid) end
      if full and want[#want] == "end" then bad("fork %d returned but is cancelled", sid) end
      status[sid] = st
    elseif st ~= spec.outcome.status then
      bad("fork %d ended %s, expected %s (events %s)", sid, st, spec.outcome.status, concat(got, " "))
    elseif not full then
      bad("fork %d ended %s after %d of its %d events:\n  got  %s\n  want %s", sid, st, #got, #want,
          concat(got, " "), concat(want, " "))
    else
      status[sid] = st
    end
  end

  -- deliveries through a waiter's own failure (an unprotected wait whose
  -- error ended the waiter) and through catchers are recorded at run time
  -- (observe); a failing wait that ended its fork is counted here.
  -- EXTENSION (done): a wait_all that re-raised a member's failure counts as
  -- a wait; a protected wait_all/wait_any observes at run time; a cancel
  -- victim's as.Cancelled is no failure (it is never reported: status
  -- cancelled, no reports allowed); timeouts deliver nothing.
  local maybe = {}
  for _, spec in ipairs(prog.forks) do
    local w = spec.outcome.wait
    if status[spec.id] == "failed" and w then
      rt.delivered[w] = (rt.delivered[w] or 0) + 1
    elseif status[spec.id] == "unknown" and w then
      maybe[w] = true
    end
  end

  -- every failure seen exactly once: by waiters, or by one report
  local reports = {}
  for i, r in ipairs(rt.reports) do
    if r.sid == nil then bad("an unhandled report for a fork this program did not create")
    else
      reports[r.sid] = (reports[r.sid] or 0) + 1
      if i > rt.reports_at_end then bad("fork %d was reported after run() had ended", r.sid) end
      if not r.is_exception then bad("fork %d was reported with a non-exception", r.sid) end
      if r.tag ~= prog.forks[r.sid].outcome.tag then
        bad("fork %d was reported with E%s, expected E%s", r.sid, tostring(r.tag), tostring(prog.forks[r.sid].outcome.tag))
      end
    end
  end
  for _, spec in ipairs(prog.forks) do
    local sid = spec.id
    local n, seen = reports[sid] or 0, rt.delivered[sid] or 0
    local st = status[sid]
    if st == "failed" then
      if seen > 0 and n > 0 then bad("fork %d's failure was seen by %d waiters and reported too", sid, seen) end
      -- a waiter whose own fate is unknown may or may not have seen it
      local lost_ok = n == 0 and maybe[sid]
      if seen == 0 and n ~= 1 and not lost_ok then bad("fork %d's failure was reported %d times, seen by no waiter", sid, n) end
    elseif st == "unknown" then
      if n > 1 then bad("fork %d was reported %d times", sid, n) end
    elseif n > 0 then
      bad("fork %d was reported unhandled, but its status is %s", sid, tostring(st))
    end
    if st ~= "failed" and st ~= "unknown" and seen > 0 then
      bad("fork %d's failure was seen, but its status is %s", sid, tostring(st))
    end
  end
  return problems
end

-- One program, generated, run and checked: ok, problems, rt.
function M.run_seed(seed, opts)
  local prog = M.generate(seed, opts)
  local rt = M.run(prog, opts)
  local problems = M.check(rt)
  return #problems == 0, problems, rt, prog
end

M.REPLAY = "LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' lua5.4 tools/replay.lua %d"

return M
