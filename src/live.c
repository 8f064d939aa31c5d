/*
** live.c: the live forks of a run (see sched.h): anchored in a Lua table by
** slot, mirrored in a C array by slot that a signal handler may read, and
** listed in id order for reports.
**
** The live table is an array of slots (ids only grow, so a table keyed by
** id would churn through its hash part); freed slots are reused through a
** C free list. Looking a fork up by id is rare (spawners) and goes through
** the slot it had, checking the id.
*/
#include <stdlib.h>
#include <string.h>
#include "sched.h"
#include "mem.h"
#include <lauxlib.h>

as_fork *as_sched_fork_at_slot(const as_sched *s, int slot) {
  int top = s->top_slot;
  as_fork *const *slots;
  /* the count first, then the array it covers (published in that order
  ** reversed by live_add) */
  __atomic_signal_fence(__ATOMIC_ACQUIRE);
  slots = s->slots;
  if (slot < 1 || slot > top || slots == NULL) return NULL;
  return slots[slot];
}

int as_sched_push_fork(lua_State *L, as_sched *s, const as_fork *f) {
  /* (by serial, not as_fork_sched: abandon_live pushes forks of a run
  ** that is no longer the state's active one) */
  if (f == NULL || f->slot <= 0 || f->run_serial != s->st->run_serial) {
    lua_pushnil(L);
    return 0;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->live_ref);
  lua_rawgeti(L, -1, f->slot);
  lua_remove(L, -2);
  return 1;
}

as_fork *as_sched_spawner(lua_State *L, as_sched *s, const as_fork *f) {
  as_fork *p;
  (void)L;
  if (f->spawner_id <= 0) return NULL;
  p = as_sched_fork_at_slot(s, f->spawner_slot);
  return (p != NULL && p->id == f->spawner_id) ? p : NULL;
}

void as_sched_push_spawner_name(lua_State *L, as_sched *s, const as_fork *f) {
  as_fork *p = as_sched_spawner(L, s, f);
  if (p != NULL) {
    as_sched_push_fork(L, s, p);
    as_fork_push_name(L, -1);
    lua_remove(L, -2);
  } else if (f->spawner_id == s->root->id) {
    /* an ended root: run() holds it, and its name, for the whole run */
    if (s->root->name_cstr != NULL) lua_pushstring(L, s->root->name_cstr);
    else lua_pushnil(L);
  } else if (f->spawner_id > 0 && s->names_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->names_ref);
    lua_rawgeti(L, -1, f->spawner_id);
    lua_remove(L, -2);
  } else {
    lua_pushnil(L);
  }
}

/* (scheduler, fork userdata): the named fork ends while forks it spawned
** live; the run keeps its name for them. Called protected: it allocates. */
static int keep_name(lua_State *L) {
  as_sched *s = (as_sched *)lua_touserdata(L, 1);
  as_fork *f = (as_fork *)lua_touserdata(L, 2);
  if (s->names_ref == LUA_NOREF) {
    lua_newtable(L);
    s->names_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->names_ref);
  as_fork_push_name(L, 2);
  lua_rawseti(L, -2, f->id);
  lua_pushinteger(L, (lua_Integer)f->live_children);
  lua_rawseti(L, -2, -f->id);
  return 0;
}

/* A child of f's spawner ends: one fewer child for a live spawner; for an
** ended one, its kept name goes with its last child. Never raises (only
** existing entries are updated or cleared). */
static void child_ended(lua_State *L, as_sched *s, as_fork *f) {
  as_fork *p = as_sched_spawner(L, s, f);
  lua_Integer left;
  if (p != NULL) {
    as_assert(p->live_children > 0);
    p->live_children--;
    return;
  }
  /* an ended root keeps its own count and name (run() holds it): a run
  ** whose root forks and returns does no table work per fork */
  if (f->spawner_id == s->root->id) {
    as_assert(s->root->live_children > 0);
    s->root->live_children--;
    return;
  }
  if (f->spawner_id <= 0 || s->names_ref == LUA_NOREF) return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->names_ref);
  lua_rawgeti(L, -1, -f->spawner_id);
  left = lua_tointeger(L, -1) - 1;
  lua_pop(L, 1);
  if (left > 0) {
    lua_pushinteger(L, left);      /* replaces an integer: no allocation */
    lua_rawseti(L, -2, -f->spawner_id);
  } else if (left == 0) {
    lua_pushnil(L);
    lua_rawseti(L, -2, -f->spawner_id);
    lua_pushnil(L);
    lua_rawseti(L, -2, f->spawner_id);
  }
  lua_pop(L, 1);
}

static void release_frames(lua_State *L, as_sched *s, as_fork *f);

/* ------------------------------------------------------ await records */

