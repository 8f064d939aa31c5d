/*
** walk.c: walking the async stack into a raw capture (backtrace.h).
**
** A walk emits, innermost first: the Lua frames of a fork's innermost
** coroutine, then of each coroutine below it on the fork's async stack down
** to the fork's root function (the KPHP rule: that is where a fork's trace
** ends). With `async`, it follows the chain rule (chain.h) to the fork that
** waits for this one, or to the spawn site of the fork, and from the root
** fork of run() to the code that called run(). Forks already visited end
** the walk, so a cycle cannot loop.
**
** Frames of our own C functions and of our Lua front end are never emitted.
** The first frame of each segment carries a boundary (render.h).
**
** Linear in depth. lua_getstack(th, level) starts from the top each time,
** so calling it per level is quadratic (issue 12 item 4). lua_getinfo
** reads only ar->i_ci, so the walk takes level 0 from lua_getstack and
** steps to the caller through CallInfo.previous, at the offset the running
** release's layout states (lualayout.c, the one place Lua's internal
** layouts are written down), stopping at base_ci (the only CallInfo whose
** previous is NULL). as_walk_check_stepping verifies that layout once against
** lua_getstack; when it does not hold, the walk falls back to lua_getstack
** per level. A walk that keeps only the first and last frames (`ends`)
** keeps the last ones in a ring of C records (thread, CallInfo) and reads
** them once at the end: the frames it skips are stepped over once, never
** read.
**
** Assumption: CallInfo pointers are held across the allocations of the
** capture. The walked threads cannot run meanwhile (the current one runs
** the walk, the coroutines below it are "normal", suspended forks are
** parked and the bridge refuses to resume them); only a finalizer that
** resumes one of them with an unbridged resume, during the walk, could
** change a chain under it. (Stopping the collector for the walk would rule
** that out too, but a memory error would then leave it stopped.)
*/
#include <stddef.h>
#include <string.h>
#include "backtrace.h"
#include "chain.h"
#include "render.h"
#include "lualayout.h"
#include "wait.h"
#include <lauxlib.h>

#define RING_MAX AS_RENDER_TAIL
/* Frames held back before the capture table is made. */
#define PEND_MAX 16

/* A frame found but not stored yet. */
typedef struct frame_rec {
  lua_State *th;            /* NULL for a spawn-site frame */
  struct CallInfo *ci;      /* its CallInfo (stepping), and */
  int level;                /* its level in th (lua_getstack fallback) */
  as_fork *fork;            /* the fork it runs in, or NULL */
  as_fork *spawned;         /* spawn site: the fork it spawned */
  lua_Integer gone_id;      /* spawn site: id of an ended spawner */
  int flags;
  int boundary;             /* enum as_boundary */
  as_fork *from;
  const as_waitnode *via;
  int has_info;             /* line below is read already; the names are
                               read by store() only (a frame that is hidden,
                               skipped or only searched for a rethrow's site
                               never pays lua_getinfo's "n") */
  int line;
} frame_rec;

typedef struct walker {
  lua_State *L;             /* the capture is built on this stack */
  as_state *st;
  as_sched *s;              /* NULL outside run() */
  int out;                  /* absolute index of the raw capture */
  int n;                    /* frames stored */
  int visited;              /* visible frames accepted (stored or ringed) */
  int skip, limit, async, ends, self;
  int stopped;              /* the limit was reached */
  int omitted;
  int hidden_tailcall;      /* a hidden frame was tail-called */
  int boundary;             /* pending boundary for the next frame */
  as_fork *boundary_from;
  const as_waitnode *boundary_via;
  frame_rec held;           /* the last visible frame of the thread being walked */
  int has_held;
  int made;                 /* the capture table exists (else nil at `out`) */
  int site_slot;            /* > 0: looking for the site (see find_site):
                               the stack slot of its function, once found */
  int site_found;
  long site_line;
  lua_Integer site_fork;
  int has_last;             /* the fork of the frame stored last: */
  const as_fork *last_fork; /* the fork slots are stored only where it */
  lua_Integer last_id;      /* changes (backtrace.h) */
  int npend;                /* frames accepted, not stored yet */
  frame_rec pend[PEND_MAX]; /* they: the table is made once their number is
                               known, with room for them (no regrowth, no
                               presized room left unused) */
  frame_rec ring[RING_MAX]; /* `ends` walk: the last frames, oldest at ring_start */
  int ring_len, ring_start, skipped;
} walker;

