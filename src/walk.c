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
** More reads go through the layout, each checked against lua_getinfo at
** open and used only when that check held (else lua_getinfo does it): a
** level's function (tag and address) and callstatus (C or Lua, tail call),
** so that a walk calls lua_getinfo only for the frames it keeps (store()
** reads a kept frame's function, line and name in one call) and for C
** closures (their upvalues say whether they are ours); a light C function
** is pushed as itself; a Lua function's source, for the "is it ours" test
** (lua_getinfo's "S" builds short_src, which that test never needs); and
** the callstatus words and saved pc that key the cache of call-site names
** (see "call-site names" below: getobjname's cost grows with the size of
** the caller). An error's raise site is walked once per error, so these
** are what the error path (issue 17) pays per frame.
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
/* C strings a walk remembers having stored (call-site names and kinds are
** the strings of a few prototypes, and static ones). */
#define INTERN_MAX 16

/* Functions a walk remembers the "ours" test of (is_ours costs a C
** closure two upvalue reads). */
#define OURS_SEEN 4

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
  lua_CFunction lcf;        /* a light C function (read through the layout):
                               pushed as itself, no lua_getinfo "f" */
  int has_info;             /* line below is read already (the walk read
                               the level with lua_getinfo), else store()
                               reads it with the function; the names are
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
  int skip, limit, async, ends, self, compact;
  int stopped;              /* the limit was reached */
  int omitted;
  int hidden_tailcall;      /* a hidden frame was tail-called */
  int boundary;             /* pending boundary for the next frame */
  as_fork *boundary_from;
  const as_waitnode *boundary_via;
  frame_rec held;           /* the last visible frame of the thread being walked */
  int has_held;
  int made;                 /* the frames' userdata exists (at `out`, or
                               in the table at `out` once that is made) */
  int table;                /* the capture table is made (at `out`) */
  int placed;               /* values moved into it; the others wait on
                               the stack, so that it is made at its size */
  int site_slot;            /* > 0: looking for the site (see find_site):
                               the stack slot of its function, once found */
  int site_found;
  int site_next;            /* pend[site_next..] not looked at for it yet */
  long site_line;
  lua_Integer site_fork;
  as_walk_site_shown shown; /* with site_slot: asked once the site is found; */
  void *shown_ud;           /* when it says the site is shown, the walk */
  int site_shown;           /* stops there (no capture is made) */
  struct as_walk_cache *nc; /* call-site names seen before, or NULL */
  int anchors;              /* stack slot of the names' anchors table
                               (pushed by walker_init), or -1: none */
  const void *ours_fn[OURS_SEEN];  /* functions whose "ours" test the walk */
  unsigned char ours_is[OURS_SEEN];/* made (a scheduler primitive such as */
  int ours_next;            /* wait is on every fork's stack), and its answer */
  as_rawhead *head;         /* the capture's frames (once made) */
  int nvals;                /* values stored after it (slots 2 ...) */
  int has_last;             /* the fork of the frame stored last, */
  const as_fork *last_fork; /* its id and the slot of its name: a */
  lua_Integer last_id;      /* segment's frames share them */
  int last_name;
  const void *holder_of;    /* the last root's spawning function (its */
  int holder_slot;          /* address) and slot: often the next frame's */
  int holder_pending;       /* that function is not stored yet: it is the */
  int holder_frame;         /* holder of frame holder_frame, of fork */
  as_fork *holder_fork;     /* holder_fork (see take_holder) */
  int nstrs;                /* strings stored from C strings: by address */
  const char *str_of[INTERN_MAX];
  int str_slot[INTERN_MAX];
  int npend;                /* frames accepted, not stored yet */
  frame_rec pend[PEND_MAX]; /* they: the table is made once their number is
                               known, with room for them (no regrowth, no
                               presized room left unused) */
  frame_rec ring[RING_MAX]; /* `ends` walk: the last frames, oldest at ring_start */
  int ring_len, ring_start, skipped;
  union {                   /* the frames of a compact capture, until it */
    as_rawhead head;        /* is made (finish_compact) */
    char room[AS_RAW_SIZE(PEND_MAX)];
  } held_back;
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

static void names_cache_open(lua_State *L, as_state *st, const as_lualayout *lay);

void as_walk_check_stepping(lua_State *L, as_state *st) {
  lua_Debug a, b;
  int level = 0;
  const as_lualayout *lay =
    as_lualayout_for_release(as_lualayout_parse_ident(as_lualayout_running_ident()));
  st->ci_stepping = st->ci_stepping_ok = 0;
  if (lay != NULL) {                   /* else a release with no stated layout */
    st->ci_previous_offset = lay->ci_previous;
    if (lua_getstack(L, 0, &a)) {
      for (;;) {
        struct CallInfo *p = ci_previous(st, a.i_ci);
        if (!lua_getstack(L, level + 1, &b)) {
          /* the caller of the last level must be base_ci */
          st->ci_stepping = st->ci_stepping_ok =
            p != NULL && ci_previous(st, p) == NULL && level > 0;
          break;
        }
        if (p != b.i_ci) break;
        a = b;
        level++;
      }
    }
  }
  names_cache_open(L, st, lay);
}

/* Levels of th from the one ar is at, inclusive. */
static int count_levels(const as_state *st, lua_State *th, lua_Debug *ar, int level) {
  int n = 1;
  while (step(st, th, ar, &level)) n++;
  return n;
}

/* ---------------------------------------------------- call-site names */

/*
** lua_getinfo's "n" (a frame's name, from its caller's calling instruction)
** runs ldebug.c's getobjname, a symbolic execution of the caller's code up
** to the call: it costs in proportion to the caller's size (a program's
** main chunk: thousands of instructions), and a trace pays it per frame.
** Its result depends on nothing but the callstatus words of the frame and
** of its caller, the caller's Proto and the caller's saved pc (every 5.4
** release). So for a Lua caller it is cached, keyed by the saved pc and
** both words. An entry holds the two strings, which are the caller
** Proto's own (or static ones), and a weak reference to the caller closure
** (`anchors_key`): while that closure lives, so does its Proto, so the code
** array is at that address and no other Proto's is: an entry whose closure
** is alive is exact. A collected closure clears its anchor and its entry
** misses from then on. The fields are read through the layout, as
** CallInfo.previous is; as_walk_check_stepping checks them against
** lua_getinfo once, and makes the cache only when they agree.
*/
#define NAMES_SLOTS 256

typedef struct name_entry {
  const void *savedpc;        /* the caller's saved pc (NULL: empty) */
  unsigned status, caller_status;
  const char *name, *namewhat;
} name_entry;

typedef struct as_walk_cache {
  const as_lualayout *lay;
  int source_ok;              /* source_of() reads what lua_getinfo does */
  int lcf_ok;                 /* a light C function's tag and address read
                                 right (see walk_thread) */
  name_entry e[NAMES_SLOTS];
} names_cache;     /* (as_state.walk_cache) */

static const char names_cache_key = 'n';   /* registry: the names_cache */
static const char anchors_key = 'a';       /* registry: weak [slot] = caller */

static unsigned read_status(const as_lualayout *lay, const struct CallInfo *ci) {
  if (lay->size_ci_callstatus == 2) {
    unsigned short v;
    memcpy(&v, (const char *)ci + lay->ci_callstatus, sizeof v);
    return v;
  } else {
    unsigned v;
    memcpy(&v, (const char *)ci + lay->ci_callstatus, sizeof v);
    return v;
  }
}

/* The entry for the frame at `ci` (its key in *key), or NULL when its
** caller is no Lua function (its name then costs nothing to find). */
static name_entry *name_slot(walker *w, const struct CallInfo *ci, name_entry *key) {
  const as_lualayout *lay = w->nc->lay;
  const struct CallInfo *caller = ci_previous(w->st, ci);
  uintptr_t h;
  if (caller == NULL) return NULL;
  key->caller_status = read_status(lay, caller);
  if (key->caller_status & lay->cist_C) return NULL;
  key->status = read_status(lay, ci);
  key->savedpc = as_lualayout_ptr(caller, lay->ci_savedpc);
  h = (uintptr_t)key->savedpc >> 2;
  return &w->nc->e[(h ^ (h >> 8)) % NAMES_SLOTS];
}

/* Whether entry e (of the frame at ci) holds its names: same key, and the
** closure it was made for still alive. Leaves the stack as it is. */
static int name_hit(walker *w, const name_entry *e, const name_entry *key) {
  int alive;
  if (e->savedpc != key->savedpc || e->status != key->status ||
      e->caller_status != key->caller_status)
    return 0;
  if (w->anchors <= 0) return 0;
  alive = lua_rawgeti(w->L, w->anchors, (e - w->nc->e) + 1) == LUA_TFUNCTION;
  lua_pop(w->L, 1);
  return alive;
}

/* Fills entry e with the names of the frame at ci of th (key: its key),
** anchoring the caller closure. */
static void name_fill(walker *w, lua_State *th, const struct CallInfo *ci,
                      name_entry *e, const name_entry *key,
                      const char *name, const char *namewhat) {
  lua_State *L = w->L;
  lua_Debug car;
  e->savedpc = NULL;                     /* until the anchor is stored */
  if (w->anchors <= 0 || !lua_checkstack(L, 3) || (th != L && !lua_checkstack(th, 2))) return;
  car.i_ci = (struct CallInfo *)ci_previous(w->st, ci);
  lua_getinfo(th, "f", &car);
  if (th != L) lua_xmove(th, L, 1);
  if (lua_type(L, -1) == LUA_TFUNCTION) {
    lua_rawseti(L, w->anchors, (e - w->nc->e) + 1);
    *e = *key;
    e->name = name;
    e->namewhat = namewhat;
  } else {
    lua_pop(L, 1);
  }
}

/* The source of the Lua closure at address cl (getstr(cl->p->source), the
** chars lua_getinfo's "S" gives as ar.source), or NULL. */
static const char *source_of(const as_lualayout *lay, const void *cl) {
  const void *proto = as_lualayout_ptr(cl, lay->lcl_p);
  const char *ts = (const char *)as_lualayout_ptr(proto, lay->p_source);
  return ts != NULL ? ts + lay->ts_contents : NULL;
}

/* Whether the layout reads the fields name_slot and walk_thread use right on
** L's stack: each level's function (ci->func: its tag and address) and its
** kind (CIST_C), and a Lua caller's saved pc inside its Proto's code. Needs
** a Lua frame below the running one (the chunk that requires the module).
** *lcf_ok: a light C function was among them (the running open function
** is one) and read right. */
static int names_layout_ok(lua_State *L, const as_state *st, const as_lualayout *lay,
                           int *source_ok, int *lcf_ok) {
  lua_Debug a;
  int level, checked = 0, sources = 0, lcfs = 0;
  *source_ok = *lcf_ok = 0;
  if (lay->size_ci_callstatus != 2 && lay->size_ci_callstatus != sizeof(unsigned)) return 0;
  if (!lua_checkstack(L, 2)) return 0;
  for (level = 0; lua_getstack(L, level, &a); level++) {
    unsigned char tag;
    const void *value = as_lualayout_frame_value(lay, a.i_ci, &tag);
    unsigned status = read_status(lay, a.i_ci);
    int is_c, ok = 1;
    lua_getinfo(L, "fS", &a);
    is_c = lua_iscfunction(L, -1);
    if (is_c) {
      /* a light C function's value is its address, as lua_topointer's;
      ** a C closure's the object's */
      ok = (status & lay->cist_C) != 0 &&
           (tag == lay->tag_lcf || tag == (lay->tag_ccl | lay->bit_collectable)) &&
           value == lua_topointer(L, -1);
      lcfs += ok && tag == lay->tag_lcf;
    } else {
      ok = (status & lay->cist_C) == 0 && tag == (lay->tag_lcl | lay->bit_collectable) &&
           value == lua_topointer(L, -1);
      if (ok && level > 0) {
        ok = as_lualayout_frame_pc(lay, a.i_ci, lua_topointer(L, -1)) >= 0;
        checked += ok;
      }
      if (ok) {
        ok = source_of(lay, lua_topointer(L, -1)) == a.source;
        sources += ok;
      }
    }
    lua_pop(L, 1);
    if (!ok) return 0;
  }
  (void)st;
  *source_ok = sources > 0;
  *lcf_ok = lcfs > 0;
  return checked > 0;
}

/* Makes the cache when the layout reads right, or takes the one an
** earlier open in this lua_State made (the module required again: the
** registry anchors one cache for all, and each state keeps its address in
** walk_cache). */
static void names_cache_open(lua_State *L, as_state *st, const as_lualayout *lay) {
  int source_ok, lcf_ok;
  names_cache *nc;
  st->walk_cache = NULL;
  if (lay == NULL || !st->ci_stepping_ok) return;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &names_cache_key);
  st->walk_cache = (names_cache *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (st->walk_cache != NULL || !names_layout_ok(L, st, lay, &source_ok, &lcf_ok)) return;
  nc = (names_cache *)lua_newuserdatauv(L, sizeof *nc, 0);
  memset(nc, 0, sizeof *nc);
  nc->lay = lay;
  nc->source_ok = source_ok;
  nc->lcf_ok = lcf_ok;
  lua_createtable(L, 0, 0);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &anchors_key);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &names_cache_key);   /* anchors it */
  st->walk_cache = nc;
}