/* Await records (fork.h) come in chunks, cut once and kept for the run:
** a record is reused, never freed, while a signal handler may still read
** it through a fork that just ended. */
#define AWAIT_CHUNK 32

struct as_await_chunk {
  struct as_await_chunk *next;
  as_await_fields records[AWAIT_CHUNK];
};

void as_sched_take_await(lua_State *L, as_sched *s, as_fork *f) {
  as_await_fields *a;
  if (s->await_free == NULL) {
    struct as_await_chunk *c = (struct as_await_chunk *)as_mem_realloc(L, NULL, 0, sizeof *c);
    int i;
    c->next = s->await_chunks;
    s->await_chunks = c;
    for (i = AWAIT_CHUNK - 1; i >= 0; i--) {
      c->records[i].next_free = s->await_free;
      s->await_free = &c->records[i];
    }
  }
  a = s->await_free;
  s->await_free = a->next_free;
  memset(a, 0, sizeof *a);
  f->await = a;
}

/* The ended fork f gives its await record back. Never raises. */
static void release_await(as_sched *s, as_fork *f) {
  as_await_fields *a = f->await;
  if (a == NULL) return;
  f->await = NULL;
  a->next_free = s->await_free;
  s->await_free = a;
}

/* Grows the slot array to hold slot `n` and the free list to hold every
** slot, publishing a complete array before the pointer to it. Raises. */
static void reserve_slots(lua_State *L, as_sched *s, int n) {
  int cap = s->slots_cap ? s->slots_cap * 2 : 64, i;
  as_fork **slots, **old = s->slots;
  int *free_slots;
  while (cap <= n) cap *= 2;
  slots = (as_fork **)as_mem_realloc(L, NULL, 0, (size_t)cap * sizeof *slots);
  free_slots = (int *)as_mem_resize(L, s->free_slots, (size_t)s->slots_cap * sizeof(int),
                                    (size_t)cap * sizeof(int));
  if (free_slots == NULL) {
    as_mem_resize(L, slots, (size_t)cap * sizeof *slots, 0);
    as_mem_error(L);
  }
  s->free_slots = free_slots;   /* nfree entries kept; room for every slot */
  for (i = 0; i < cap; i++) slots[i] = i < s->slots_cap ? old[i] : NULL;
  __atomic_signal_fence(__ATOMIC_RELEASE);   /* contents before the pointer */
  s->slots = slots;
  /* a signal handler runs on this thread: once it can see the new pointer,
  ** nobody reads the old array any more */
  as_mem_resize(L, old, (size_t)s->slots_cap * sizeof *old, 0);
  s->slots_cap = cap;
}

/* Room in the run queue and the timer heap for n forks. Raises. */
static void reserve_queues(lua_State *L, as_sched *s, size_t n) {
  void *ud;
  lua_Alloc alloc = lua_getallocf(L, &ud);
  if (!as_runq_reserve(&s->runq, n, alloc, ud) || !as_timers_reserve(&s->timers, n, alloc, ud))
    as_mem_error(L);
}

void as_sched_live_add(lua_State *L, as_sched *s, as_fork *f, int ud_idx) {
  size_t n = s->nlive + 1;
  int slot = s->nfree > 0 ? s->free_slots[s->nfree - 1] : s->top_slot + 1;
  ud_idx = lua_absindex(L, ud_idx);
  /* every step that can raise, before anything is published */
  if (n > s->runq.cap || n > s->timers.cap) reserve_queues(L, s, n);
  if (slot >= s->slots_cap) reserve_slots(L, s, slot);
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->live_ref);
  lua_pushvalue(L, ud_idx);
  lua_rawseti(L, -2, slot);
  lua_pop(L, 1);
  /* publish: nothing below raises */
  if (s->nfree > 0 && s->free_slots[s->nfree - 1] == slot) s->nfree--;
  s->slots[slot] = f;
  __atomic_signal_fence(__ATOMIC_RELEASE);   /* the slot before the count */
  if (slot > s->top_slot) s->top_slot = slot;
  f->slot = slot;
  s->nlive++;
  if (s->running != NULL) s->running->live_children++;
  as_runq_push(&s->runq, f);
}

void as_sched_live_remove(lua_State *L, as_sched *s, as_fork *f) {
  as_assert(f->slot > 0 && f->slot <= s->top_slot && s->slots[f->slot] == f);
  as_assert(s->nfree < s->slots_cap);
  if (f->name_cstr != NULL && f->live_children > 0 && f != s->root && lua_checkstack(L, 3)) {
    /* a light C function: pushing it allocates nothing; when memory runs
    ** out the name is not kept ("spawned by fork #3 (ended)") */
    lua_pushcfunction(L, keep_name);
    lua_pushlightuserdata(L, s);
    as_sched_push_fork(L, s, f);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) lua_pop(L, 1);
  }
  child_ended(L, s, f);
  release_frames(L, s, f);
  release_await(s, f);
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->live_ref);
  lua_pushnil(L);
  lua_rawseti(L, -2, f->slot);   /* storing nil never allocates */
  lua_pop(L, 1);
  s->slots[f->slot] = NULL;
  s->free_slots[s->nfree++] = f->slot;
  f->slot = 0;
  s->nlive--;
}