/* ------------------------------------------------------- level stepping */

static struct CallInfo *ci_previous(const as_state *st, const struct CallInfo *ci) {
  struct CallInfo *p;
  memcpy(&p, (const char *)ci + st->ci_previous_offset, sizeof p);
  return p;
}

/* Moves ar (at `*level` of th) to the caller's level; 0 at the bottom. */
static int step(const as_state *st, lua_State *th, lua_Debug *ar, int *level) {
  (*level)++;
  if (st->ci_stepping) {
    struct CallInfo *p = ci_previous(st, ar->i_ci);
    if (p == NULL || ci_previous(st, p) == NULL) return 0;   /* p is base_ci */
    ar->i_ci = p;
    return 1;
  }
  return lua_getstack(th, *level, ar);
}

void as_walk_check_stepping(lua_State *L, as_state *st) {
  lua_Debug a, b;
  int level = 0;
  const as_lualayout *lay =
    as_lualayout_for_release(as_lualayout_parse_ident(as_lualayout_running_ident()));
  st->ci_stepping = st->ci_stepping_ok = 0;
  if (lay == NULL) return;             /* a release with no stated layout */
  st->ci_previous_offset = lay->ci_previous;
  if (!lua_getstack(L, 0, &a)) return;
  for (;;) {
    struct CallInfo *p = ci_previous(st, a.i_ci);
    if (!lua_getstack(L, level + 1, &b)) {
      /* the caller of the last level must be base_ci */
      st->ci_stepping = st->ci_stepping_ok = p != NULL && ci_previous(st, p) == NULL && level > 0;
      return;
    }
    if (p != b.i_ci) return;
    a = b;
    level++;
  }
}

/* Levels of th from the one ar is at, inclusive. */
static int count_levels(const as_state *st, lua_State *th, lua_Debug *ar, int level) {
  int n = 1;
  while (step(st, th, ar, &level)) n++;
  return n;
}

/* ------------------------------------------------------------- storing */

static void push_fork_ud(walker *w, as_fork *f) {
  if (w->s != NULL) as_sched_push_fork(w->L, w->s, f);
  else lua_pushnil(w->L);
}

/* Stores the value on top as `slot` of frame w->n; nil and false are left
** out (an absent slot reads as false, 0 or NULL: backtrace.h), so a frame
** costs only the slots it uses. */
static void raw_set(walker *w, int slot) {
  if (lua_toboolean(w->L, -1))
    lua_rawseti(w->L, w->out, (lua_Integer)w->n * AS_RAW_STRIDE + slot);
  else
    lua_pop(w->L, 1);
}

/* Stores fork f's id and name in the slots given; nothing for no fork.
** (The name's chars are the fork's name_cstr: the text shows a name up to
** its first NUL, as the renderer prints it.) */
static void raw_set_fork(walker *w, as_fork *f, int id_slot, int name_slot) {
  lua_State *L = w->L;
  if (f == NULL) return;
  lua_pushinteger(L, f->id);
  raw_set(w, id_slot);
  if (f->name_cstr != NULL) {
    lua_pushstring(L, f->name_cstr);
    raw_set(w, name_slot);
  }
}

static void raw_set_str(walker *w, int slot, const char *v) {
  if (v != NULL && *v != '\0') {
    lua_pushstring(w->L, v);
    raw_set(w, slot);
  }
}

static void raw_set_int(walker *w, int slot, lua_Integer v) {
  if (v != 0) {
    lua_pushinteger(w->L, v);
    raw_set(w, slot);
  }
}

/* Pushes the spawning function of fork f (fork.h), or nil. */
static void push_spawn_func(walker *w, as_fork *f) {
  push_fork_ud(w, f);
  if (!lua_isnil(w->L, -1)) {
    as_fork_push_spawn_func(w->L, -1);
    lua_remove(w->L, -2);
  }
}