/* ------------------------------------------------------------- storing */

static void push_fork_ud(walker *w, as_fork *f) {
  if (w->s != NULL) as_sched_push_fork(w->L, w->s, f);
  else lua_pushnil(w->L);
}

/* Takes the value on top as the capture's next value and returns its
** slot; nil and false are not stored (slot 0: none), so a frame costs only
** the values it has. The value stays on the stack until settle(). */
static int put_value(walker *w) {
  if (!lua_toboolean(w->L, -1)) {
    lua_pop(w->L, 1);
    return 0;
  }
  return 2 + w->nvals++;
}

/* Moves the values waiting on the stack into the capture table, making it
** first (with the frames' userdata at [1] and room for `extra` more values)
** when it is not made yet. */
static void settle(walker *w, int extra) {
  lua_State *L = w->L;
  int k, n = w->nvals - w->placed;
  if (!w->table) {
    lua_createtable(L, 1 + w->nvals + extra, 0);
    lua_pushvalue(L, w->out);              /* the frames */
    lua_rawseti(L, -2, 1);
    lua_replace(L, w->out);
    w->table = 1;
  }
  /* each rawseti pops the top one: the last value first */
  for (k = n - 1; k >= 0; k--) lua_rawseti(L, w->out, 2 + w->placed + k);
  w->placed = w->nvals;
}

