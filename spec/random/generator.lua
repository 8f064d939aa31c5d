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
--                      with the status it implies (done / failed); when the
--                      root failed, the others may instead be cancelled
--                      part-way (a prefix of their events), never otherwise;
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
-- real, 0-2 ms), so no invariant depends on the interleaving.
--
-- EXTENSION POINT (channels, cancel, timeouts, wait_all/wait_any, wait_fd):
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
-- ErrorException's original value.
local function tag_of(value)
  if as.Exception:is(value) then
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
local gen_block, gen_fork, sim_block, exec_block
local record, observe, problem, check_frames, check_tasks
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
    local h = as.fork(fork_root, rt, op.child, op.child * 7)
    rt.ids[h:id()] = op.child
    rt.runtime_id[op.child] = h:id()
    if op.forget then rt.weak[op.child] = h else rt.strong[op.child] = h end
    if op.named then
      h:name("f" .. op.child)
      if tostring(h) ~= format("fork #%d (f%d)", h:id(), op.child) then
        problem(rt, fx, op, "tostring(fork) is %q", tostring(h))
      end
    elseif tostring(h) ~= format("fork #%d", h:id()) then
      problem(rt, fx, op, "tostring(fork) is %q", tostring(h))
    end
    if h:status() ~= "runnable" then problem(rt, fx, op, "a new fork is %s", h:status()) end
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
      fx.state, fx.waiting_for = nil, nil
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
      fx.state, fx.waiting_for = nil, nil
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
    fx.state, fx.waiting_for = nil, nil    -- a wait may have raised
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
        fx.state, fx.waiting_for = nil, nil
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

------------------------------------------------------------- generation

-- EXTENSION: the weights of a program; new kinds take their weight() here.
local function pick_kind(g, gc)
  local weights = {}
  for _, kind in ipairs(ORDER) do
    local w = OPS[kind].weight(gc, g)
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
-- do: outcome {status = "done"} or {status = "failed", tag =, wait = spec id
-- of the fork whose failure it re-raised}. EXTENSION: cancel adds outcomes.
function gen_fork(g, parent, inherited)
  local prog = g.prog
  prog.nforks = prog.nforks + 1
  local spec = { id = prog.nforks, parent = parent and parent.id }
  prog.forks[spec.id] = spec
  local gc = {
    spec = spec, visible = copy(inherited or {}), depth = 0, coro = 0,
    shadow = { "root" }, max_depth = g.max_depth,
  }
  local ops = {}
  local n = spec.id == 1 and g.rng:int(SHAPE.root_body[1], SHAPE.root_body[2])
            or g.rng:int(SHAPE.body[1], SHAPE.body[2])
  for _ = 1, n do
    local op = OPS[pick_kind(g, gc)].gen(g, gc)
    ops[#ops + 1] = op
    if op.raises then
      ops.raises, ops.raises_wait = op.raises, op.raises_wait
      break
    end
  end
  spec.body = ops
  if ops.raises then
    spec.outcome = { status = "failed", tag = ops.raises, wait = ops.raises_wait }
  else
    spec.outcome = { status = "done" }
  end
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
    assert(raised == spec.outcome.tag, "simulation and generation disagree")
    if not raised then s:ev("end") end
    spec.expected = s.events
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
  elseif op.style then parts[#parts + 1] = tostring(op.style) end
  if op.raises then parts[#parts + 1] = "=> raises E" .. op.raises end
  if op.caught then parts[#parts + 1] = "=> catches E" .. op.caught end
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
      spec.outcome.status == "failed" and ("fails with E" .. spec.outcome.tag) or "done")
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
  local waiter
  for sid, other in pairs(rt.fx) do
    if other.state == "wait" and other.waiting_for == spec.id and rt.live(rt, sid) then
      waiter = other
    end
  end
  local function fail(fmt, ...)
    problem(rt, fx, op, "%s: after the root: %s\n  frames:\n%s", what, format(fmt, ...), frames_text(frames))
  end
  if not fr then fail("%s", "nothing") return end
  if fr.from_fork ~= fx.id then fail("from_fork is %s", tostring(fr.from_fork)) end
  if waiter then
    if fr.boundary ~= "awaited" then fail("boundary %s, expected awaited (fork %d waits)", tostring(fr.boundary), waiter.spec.id) end
    if rt.ids[fr.fork] == nil or rt.fx[rt.ids[fr.fork]].waiting_for ~= spec.id then
      fail("awaited by fork #%s, which does not wait for this one", tostring(fr.fork))
    end
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
                     yield = { runnable = true } }
        if not ok[other.state][t.status] then
          problem(rt, fx, op, "fork %d is in %s, but its task says %s", sid, other.state, t.status)
        end
        if t.status == "waiting" and (t.waiting_for or {})[1] ~= rt.runtime_id[other.waiting_for] then
          problem(rt, fx, op, "fork %d waits for fork %d, its task says #%s", sid, other.waiting_for,
                  tostring((t.waiting_for or {})[1]))
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
    if not rt.fx[sid] and live == false then
      problem(rt, fx, op, "fork %d never started but has ended", sid)
    end
  end
  if op.dump then
    local text = as.dump()
    local n = tonumber(text:match("^scheduler: (%d+) forks?"))
    if n ~= #tasks then problem(rt, fx, op, "as.dump() counts %s forks, as.tasks() %d", tostring(n), #tasks) end
    for _, t in ipairs(tasks) do
      if not text:find(format("\nfork #%d[ \n]", t.id)) then
        problem(rt, fx, op, "as.dump() does not show fork #%d", t.id)
      end
    end
  end
end

-- run(program [, opts]) -> result: events, problems, outcome of run().
-- opts.verbose: function(line) for a running log; opts.strict: no known-bug
-- allowances; opts.inject: fault injection for the checker's own spec.
function M.run(prog, opts)
  opts = opts or {}
  local rt = {
    prog = prog, events = {}, fx = {}, ids = {}, runtime_id = {},
    strong = {}, weak = setmetatable({}, { __mode = "v" }),
    delivered = {}, reports = {}, problems = {},
    verbose = opts.verbose, strict = opts.strict, t0 = as.now(),
    check_trace = check_trace, check_exception = check_exception,
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
  -- EXTENSION: cancel / timeouts change who can see a failure.
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