/* Writes record r as frame w->n of the capture. */
static void store(walker *w, const frame_rec *r) {
  lua_State *L = w->L;
  lua_Integer via = 0;
  int line = 0;
  const char *name = NULL, *namewhat = NULL;
  if (!lua_checkstack(L, 8) || (r->th != NULL && r->th != L && !lua_checkstack(r->th, 2))) {
    w->stopped = 1;
    return;
  }
  if (r->th != NULL) {
    lua_Debug ar;
    if (w->st->ci_stepping) ar.i_ci = r->ci;
    else lua_getstack(r->th, r->level, &ar);
    lua_getinfo(r->th, r->has_info ? "nf" : "lnf", &ar);
    if (r->th != L) lua_xmove(r->th, L, 1);
    line = r->has_info ? r->line : ar.currentline;
    name = ar.name;          /* the prototype's strings: the frame keeps them */
    namewhat = ar.namewhat;
  } else {
    push_spawn_func(w, r->spawned);
    line = as_fork_spawn_line(r->spawned);
  }
  raw_set(w, AS_RAW_FUNC);
  if (line > 0) raw_set_int(w, AS_RAW_LINE, line);
  raw_set_str(w, AS_RAW_NAME, name);
  raw_set_str(w, AS_RAW_NAMEWHAT, namewhat);
  if (!w->has_last || r->fork != w->last_fork || (r->fork == NULL && r->gone_id != w->last_id)) {
    /* a new segment: its fork (see backtrace.h) */
    w->has_last = 1;
    w->last_fork = r->fork;
    w->last_id = r->fork != NULL ? r->fork->id : r->gone_id;
    if (r->fork == NULL && r->gone_id > 0) {
      raw_set_int(w, AS_RAW_FORK, r->gone_id);
      /* the name it had (kept by the run: as_sched_push_spawner_name) */
      if (w->s != NULL && as_fork_sched(w->st, r->spawned) == w->s) as_sched_push_spawner_name(L, w->s, r->spawned);
      else lua_pushnil(L);
      raw_set(w, AS_RAW_FORK_NAME);
    } else if (r->fork == NULL) {
      lua_pushinteger(L, 0);                /* no fork: stored all the same */
      lua_rawseti(L, w->out, (lua_Integer)w->n * AS_RAW_STRIDE + AS_RAW_FORK);
    } else {
      raw_set_fork(w, r->fork, AS_RAW_FORK, AS_RAW_FORK_NAME);
    }
  }
  raw_set_fork(w, r->from, AS_RAW_FROM, AS_RAW_FROM_NAME);
  if (r->via != NULL && as_wait_node_mode(r->via) != AS_WAIT_ONE)
    via = (lua_Integer)r->via->index * 4 +
          (as_wait_node_mode(r->via) == AS_WAIT_ALL ? AS_VIA_WAIT_ALL : AS_VIA_WAIT_ANY);
  raw_set_int(w, AS_RAW_INFO, AS_RAW_INFO_OF(r->flags, r->boundary, via));
  if (r->flags & AS_RFRAME_ROOT) {
    push_spawn_func(w, r->fork);
    raw_set(w, AS_RAW_HOLDER);
  }
  w->n++;
}

/* Pushes the function of record r and returns its line (0: none). */
static long push_rec_function(walker *w, const frame_rec *r) {
  lua_State *L = w->L;
  if (r->th == NULL) {
    push_spawn_func(w, r->spawned);
    return as_fork_spawn_line(r->spawned);
  } else {
    lua_Debug ar;
    if (!lua_checkstack(r->th, 2)) {
      lua_pushnil(L);
      return 0;
    }
    if (w->st->ci_stepping) ar.i_ci = r->ci;
    else lua_getstack(r->th, r->level, &ar);
    lua_getinfo(r->th, "f", &ar);
    if (r->th != L) lua_xmove(r->th, L, 1);
    return r->has_info ? r->line : 0;
  }
}