/* The slot of C string s (0 for NULL or ""): one slot per address in a
** walk. The addresses are stable while it runs: the strings of prototypes
** of functions on the walked stacks, static strings, names of live forks. */
static int put_cstr(walker *w, const char *s) {
  int i, slot;
  if (s == NULL || *s == '\0') return 0;
  for (i = 0; i < w->nstrs; i++)
    if (w->str_of[i] == s) return w->str_slot[i];
  lua_pushstring(w->L, s);
  slot = put_value(w);
  if (w->nstrs < INTERN_MAX) {
    w->str_of[w->nstrs] = s;
    w->str_slot[w->nstrs++] = slot;
  }
  return slot;
}

/* Pushes the spawning function of fork f (fork.h), or nil. */
static void push_spawn_func(walker *w, as_fork *f) {
  push_fork_ud(w, f);
  if (!lua_isnil(w->L, -1)) {
    as_fork_push_spawn_func(w->L, -1);
    lua_remove(w->L, -2);
  }
}

/* Makes room for one more frame: a userdata twice as big, in place of the
** old one (which the collector takes). */
static void grow(walker *w) {
  int cap = w->head->cap < 4 ? 8 : 2 * w->head->cap;
  as_rawhead *h = (as_rawhead *)lua_newuserdatauv(w->L, AS_RAW_SIZE(cap), 0);
  memcpy(h, w->head, AS_RAW_SIZE(w->n));
  h->cap = cap;
  if (w->table) lua_rawseti(w->L, w->out, 1);
  else lua_replace(w->L, w->out);
  w->head = h;
}