void as_sched_live_free(lua_State *L, as_sched *s) {
  while (s->await_chunks != NULL) {
    struct as_await_chunk *c = s->await_chunks;
    s->await_chunks = c->next;
    as_mem_resize(L, c, sizeof *c, 0);
  }
  s->await_free = NULL;
  as_mem_resize(L, s->slots, (size_t)s->slots_cap * sizeof *s->slots, 0);
  as_mem_resize(L, s->free_slots, (size_t)s->slots_cap * sizeof(int), 0);
  s->slots = NULL;
  s->free_slots = NULL;
  s->slots_cap = s->top_slot = s->nfree = 0;
}

void as_sched_reserve_frame(lua_State *L, as_sched *s, as_fork *f) {
  as_frame *frames;
  int capacity;
  if (!as_astack_full(&f->astack)) return;
  if (s->frames_ref == LUA_NOREF) {
    lua_newtable(L);
    s->frames_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  capacity = f->astack.capacity * 2;
  if (capacity > AS_ASTACK_MAX)   /* Lua's C-stack limit comes long before */
    luaL_error(L, "too many nested coroutines in fork #%I", (LUAI_UACINT)f->id);
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->frames_ref);
  frames = (as_frame *)lua_newuserdatauv(L, sizeof(as_frame) * (size_t)capacity, 0);
  /* anchored before the fork uses it (this may raise: nothing changed yet);
  ** the array it replaces goes to the collector */
  lua_rawseti(L, -2, f->slot);
  lua_pop(L, 1);
  as_astack_adopt(&f->astack, frames, capacity);
}

/* The ended fork f lets go of its grown async-stack array. Never raises. */
static void release_frames(lua_State *L, as_sched *s, as_fork *f) {
  if (f->astack.frames == f->astack.inline_frames) return;
  as_astack_release(&f->astack);
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->frames_ref);
  lua_pushnil(L);
  lua_rawseti(L, -2, f->slot);   /* storing nil never allocates */
  lua_pop(L, 1);
}

/* ------------------------------------------------------------ id order */

static int compare_fork_ids(const void *a, const void *b) {
  lua_Integer x = (*(as_fork *const *)a)->id, y = (*(as_fork *const *)b)->id;
  return (x > y) - (x < y);
}

/* qsort over a scratch array: the tables are keyed by slot or userdata, so
** their order is arbitrary. */
void as_sched_push_sorted_forks(lua_State *L, int t_idx, int use_keys) {
  size_t n = 0, cap, i;
  as_fork **v;
  int vidx;
  t_idx = lua_absindex(L, t_idx);
  lua_newtable(L);
  lua_pushnil(L);
  while (lua_next(L, t_idx)) {
    if (!lua_isuserdata(L, use_keys ? -2 : -1)) {   /* not a fork */
      lua_pop(L, 1);
      continue;
    }
    if (use_keys) lua_pushvalue(L, -2);
    else lua_pushvalue(L, -1);
    lua_rawseti(L, -4, (lua_Integer)++n);  /* anchors it while we sort */
    lua_pop(L, 1);
  }
  cap = n ? n : 1;
  /* the scratch array is a userdata so an error cannot leak it */
  v = (as_fork **)lua_newuserdatauv(L, cap * sizeof *v, 0);
  vidx = lua_gettop(L);
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, vidx - 1, (lua_Integer)i + 1);
    v[i] = (as_fork *)lua_touserdata(L, -1);
    lua_pop(L, 1);
  }
  qsort(v, n, sizeof *v, compare_fork_ids);
  /* back from pointers to userdata values through a table keyed by the
  ** pointers (light userdata) */
  lua_createtable(L, (int)n, 0);
  lua_createtable(L, 0, (int)n);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, vidx - 1, (lua_Integer)i);
    lua_rawsetp(L, -2, lua_touserdata(L, -1));
  }
  for (i = 0; i < n; i++) {
    lua_rawgetp(L, -1, v[i]);
    lua_rawseti(L, -3, (lua_Integer)i + 1);
  }
  lua_pop(L, 1);
  lua_replace(L, vidx - 1);   /* sorted array replaces the unsorted one */
  lua_pop(L, 1);              /* scratch */
}

void as_sched_push_live_list(lua_State *L, as_sched *s) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->live_ref);
  as_sched_push_sorted_forks(L, -1, 0);
  lua_remove(L, -2);
}