/* The site of the walk: its first frame, in capture order, whose function
** is a Lua function and which has a line (exception.lua's site_of). Looks
** at the records held back; its function goes to site_slot. */
static void find_site(walker *w) {
  int i;
  if (!lua_checkstack(w->L, 4)) return;       /* no site: the capture is made */
  for (i = 0; i < w->npend && !w->site_found; i++) {
    lua_State *L = w->L;
    long line = push_rec_function(w, &w->pend[i]);
    if (line > 0 && lua_isfunction(L, -1) && !lua_iscfunction(L, -1)) {
      lua_replace(L, w->site_slot);
      w->site_found = 1;
      w->site_line = line;
      w->site_fork = w->pend[i].fork != NULL ? w->pend[i].fork->id : w->pend[i].gone_id;
    } else {
      lua_pop(L, 1);
    }
  }
}

/* Stores the frames held back, making the capture table first if it is not
** made yet: with room for them, and for `more` frames known to follow (or,
** when more is -1, for as many again: the walk goes on). */
static void flush(walker *w, int more) {
  int i;
  if (w->site_slot > 0) find_site(w);
  if (!w->made) {
    int frames = w->npend + (more < 0 ? w->npend : more);
    lua_createtable(w->L, frames * AS_RAW_STRIDE, 1);    /* "n"; the other counts are rare */
    lua_replace(w->L, w->out);
    w->made = 1;
  }
  for (i = 0; i < w->npend; i++) store(w, &w->pend[i]);
  w->npend = 0;
}

/* A visible frame is accepted: stored now, or kept in the ring. */
static void accept(walker *w, const frame_rec *r) {
  w->visited++;
  if (w->ends > 0 && w->visited > w->ends) {
    if (w->ring_len < w->ends) {
      w->ring[(w->ring_start + w->ring_len++) % RING_MAX] = *r;
    } else {
      w->ring[w->ring_start] = *r;
      w->ring_start = (w->ring_start + 1) % RING_MAX;
      w->skipped++;
    }
  } else {
    w->pend[w->npend++] = *r;
    if (w->npend == PEND_MAX) flush(w, -1);
  }
  if (w->limit > 0 && w->visited >= w->limit) w->stopped = 1;
}

/* A new record with the pending boundary and tail-call mark. */
static void take_pending(walker *w, frame_rec *r) {
  r->boundary = w->boundary;
  r->from = w->boundary_from;
  r->via = w->boundary_via;
  if (w->hidden_tailcall) r->flags |= AS_RFRAME_AFTER_TAILCALL;
  w->boundary = AS_BOUND_NONE;
  w->boundary_from = NULL;
  w->boundary_via = NULL;
  w->hidden_tailcall = 0;
}

static void set_boundary(walker *w, int kind, as_fork *from) {
  w->boundary = kind;
  w->boundary_from = from;
  w->boundary_via = NULL;
}

/* ------------------------------------------------------------- walking */

/* Whether the function on top of th is ours (hidden). */
static int is_ours(walker *w, lua_State *th) {
  lua_Debug ar;
  if (lua_iscfunction(th, -1)) return as_is_internal_function(th, w->st, -1);
  lua_pushvalue(th, -1);
  lua_getinfo(th, ">S", &ar);
  return as_is_internal_source(w->st, ar.source);
}

/* Accepts the visible frames of coroutine th (part of fork f, or NULL);
** with mark_root, flags the bottom visible frame as the fork's root. The
** last visible frame is held back until the next one shows it is not the
** bottom one. */
static void walk_thread(walker *w, lua_State *th, as_fork *f, int mark_root) {
  lua_Debug ar;
  int level = 0, held_level = -1, self = w->self && th == w->L;
  const void *last_fn = NULL;
  int last_ours = 0;
  w->self = 0;
  w->has_held = 0;
  if (!lua_getstack(th, 0, &ar)) return;
  do {
    int ours, tailcall;
    const void *fn;
    if (!lua_checkstack(th, 3)) { w->stopped = 1; break; }
    lua_getinfo(th, "flt", &ar);    /* l: read once, for store() and the site search */
    fn = lua_topointer(th, -1);
    tailcall = ar.istailcall;
    if (fn != last_fn || fn == NULL) {
      last_fn = fn;
      last_ours = is_ours(w, th);
    }
    ours = last_ours && !(self && level == 0);
    lua_pop(th, 1);
    if (ours) {
      /* hidden; if it was tail-called, the frames that called it are gone,
      ** and the next visible frame must say so */
      if (tailcall) w->hidden_tailcall = 1;
      continue;
    }
    if (w->skip > 0) {
      w->skip--;
      continue;
    }
    if (w->has_held) {
      accept(w, &w->held);
      w->has_held = 0;
      if (w->stopped) {
        w->omitted += level - held_level - 1 + count_levels(w->st, th, &ar, level);
        return;
      }
    }
    memset(&w->held, 0, sizeof w->held);
    w->held.th = th;
    w->held.ci = ar.i_ci;
    w->held.level = level;
    w->held.fork = f;
    w->held.flags = tailcall ? AS_RFRAME_TAILCALL : 0;
    w->held.has_info = 1;
    w->held.line = ar.currentline;
    take_pending(w, &w->held);
    w->has_held = 1;
    held_level = level;
  } while (step(w->st, th, &ar, &level));
  if (w->has_held) {
    /* as before the split: a root reached exactly at the limit is not marked */
    if (mark_root && !(w->limit > 0 && w->visited + 1 >= w->limit))
      w->held.flags |= AS_RFRAME_ROOT;
    accept(w, &w->held);
    w->has_held = 0;
    /* `level` is now the number of levels: count the hidden ones below */
    if (w->stopped) w->omitted += level - held_level - 1;
  }
}