/* A root's holder, the function that spawned its fork, is mostly the
** function of the frame stored next (the spawner waiting for the fork, or
** the spawn site): then it is that frame's value, found by address without
** pushing it from the fork. take_holder defers it when the fork's record
** says which function push_spawn_func would push (fork.h: spawn_func is
** what uservalue 2 anchors; a fork of this run with a slot is in its live
** set), else stores it now; put_holder stores a deferred one that the next
** frame did not match. */
static void put_holder(walker *w) {
  if (!w->holder_pending || !lua_checkstack(w->L, 3)) return;
  w->holder_pending = 0;
  push_spawn_func(w, w->holder_fork);
  w->holder_of = lua_topointer(w->L, -1);   /* anchored by the capture */
  w->head->frames[w->holder_frame].holder = w->holder_slot = put_value(w);
}

static void take_holder(walker *w, as_fork *f) {
  put_holder(w);
  if (w->s != NULL && f->slot > 0 && as_fork_sched(w->st, f) == w->s &&
      f->spawn_func != NULL) {
    w->holder_pending = 1;
    w->holder_frame = w->n;
    w->holder_fork = f;
    w->holder_of = f->spawn_func;
    w->holder_slot = 0;
  } else {
    push_spawn_func(w, f);
    w->holder_of = lua_topointer(w->L, -1);
    w->head->frames[w->n].holder = w->holder_slot = put_value(w);
  }
}

/* Writes record r as frame w->n of the capture. */
static void store(walker *w, const frame_rec *r) {
  lua_State *L = w->L;
  as_rawframe *fr;
  lua_Integer via = 0;
  int line = 0;
  const char *name = NULL, *namewhat = NULL;
  if (!lua_checkstack(L, 8) || (r->th != NULL && r->th != L && !lua_checkstack(r->th, 2))) {
    w->stopped = 1;
    return;
  }
  if (w->n == w->head->cap) grow(w);
  fr = &w->head->frames[w->n];     /* the userdata never moves */
  memset(fr, 0, sizeof *fr);
  if (r->th != NULL) {
    lua_Debug ar;
    name_entry key, *e = w->nc != NULL ? name_slot(w, r->ci, &key) : NULL;
    int hit = e != NULL && name_hit(w, e, &key);
    if (w->st->ci_stepping) ar.i_ci = r->ci;
    else lua_getstack(r->th, r->level, &ar);
    if (hit && r->lcf != NULL) {
      /* a light C function is its address, and has no line */
      lua_pushcfunction(r->th, r->lcf);
      ar.currentline = -1;
      name = e->name;
      namewhat = e->namewhat;
    } else if (hit) {
      lua_getinfo(r->th, r->has_info ? "f" : "lf", &ar);
      name = e->name;
      namewhat = e->namewhat;
    } else {
      lua_getinfo(r->th, r->has_info ? "nf" : "lnf", &ar);
      name = ar.name;        /* the prototype's strings: the frame keeps them */
      namewhat = ar.namewhat;
    }
    if (r->th != L) lua_xmove(r->th, L, 1);
    line = r->has_info ? r->line : ar.currentline;
    if (e != NULL && !hit) name_fill(w, r->th, r->ci, e, &key, name, namewhat);
  } else {
    push_spawn_func(w, r->spawned);
    line = as_fork_spawn_line(r->spawned);
  }
  if (w->holder_slot > 0 && lua_topointer(L, -1) == w->holder_of) {
    lua_pop(L, 1);                 /* the spawner of the root stored last */
    fr->func = w->holder_slot;
  } else {
    const void *fn = lua_topointer(L, -1);
    fr->func = put_value(w);
    if (w->holder_pending && fr->func > 0 && fn == w->holder_of) {
      /* the root stored last was spawned by this frame's function */
      w->head->frames[w->holder_frame].holder = w->holder_slot = fr->func;
      w->holder_pending = 0;
    }
  }
  put_holder(w);                   /* spawned by another function */
  if (line > 0) fr->line = line;
  fr->name = put_cstr(w, name);
  fr->namewhat = put_cstr(w, namewhat);
  if (!w->has_last || r->fork != w->last_fork || (r->fork == NULL && r->gone_id != w->last_id)) {
    /* a new segment: its fork */
    w->has_last = 1;
    w->last_fork = r->fork;
    w->last_id = r->fork != NULL ? r->fork->id : r->gone_id;
    if (r->fork == NULL && r->gone_id > 0) {
      /* the name it had (kept by the run: as_sched_push_spawner_name) */
      if (w->s != NULL && as_fork_sched(w->st, r->spawned) == w->s) as_sched_push_spawner_name(L, w->s, r->spawned);
      else lua_pushnil(L);
      w->last_name = put_value(w);
    } else {
      /* (the name's chars are the fork's name_cstr: the text shows a name
      ** up to its first NUL, as the renderer prints it) */
      w->last_name = r->fork != NULL ? put_cstr(w, r->fork->name_cstr) : 0;
    }
  }
  fr->fork_id = w->last_id;
  fr->fork_name = w->last_name;
  if (r->from != NULL) {
    fr->from_id = r->from->id;
    fr->from_name = put_cstr(w, r->from->name_cstr);
  }
  if (r->via != NULL && as_wait_node_mode(r->via) != AS_WAIT_ONE)
    via = (lua_Integer)r->via->index * 4 +
          (as_wait_node_mode(r->via) == AS_WAIT_ALL ? AS_VIA_WAIT_ALL : AS_VIA_WAIT_ANY);
  fr->info = AS_RAW_INFO_OF(r->flags, r->boundary, via);
  if (r->flags & AS_RFRAME_ROOT) take_holder(w, r->fork);
  w->head->n = ++w->n;
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
    lua_getinfo(r->th, r->has_info ? "f" : "fl", &ar);
    if (r->th != L) lua_xmove(r->th, L, 1);
    return r->has_info ? r->line : ar.currentline;
  }
}