/* The coroutines of fork f's async stack, from index `top` down to its root. */
static void walk_fork_stack(walker *w, as_fork *f, int top) {
  int i;
  for (i = top; i >= 0 && !w->stopped; i--) {
    if (i < top) set_boundary(w, AS_BOUND_COROUTINE, NULL);
    walk_thread(w, f->astack.frames[i].thread, f, i == 0);
  }
}

/* One synthetic frame for the place that spawned fork f: the spawning
** function (kept by the fork) at the line recorded at spawn time. */
static void spawn_site(walker *w, as_fork *f, as_fork *spawner) {
  frame_rec r;
  int has_func;
  push_spawn_func(w, f);
  has_func = !lua_isnil(w->L, -1);
  lua_pop(w->L, 1);
  if (!has_func) return;
  set_boundary(w, AS_BOUND_SPAWNED, f);
  memset(&r, 0, sizeof r);
  r.spawned = f;
  r.fork = spawner;
  r.gone_id = f->spawner_id;
  r.flags = AS_RFRAME_SPAWN_SITE;
  take_pending(w, &r);
  accept(w, &r);
}

/* The fork after f by the chain rule, through awaited and spawned links;
** NULL where the chain leaves the forks or the spawner has ended. */
static as_fork *chain_step(const as_sched *s, const as_fork *f) {
  as_chain_link link = as_chain_next(s, f);
  return link.kind == AS_LINK_RUN ? NULL : link.next;
}

/* How many distinct forks the chain from f visits before it ends or comes
** back to one it visited (the chain rule cannot loop while wait refuses
** cycles, but a walk must not trust that): mu + lambda by Brent's cycle
** detection, so no fork carries a mark for it (issue 17: every byte of a
** fork counts). */
static unsigned long chain_distinct(const as_sched *s, as_fork *f) {
  as_fork *tortoise = f, *hare = chain_step(s, f);
  unsigned long power = 1, lambda = 1, n = 1, mu = 0, i;
  while (hare != NULL && hare != tortoise) {
    if (power == lambda) {
      tortoise = hare;
      power *= 2;
      lambda = 0;
    }
    hare = chain_step(s, hare);
    lambda++;
    n++;
  }
  if (hare == NULL) return n;   /* it ended after n forks */
  tortoise = hare = f;
  for (i = 0; i < lambda; i++) hare = chain_step(s, hare);
  while (tortoise != hare) {
    tortoise = chain_step(s, tortoise);
    hare = chain_step(s, hare);
    mu++;
  }
  return mu + lambda;
}