/* The site of the walk: its first frame, in capture order, whose function
** is a Lua function and which has a line (exception.lua's site_of). Looks
** at the records held back not looked at yet; its function goes to
** site_slot. */
static void find_site(walker *w) {
  int i;
  if (!lua_checkstack(w->L, 4)) return;       /* no site: the capture is made */
  for (i = w->site_next; i < w->npend && !w->site_found; i++) {
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
  w->site_next = i;
}

/* Stores the frames held back, making the capture table first if it is not
** made yet: with room for them, and for `more` frames known to follow (or,
** when more is -1, for as many again: the walk goes on). */
static void flush(walker *w, int more) {
  int i;
  if (w->site_slot > 0) find_site(w);
  if (!w->made) {
    int frames = w->npend + (more < 0 ? w->npend : more);
    w->head = (as_rawhead *)lua_newuserdatauv(w->L, AS_RAW_SIZE(frames), 0);
    memset(w->head, 0, offsetof(as_rawhead, frames));
    w->head->magic = AS_RAW_MAGIC;
    w->head->cap = frames;
    lua_replace(w->L, w->out);
    w->made = 1;
  }
  for (i = 0; i < w->npend; i++) store(w, &w->pend[i]);
  /* room for as many values again while the walk goes on, else for the
  ** `more` frames' functions and some of their names */
  settle(w, more < 0 ? w->nvals : more + more / 2);
  w->npend = w->site_next = 0;
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
    if (w->site_slot > 0 && !w->site_found) {
      /* the site is known as soon as its frame is: when it is shown
      ** already, nothing more is walked (a rethrow's usual case) */
      find_site(w);
      if (w->site_found &&
          w->shown(w->L, w->site_slot, w->site_line, w->site_fork, w->shown_ud)) {
        w->site_shown = w->stopped = 1;
        return;
      }
    }
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
  if (w->nc != NULL && w->nc->source_ok) {
    /* the source's chars read through the layout (checked at open) */
    const char *source = source_of(w->nc->lay, lua_topointer(th, -1));
    if (source != NULL) return as_is_internal_source(w->st, source);
  }
  lua_pushvalue(th, -1);
  lua_getinfo(th, ">S", &ar);
  return as_is_internal_source(w->st, ar.source);
}

/* Whether the walk made the "ours" test of the function at address fn
** (its answer in *ours). */
static int ours_seen(const walker *w, const void *fn, int *ours) {
  int i;
  if (fn == NULL) return 0;
  for (i = 0; i < OURS_SEEN; i++) {
    if (w->ours_fn[i] == fn) {
      *ours = w->ours_is[i];
      return 1;
    }
  }
  return 0;
}

static void ours_remember(walker *w, const void *fn, int ours) {
  w->ours_fn[w->ours_next] = fn;
  w->ours_is[w->ours_next] = (unsigned char)ours;
  w->ours_next = (w->ours_next + 1) % OURS_SEEN;
}

/* Whether the function of level ar of th is ours, read through the layout
** (walk_thread's fast path): `status` is the level's callstatus, fn the
** function's address, lcf the function when it is a light C function. A
** Lua function's source and a light C function (no upvalues: never ours)
** need no push; a C closure is pushed for its upvalues. -1: no stack room
** for that. */
static int level_is_ours(walker *w, lua_State *th, lua_Debug *ar, lua_CFunction lcf,
                         unsigned status, const void *fn) {
  const as_lualayout *lay = w->nc->lay;
  int ours;
  if (!(status & lay->cist_C)) {
    const char *source = source_of(lay, fn);
    if (source != NULL) return as_is_internal_source(w->st, source);
  } else if (lcf != NULL) {
    return 0;
  }
  if (!lua_checkstack(th, 3)) return -1;
  lua_getinfo(th, "f", ar);
  ours = is_ours(w, th);
  lua_pop(th, 1);
  return ours;
}

/* Accepts the visible frames of coroutine th (part of fork f, or NULL);
** with mark_root, flags the bottom visible frame as the fork's root. The
** last visible frame is held back until the next one shows it is not the
** bottom one.
** Where the layout is checked (the names cache with sources, and stepping
** on), a level is read from its CallInfo: no lua_getinfo for the frames it
** hides or skips, and store() reads a kept frame's line with its function
** and name in one lua_getinfo. Else one lua_getinfo "flt" per level. */
static void walk_thread(walker *w, lua_State *th, as_fork *f, int mark_root) {
  lua_Debug ar;
  int level = 0, held_level = -1, self = w->self && th == w->L;
  int fn_ours = 0;
  const as_lualayout *lay =
    w->nc != NULL && w->nc->source_ok && w->st->ci_stepping ? w->nc->lay : NULL;
  w->self = 0;
  w->has_held = 0;
  if (!lua_getstack(th, 0, &ar)) return;
  do {
    int ours, tailcall, has_info = 0;
    const void *fn;
    lua_CFunction lcf = NULL;
    if (lay != NULL) {
      unsigned char tag;
      unsigned status = read_status(lay, ar.i_ci);
      fn = as_lualayout_frame_value(lay, ar.i_ci, &tag);
      tailcall = (status & lay->cist_tail) != 0;
      if ((status & lay->cist_C) && w->nc->lcf_ok && tag == lay->tag_lcf)
        memcpy(&lcf, &fn, sizeof lcf);   /* a light C function's value is its address */
      if (!ours_seen(w, fn, &fn_ours)) {
        fn_ours = level_is_ours(w, th, &ar, lcf, status, fn);
        if (fn_ours < 0) { w->stopped = 1; break; }
        ours_remember(w, fn, fn_ours);
      }
    } else {
      if (!lua_checkstack(th, 3)) { w->stopped = 1; break; }
      lua_getinfo(th, "flt", &ar);    /* l: read once, for store() and the site search */
      has_info = 1;
      fn = lua_topointer(th, -1);
      tailcall = ar.istailcall;
      if (!ours_seen(w, fn, &fn_ours)) {
        fn_ours = is_ours(w, th);
        ours_remember(w, fn, fn_ours);
      }
      lua_pop(th, 1);
    }
    ours = fn_ours && !(self && level == 0);
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
        if (!w->site_shown)
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
    w->held.has_info = has_info;
    w->held.line = has_info ? ar.currentline : 0;
    w->held.lcf = lcf;
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
  w->compact = opts->compact;
  w->nc = st->walk_cache;
  lua_pushnil(L);            /* the capture, made by flush() */
  w->out = lua_gettop(L);
  /* the names' anchors, read by every frame with a Lua caller: above the
  ** capture, below the values waiting for it (walker_finish drops it) */
  w->anchors = -1;
  if (w->nc != NULL && lua_checkstack(L, 2)) {
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &anchors_key) == LUA_TTABLE) w->anchors = lua_gettop(L);
  }
}