static void walk_from_fork(walker *w, as_fork *f, int top) {
  unsigned long distinct, seen = 0;
  if (w->s == NULL) {           /* a fork of a run that has ended */
    walk_fork_stack(w, f, top);
    return;
  }
  distinct = chain_distinct(w->s, f);
  while (f != NULL && !w->stopped) {
    seen++;
    walk_fork_stack(w, f, top);
    if (!w->async) return;
    for (;;) {                  /* the chain rule, through spawn sites */
      as_chain_link link;
      if (w->stopped) return;
      link = as_chain_next(w->s, f);
      if (link.kind == AS_LINK_AWAITED) {
        if (seen == distinct) return;   /* link.next was visited */
        set_boundary(w, AS_BOUND_AWAITED, f);
        w->boundary_via = link.via;
        f = link.next;
        top = f->astack.depth - 1;
        break;
      }
      if (link.kind == AS_LINK_RUN) {
        set_boundary(w, AS_BOUND_RUN, f);
        walk_thread(w, w->s->L, NULL, 0);
        return;
      }
      spawn_site(w, f, link.next);
      if (link.next == NULL || seen == distinct) return;
      seen++;
      f = link.next;
    }
  }
}

static void walker_init(walker *w, lua_State *L, as_state *st,
                        const as_walk_opts *opts) {
  /* everything but the records, which are written before they are read */
  memset(w, 0, offsetof(walker, pend));
  w->ring_len = w->ring_start = w->skipped = 0;
  w->L = L;
  w->st = st;
  w->s = st->sched;
  w->skip = opts->skip;
  w->limit = opts->limit;
  w->async = opts->async;
  w->ends = opts->ends > RING_MAX ? RING_MAX : opts->ends;
  w->self = opts->self;
  lua_pushnil(L);            /* the capture, made by flush() */
  w->out = lua_gettop(L);
}

/* Stores the ring and records the counts in the raw capture. */
static void walker_finish(walker *w) {
  lua_State *L = w->L;
  int i, head = w->n;
  flush(w, w->ring_len);
  for (i = 0; i < w->ring_len; i++) store(w, &w->ring[(w->ring_start + i) % RING_MAX]);
  lua_settop(L, w->out);   /* drop the site slot */
  lua_pushinteger(L, w->n);
  lua_setfield(L, w->out, "n");
  if (w->omitted > 0) {
    lua_pushinteger(L, w->omitted);
    lua_setfield(L, w->out, "omitted");
  }
  if (w->skipped > 0) {
    lua_pushinteger(L, w->skipped);
    lua_setfield(L, w->out, "skipped");
    lua_pushinteger(L, head);
    lua_setfield(L, w->out, "skip_at");
  }
}

void as_backtrace_push_fork(lua_State *L, as_state *st, as_fork *f,
                            const as_walk_opts *opts) {
  walker w;
  walker_init(&w, L, st, opts);
  w.self = 0;
  if (as_fork_sched(st, f) == NULL) w.s = NULL;
  if (f->astack.depth > 0) walk_from_fork(&w, f, f->astack.depth - 1);
  walker_finish(&w);
}

/* The walk that starts at the running code of L (not finished). */
static void walk_current(walker *w, lua_State *L) {
  as_fork *f = w->s ? w->s->running : NULL;
  int i;
  if (f == NULL) {
    walk_thread(w, L, NULL, 0);
    return;
  }
  for (i = f->astack.depth - 1; i >= 0; i--)
    if (f->astack.frames[i].thread == L) break;
  if (i < 0) {
    /* L was resumed by an unbridged resume somewhere inside the fork */
    walk_thread(w, L, f, 0);
    set_boundary(w, AS_BOUND_UNBRIDGED, NULL);
    i = f->astack.depth - 1;
  }
  walk_from_fork(w, f, i);
}

void as_backtrace_push_current(lua_State *L, as_state *st,
                               const as_walk_opts *opts) {
  walker w;
  walker_init(&w, L, st, opts);
  walk_current(&w, L);
  walker_finish(&w);
}

void as_walk_push_current_unless(lua_State *L, as_state *st, const as_walk_opts *opts,
                                 as_walk_site_shown shown, void *ud) {
  walker w;
  as_walk_opts o = *opts;
  o.ends = 0;                 /* the site is looked for in capture order */
  walker_init(&w, L, st, &o);
  lua_pushnil(L);
  w.site_slot = lua_gettop(L);
  walk_current(&w, L);
  find_site(&w);
  if (w.site_found && shown(L, w.site_slot, w.site_line, w.site_fork, ud)) {
    lua_settop(L, w.out - 1);
    lua_pushboolean(L, 0);
    return;
  }
  walker_finish(&w);
}