/* The end of a walk whose frames were all held back (fewer than PEND_MAX,
** no ring: an error's raise site, mostly): its capture is compact
** (backtrace.h), the frames' userdata with the values as its user values,
** one object made at its size instead of a table of values beside it. The
** frames are written into the walker first: their values' number is known
** once they are. */
static void finish_compact(walker *w) {
  lua_State *L = w->L;
  int i, k, ud;
  as_rawhead *h;
  w->head = &w->held_back.head;
  memset(w->head, 0, offsetof(as_rawhead, frames));
  w->head->magic = AS_RAW_MAGIC;
  w->head->cap = PEND_MAX;   /* npend < PEND_MAX: grow() is never called */
  w->made = 1;
  for (i = 0; i < w->npend; i++) store(w, &w->pend[i]);
  w->npend = 0;
  put_holder(w);
  /* the values wait on the stack (placed is 0): the userdata goes below
  ** them, and each lua_setiuservalue pops the last one */
  h = (as_rawhead *)lua_newuserdatauv(L, AS_RAW_SIZE(w->n), w->nvals);
  memcpy(h, w->head, AS_RAW_SIZE(w->n));
  h->cap = w->n;
  w->head = h;
  ud = lua_gettop(L) - w->nvals;
  lua_rotate(L, ud, 1);
  for (k = w->nvals; k >= 1; k--) lua_setiuservalue(L, ud, k);
  lua_replace(L, w->out);
  w->placed = w->nvals;
}

/* Stores the ring and records the counts in the raw capture. */
static void walker_finish(walker *w) {
  lua_State *L = w->L;
  int i, head = w->n;
  if (w->compact && !w->made && w->ring_len == 0) {
    finish_compact(w);
  } else {
    flush(w, w->ring_len);
    for (i = 0; i < w->ring_len; i++) store(w, &w->ring[(w->ring_start + i) % RING_MAX]);
    put_holder(w);
    settle(w, 0);
  }
  lua_settop(L, w->out);   /* drop the anchors and the site slot */
  w->head->omitted = w->omitted;
  if (w->skipped > 0) {
    w->head->skipped = w->skipped;
    w->head->skip_at = head;
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

int as_walk_own_site(lua_State *L, as_state *st, int levels, const void **fn, int *line) {
  lua_Debug ar;
  int level = 0;
  const as_lualayout *lay = st->ci_stepping && st->walk_cache != NULL ?
                            st->walk_cache->lay : NULL;
  if (!lua_getstack(L, 0, &ar)) return 0;
  do {
    if (lay != NULL) {
      /* a C level is never the site: its kind is all that is read */
      if (read_status(lay, ar.i_ci) & lay->cist_C) continue;
      lua_getinfo(L, "l", &ar);
      *fn = as_lualayout_frame_value(lay, ar.i_ci, NULL);
    } else {
      int is_c;
      if (!lua_checkstack(L, 1)) return 0;
      lua_getinfo(L, "fl", &ar);
      is_c = lua_iscfunction(L, -1);
      *fn = lua_topointer(L, -1);
      lua_pop(L, 1);
      if (is_c) continue;
    }
    if (ar.currentline > 0) {
      *line = ar.currentline;
      return 1;
    }
  } while (level + 1 < levels && step(st, L, &ar, &level));
  return 0;
}

void as_walk_push_current_unless(lua_State *L, as_state *st, const as_walk_opts *opts,
                                 as_walk_site_shown shown, void *ud) {
  walker w;
  as_walk_opts o = *opts;
  o.ends = 0;                 /* the site is looked for in capture order */
  walker_init(&w, L, st, &o);
  lua_pushnil(L);
  w.site_slot = lua_gettop(L);
  w.shown = shown;
  w.shown_ud = ud;
  walk_current(&w, L);      /* accept() looks for the site as it goes */
  if (w.site_shown) {
    lua_settop(L, w.out - 1);
    lua_pushboolean(L, 0);
    return;
  }
  walker_finish(&w);
}
