/*
** profile.c: the in-process sampling profiler (see profile.h): the timer
** and the handler's installation, the drain that names the raw samples of
** profile_sample.c into a flame aggregator (flame.h), and the Lua side
** (core.profile_start / profile_stop, the asyncstack.Profile object).
*/
#define _GNU_SOURCE          /* SIGEV_THREAD_ID, gettid */
#include <errno.h>
#include <stdarg.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "profile.h"
#include "debuglayout.h"
#include "flame.h"
#include "framename.h"
#include "memwalk.h"
#include "profile_sample.h"
#include "render.h"
#include "sched.h"
#include "signals.h"
#include <lauxlib.h>

#define PROFILE_SIGNAL SIGPROF

/* The running profile: who started it and how it reads memory to name
** frames. Written by start and stop. */
static struct {
  timer_t timer;
  int have_timer;
  lua_State *mainthread;            /* the starting state's main thread */
  const as_state *state;            /* ... and its module state */
  const as_lualayout *lay;
  const as_debug_descriptor *desc;
  as_memwalk_reader reader;         /* safe reads, for naming */
  pid_t pid;
  struct profile *owner;            /* the profile being filled */
} P;

/* ---------------------------------------------------- the profile object */

typedef struct cached {
  uint64_t key[9];
  char *text;
} cached;

/* What depends on the function alone (the costly part: a search of
** package.loaded), by called value, tag, Proto and root holder. */
typedef struct fn_info {
  uint64_t key[4];
  int hidden;
  int global_pending;                   /* its global name is still to find */
  int *lines;                           /* Lua: the line of each pc, or NULL */
  int nlines;
  uintptr_t code;
  char global[AS_MEMWALK_NAME_SIZE];    /* "" when none */
  char guessed[AS_MEMWALK_NAME_SIZE];
} fn_info;

typedef struct profile {
  as_flame *flame;
  int wall, running;
  double hz;
  double started, seconds;
  unsigned long long samples;  /* stacks aggregated */
  unsigned long ticks, signals, dropped, cut, unreadable;
  double handler_seconds, naming_seconds;
  int safe_reads;
  cached *cache;               /* open addressing by raw identity */
  size_t ncache, capcache;
  fn_info **fns;               /* open addressing by function; each entry
                                  is its own allocation, so a pointer to
                                  it survives the table's growth */
  size_t nfns, capfns;
  uint64_t *buf;               /* one sample's body (room for the largest) */
  uint64_t *pending;           /* samples taken off the ring, to name */
  size_t pending_cap;          /* words */
  const char **texts;          /* its frame texts */
  char *arena;                 /* texts made per sample (forks, waits) */
} profile;

static uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  return h;
}

static size_t key_hash(const uint64_t *k) {
  uint64_t h = 0;
  int i;
  for (i = 0; i < 9; i++) h = mix(h, k[i]);
  return (size_t)(h ^ (h >> 29));
}

static int cache_grow(profile *p) {
  size_t cap = p->capcache ? p->capcache * 2 : 256, i;
  cached *c = calloc(cap, sizeof *c);
  if (c == NULL) return -1;
  for (i = 0; i < p->capcache; i++) {
    size_t j;
    if (p->cache[i].key[0] == 0) continue;
    j = key_hash(p->cache[i].key) & (cap - 1);
    while (c[j].key[0] != 0) j = (j + 1) & (cap - 1);
    c[j] = p->cache[i];
  }
  free(p->cache);
  p->cache = c;
  p->capcache = cap;
  return 0;
}

static size_t fn_hash(const uint64_t *k) {
  uint64_t h = 0;
  int i;
  for (i = 0; i < 4; i++) h = mix(h, k[i]);
  return (size_t)(h ^ (h >> 29));
}

static int fns_grow(profile *p) {
  size_t cap = p->capfns ? p->capfns * 2 : 64, i;
  fn_info **c = calloc(cap, sizeof *c);
  if (c == NULL) return -1;
  for (i = 0; i < p->capfns; i++) {
    size_t j;
    if (p->fns[i] == NULL) continue;
    j = fn_hash(p->fns[i]->key) & (cap - 1);
    while (c[j] != NULL) j = (j + 1) & (cap - 1);
    c[j] = p->fns[i];
  }
  free(p->fns);
  p->fns = c;
  p->capfns = cap;
  return 0;
}

static void raw_of(const uint64_t *e, as_memwalk_raw *raw) {
  raw->func = (uintptr_t)e[1];
  raw->func_tag = (unsigned char)(e[0] >> 8);
  raw->proto = (uintptr_t)e[2];
  raw->savedpc = (uintptr_t)e[3];
  raw->callstatus = (unsigned)((e[0] >> 16) & 0xffff);
}

/* The function-level facts of raw frame e (holder: the spawn site's
** function when it is a fork's root), found once per function. NULL when
** memory ran out. */
static const fn_info *function_info(profile *p, const uint64_t *e, uint64_t holder) {
  const as_lualayout *lay = P.lay;
  const as_debug_descriptor *d = P.desc;
  as_memwalk_raw raw;
  as_memwalk_frame mf;
  uint64_t key[4];
  fn_info *fi;
  size_t j;
  raw_of(e, &raw);
  key[0] = raw.func;
  key[1] = raw.func_tag;
  key[2] = raw.proto;
  key[3] = holder;
  if (2 * (p->nfns + 1) > p->capfns && fns_grow(p) != 0) return NULL;
  j = fn_hash(key) & (p->capfns - 1);
  while (p->fns[j] != NULL) {
    if (memcmp(p->fns[j]->key, key, sizeof key) == 0) return p->fns[j];
    j = (j + 1) & (p->capfns - 1);
  }
  fi = calloc(1, sizeof *fi);
  if (fi == NULL) return NULL;
  memcpy(fi->key, key, sizeof key);
  p->fns[j] = fi;
  p->nfns++;
  raw.callstatus |= lay->cist_C;    /* no line wanted here */
  if (as_memwalk_raw_frame(lay, &P.reader, (uintptr_t)P.mainthread, &raw, NULL, &mf) ==
      AS_MEMWALK_FAILED)
    return fi;
  /* what the traces hide: our C functions, our Lua front end */
  if (mf.cfunc != 0 && mf.cfunc >= d->text_start && mf.cfunc < d->text_end) {
    fi->hidden = 1;
    return fi;
  }
  if (mf.source_ts != 0 && d->internal_prefix_len > 0 &&
      as_memwalk_string_has_prefix(lay, &P.reader, mf.source_ts, d->internal_prefix,
                                   d->internal_prefix_len) == 1) {
    fi->hidden = 1;
    return fi;
  }
  /* found with the Lua API, in one pass for every new function
  ** (resolve_globals) */
  fi->global_pending = mf.func != 0;
  if (holder != 0 && mf.func_tag == (lay->tag_lcl | lay->bit_collectable) &&
      as_memwalk_upvalue_name(lay, &P.reader, (uintptr_t)holder, mf.func, fi->guessed,
                              sizeof fi->guessed) != 1)
    fi->guessed[0] = '\0';
  if (mf.func_tag == (lay->tag_lcl | lay->bit_collectable)) {
    int max = 1 << 16, n;
    fi->lines = malloc((size_t)max * sizeof *fi->lines);
    if (fi->lines == NULL) return NULL;
    n = as_memwalk_proto_lines(lay, &P.reader, (uintptr_t)P.mainthread, raw.proto,
                               fi->lines, max, &fi->code);
    if (n <= 0) {
      free(fi->lines);
      fi->lines = NULL;
    } else {
      int *shrunk = realloc(fi->lines, (size_t)n * sizeof *fi->lines);
      if (shrunk != NULL) fi->lines = shrunk;
      fi->nlines = n;
    }
  }
  return fi;
}

/* Names one raw frame (caller: the next frame of its coroutine, or NULL)
** of a function the traces show (fi). Returns a malloc'd text, or NULL
** when memory ran out. */
static char *name_frame(const fn_info *fi, const uint64_t *e, const uint64_t *caller) {
  const as_lualayout *lay = P.lay;
  as_memwalk_raw raw, craw;
  as_memwalk_frame mf;
  as_rframe rf;
  as_text_sink t;
  char out[512];
  raw_of(e, &raw);
  if (caller != NULL) raw_of(caller, &craw);
  as_memwalk_raw_frame(lay, &P.reader, (uintptr_t)P.mainthread, &raw,
                       caller != NULL ? &craw : NULL, &mf);
  if (mf.status == AS_MEMWALK_FAILED) {
    char *s = malloc(sizeof "[unreadable frame]");
    if (s == NULL) return NULL;
    return memcpy(s, "[unreadable frame]", sizeof "[unreadable frame]");
  }
  memset(&rf, 0, sizeof rf);
  rf.file = mf.source;
  rf.line = mf.currentline;
  rf.linedefined = mf.linedefined;
  rf.what = mf.what[0] == 'm' ? 'm' : mf.what[0] == 'C' ? 'C' : 'L';
  if (*mf.namewhat != '\0') {
    rf.name = mf.name;
    rf.namewhat = mf.namewhat;
  }
  if (fi->global[0] != '\0') rf.global_name = fi->global;
  if (fi->guessed[0] != '\0') rf.guessed_name = fi->guessed;
  as_render_profile_frame(as_text_sink_init(&t, out, sizeof out), &rf);
  {
    char *s = malloc(t.len + 1);
    if (s == NULL) return NULL;
    return memcpy(s, out, t.len + 1);
  }
}

/* The cached text of a frame: *hidden set for a frame the traces hide.
** Cached by function, current line and call site (not by pc: a hot loop
** has many pcs on few lines). NULL when memory ran out. */
static const char *frame_text(profile *p, const uint64_t *e, const uint64_t *caller,
                              uint64_t holder, int *hidden) {
  const fn_info *fi = function_info(p, e, holder);
  uint64_t key[9];
  size_t j;
  char *text;
  int i;
  *hidden = 0;
  if (fi == NULL) return NULL;
  if (fi->hidden) {
    *hidden = 1;
    return "";
  }
  for (i = 0; i < 4; i++) key[i] = e[i];
  if (fi->lines != NULL && e[3] > fi->code) {
    uint64_t pc = (e[3] - fi->code) / 4 - 1;
    key[3] = pc < (uint64_t)fi->nlines ? (uint64_t)(unsigned)fi->lines[pc] : (uint64_t)-1;
  }
  for (i = 0; i < 4; i++) key[4 + i] = caller != NULL ? caller[i] : 0;
  key[8] = holder;
  if (2 * (p->ncache + 1) > p->capcache && cache_grow(p) != 0) return NULL;
  j = key_hash(key) & (p->capcache - 1);
  while (p->cache[j].key[0] != 0) {
    if (memcmp(p->cache[j].key, key, sizeof key) == 0) return p->cache[j].text;
    j = (j + 1) & (p->capcache - 1);
  }
  text = name_frame(fi, e, caller);
  if (text == NULL) return NULL;
  memcpy(p->cache[j].key, key, sizeof key);
  p->cache[j].text = text;
  p->ncache++;
  return text;
}

/* The await point of a wall-mode sample (entry e: AS_PS_AWAIT), through
** the one renderer of await points (render.h). */
static const char *await_text(const uint64_t *e, char *buf, size_t size) {
  int point;
  as_text_sink t;
  switch (e[1]) {
    case AS_PS_AWAIT_RUNNABLE: point = AS_POINT_RUNNABLE; break;
    case AS_AWAIT_SLEEP: point = AS_POINT_SLEEP; break;
    case AS_AWAIT_YIELD: point = AS_POINT_YIELD; break;
    case AS_AWAIT_WAIT:
      point = e[2] != 0 ? AS_POINT_WAIT : e[3] == AS_WAIT_ALL ? AS_POINT_WAIT_ALL
                                                               : AS_POINT_WAIT_ANY;
      break;
    case AS_AWAIT_CHANNEL:
      point = e[3] == 1 ? AS_POINT_CHANNEL_SEND : AS_POINT_CHANNEL_RECV;
      break;
    case AS_AWAIT_FD: point = e[3] ? AS_POINT_FD_WRITE : AS_POINT_FD_READ; break;
    default: point = AS_POINT_OTHER;
  }
  as_render_await_point(as_text_sink_init(&t, buf, size), point, (long long)e[2]);
  return buf;
}

/* Names the sample body p->buf[0, 4n) and adds it to the flame. */
static int add_sample(profile *p, const uint64_t *e, int n, uint64_t weight) {
  int i, nt = 0, room = 0;
  char *arena = p->arena;
  for (i = 0; i < n; i++) {
    const uint64_t *x = e + 4 * i;
    const char *text = NULL;
    char small[96];
    switch (x[0] & 0xff) {
      case AS_PS_FRAME: {
        const uint64_t *next = i + 1 < n ? x + 4 : NULL;
        const uint64_t *caller = next != NULL && (next[0] & 0xff) == AS_PS_FRAME ? next : NULL;
        /* the frame just before a fork's separator is its root function */
        uint64_t holder = next != NULL && (next[0] & 0xff) == AS_PS_FORK ? next[2] : 0;
        int hidden;
        text = frame_text(p, x, caller, holder, &hidden);
        if (text == NULL) return -1;
        if (hidden) text = NULL;
        break;
      }
      case AS_PS_BAD:
        p->unreadable++;
        text = "[unreadable frame]";
        break;
      case AS_PS_FORK: {
        as_sink *k;
        as_text_sink t;
        char name[AS_PS_NAME_CHUNK * AS_PS_NAME_ENTRIES + 1];
        int j = i + 1, len = 0;
        while (j < n && (e[4 * j] & 0xff) == AS_PS_NAME) {
          memcpy(name + len, &e[4 * j + 1], AS_PS_NAME_CHUNK);
          len += AS_PS_NAME_CHUNK;
          j++;
        }
        name[len] = '\0';
        k = as_text_sink_init(&t, small, sizeof small);
        as_render_str(k, "[");
        as_render_fork_label(k, (long long)x[1], len > 0 ? name : NULL);
        as_render_str(k, "]");
        text = small;
        break;
      }
      case AS_PS_AWAIT:
        text = await_text(x, small, sizeof small);
        break;
      case AS_PS_MARK:
        text = x[1] == AS_PS_MARK_SCHEDULER ? "[scheduler]"
             : x[1] == AS_PS_MARK_OUTSIDE_RUN ? "[outside run()]" : "[more frames]";
        break;
      default:
        break;
    }
    if (text == NULL) continue;
    if (text == small) {   /* copy into the sample's arena */
      size_t len = strlen(small) + 1;
      memcpy(arena + room, small, len);
      text = arena + room;
      room += (int)len;
    }
    p->texts[nt++] = text;
  }
  /* innermost first -> root first */
  for (i = 0; i < nt / 2; i++) {
    const char *t = p->texts[i];
    p->texts[i] = p->texts[nt - 1 - i];
    p->texts[nt - 1 - i] = t;
  }
  if (as_flame_add(p->flame, p->texts, nt, weight) != 0) return -1;
  p->samples += weight;
  return 0;
}

/* Global names of new functions (fn_info.global_pending), found through
** the Lua API in one pass over package.loaded (framename.h), as the traces
** find them; called protected (it allocates). */
typedef struct pending_globals {
  profile *p;
  const void **ids;
  fn_info **fis;
  size_t n;
} pending_globals;

static int resolve_globals(lua_State *L) {
  pending_globals *g = lua_touserdata(L, 1);
  as_fnset *set = as_names_push_identities(L, g->ids, g->n);
  int names = lua_gettop(L);
  size_t i;
  for (i = 0; i < g->n; i++) {
    const char *name = as_names_global_identity(L, set, names, g->ids[i]);
    if (name != NULL) {
      size_t len = strlen(name);
      if (len >= sizeof g->fis[i]->global) len = sizeof g->fis[i]->global - 1;
      memcpy(g->fis[i]->global, name, len);
      g->fis[i]->global[len] = '\0';
    }
  }
  return 0;
}

/* The functions of the samples in pending[0, used) (each: entry count,
** weight, body) get their function-level facts before any is named. */
static void prepare_functions(lua_State *L, profile *p, const uint64_t *pending,
                              size_t used) {
  pending_globals g;
  size_t cap = 0, at = 0, i;
  g.p = p;
  g.ids = NULL;
  g.fis = NULL;
  g.n = 0;
  while (at < used) {
    size_t n = (size_t)pending[at];
    const uint64_t *body = pending + at + 2;
    for (i = 0; i < n; i++) {
      const uint64_t *e = body + 4 * i;
      uint64_t holder = 0;
      fn_info *fi;
      if ((e[0] & 0xff) != AS_PS_FRAME) continue;
      if (i + 1 < n && (e[4] & 0xff) == AS_PS_FORK) holder = e[6];
      fi = (fn_info *)function_info(p, e, holder);
      if (fi == NULL || !fi->global_pending) continue;
      fi->global_pending = 0;
      if (g.n == cap) {
        size_t ncap = cap ? 2 * cap : 32;
        const void **ids = realloc(g.ids, ncap * sizeof *ids);
        fn_info **fis = ids != NULL ? realloc(g.fis, ncap * sizeof *fis) : NULL;
        if (ids != NULL) g.ids = ids;
        if (fis == NULL) break;
        g.fis = fis;
        cap = ncap;
      }
      g.ids[g.n] = (const void *)(uintptr_t)e[1];
      g.fis[g.n++] = fi;
    }
    at += 2 + 4 * n;
  }
  if (g.n > 0 && L != NULL && lua_checkstack(L, 4)) {
    int top = lua_gettop(L);
    lua_pushcfunction(L, resolve_globals);
    lua_pushlightuserdata(L, &g);
    /* out of memory: those functions keep no global name (they are
    ** named as their callers name them) */
    (void)lua_pcall(L, 1, 0, 0);
    lua_settop(L, top);
  }
  free(g.ids);
  free(g.fis);
}

/* Takes every sample from the ring and names it into p (L: for the global
** names). A sample that finds no memory is counted dropped. */
static void drain(lua_State *L, profile *p) {
  const size_t room = 2 + 4 * (size_t)AS_PS_SAMPLE_ENTRIES;
  double t0 = as_now();
  size_t used = 0, at;
  for (;;) {
    uint64_t weight;
    int n;
    if (p->pending_cap - used < room) {
      size_t cap = p->pending_cap ? 2 * p->pending_cap : 8 * room;
      uint64_t *grown = realloc(p->pending, cap * sizeof *grown);
      if (grown == NULL) {          /* name what we have; count the rest */
        while (as_ps_next(p->buf, &weight) >= 0) p->dropped++;
        break;
      }
      p->pending = grown;
      p->pending_cap = cap;
    }
    n = as_ps_next(p->pending + used + 2, &weight);
    if (n < 0) break;
    p->pending[used] = (uint64_t)n;
    p->pending[used + 1] = weight;
    used += 2 + 4 * (size_t)n;
  }
  prepare_functions(L, p, p->pending, used);
  for (at = 0; at < used; at += 2 + 4 * (size_t)p->pending[at])
    if (add_sample(p, p->pending + at + 2, (int)p->pending[at], p->pending[at + 1]) != 0)
      p->dropped++;
  p->naming_seconds += as_now() - t0;
}

/* ------------------------------------------------------ start and stop */

static void stop_sampling(void) {
  sigset_t block, old;
  struct timespec zero = {0, 0};
  sigemptyset(&block);
  sigaddset(&block, PROFILE_SIGNAL);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  as_ps_set_active(0);
  if (P.have_timer) {
    timer_delete(P.timer);
    P.have_timer = 0;
  }
  /* a tick generated before the timer went may still be pending: take it
  ** here, not with the previous action (the default ends the process) */
  while (sigtimedwait(&block, NULL, &zero) == PROFILE_SIGNAL) {}
  if (as_signals_role(PROFILE_SIGNAL) == AS_SIGROLE_PROFILE)
    as_signals_release(PROFILE_SIGNAL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void finish(lua_State *L, profile *p) {
  as_ps_counts c;
  drain(L, p);
  c = as_ps_counts_now();
  p->running = 0;
  p->seconds = as_now() - p->started;
  p->ticks = c.ticks;
  p->signals = c.signals;
  p->handler_seconds = c.handler_seconds;
  p->dropped += c.dropped;
  p->cut = c.cut;
  as_ps_teardown();
  P.owner = NULL;
  P.state = NULL;
}

void as_profile_shutdown(void) {
  if (P.owner == NULL) return;
  stop_sampling();
  P.owner->running = 0;
  as_ps_teardown();
  P.owner = NULL;
  P.state = NULL;
}

int as_profile_pending(void) {
  return P.owner != NULL && as_ps_pending();
}

void as_profile_safe_point(lua_State *L, as_state *st) {
  if (P.owner != NULL && st == P.state) drain(L, P.owner);
}

static const char running_key = 'P';   /* registry: the running profile */

static profile *check_profile(lua_State *L, const char *method) {
  profile *p = luaL_testudata(L, 1, AS_PROFILE_MT);
  if (p == NULL) {
    luaL_error(L, "bad argument #1 to '%s' (asyncstack.Profile expected, got %s; "
               "call it as profile:%s())", method, luaL_typename(L, 1), method);
  }
  return p;
}

static void profile_release(profile *p) {
  size_t i;
  for (i = 0; i < p->capcache; i++) free(p->cache[i].text);
  free(p->cache);
  p->cache = NULL;
  p->capcache = p->ncache = 0;
  for (i = 0; i < p->capfns; i++) {
    if (p->fns[i] == NULL) continue;
    free(p->fns[i]->lines);
    free(p->fns[i]);
  }
  free(p->fns);
  p->fns = NULL;
  p->capfns = p->nfns = 0;
  as_flame_free(p->flame);
  p->flame = NULL;
  free(p->buf);
  p->buf = NULL;
  free(p->pending);
  p->pending = NULL;
  p->pending_cap = 0;
  free(p->texts);
  p->texts = NULL;
  free(p->arena);
  p->arena = NULL;
}

static int profile_gc(lua_State *L) {
  profile *p = lua_touserdata(L, 1);
  if (p->running && P.owner == p) as_profile_shutdown();
  profile_release(p);
  return 0;
}

/* A failed start: the profile is let go (it was anchored first), then the
** error "profile.start: <what>" is raised. */
static int start_failed(lua_State *L, const char *fmt, ...) {
  va_list ap;
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &running_key);
  lua_pushliteral(L, "profile.start: ");
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_concat(L, 2);
  return lua_error(L);
}

/* core.profile_start(hz, "cpu"|"wall"): the arguments are checked by
** lua/asyncstack/profile.lua; here only their types. */
static int profile_start(lua_State *L) {
  static const char *const modes[] = {"cpu", "wall", NULL};
  as_state *st = as_state_get(L);
  double hz = luaL_checknumber(L, 1);
  int wall = luaL_checkoption(L, 2, NULL, modes);
  profile *p;
  struct sigaction sa;
  struct sigevent sev;
  struct itimerspec its;
  long long ns;
  int err;
  if (!(hz >= 1 && hz <= 10000))
    return luaL_argerror(L, 1, "hz must be between 1 and 10000");
  if (P.owner != NULL)
    return luaL_error(L, "profile.start: a profile is already running "
                         "(as.profile.stop() ends it)");
  P.lay = as_debuglayout_lua();
  if (P.lay == NULL)
    return luaL_error(L, "profile.start: the Lua layout of this interpreter is not "
                         "verified (see as.debug_layout()): frames cannot be read");
  as_signals_guard(L);                      /* may raise: before any change */
  p = lua_newuserdatauv(L, sizeof *p, 0);
  memset(p, 0, sizeof *p);
  luaL_setmetatable(L, AS_PROFILE_MT);
  /* anchored while it runs (its __gc, at the latest when the state closes,
  ** stops the timer); stored first: the steps below raise nothing */
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &running_key);
  p->flame = as_flame_new();
  p->buf = malloc(4 * AS_PS_SAMPLE_ENTRIES * sizeof *p->buf);
  p->texts = malloc(AS_PS_SAMPLE_ENTRIES * sizeof *p->texts);
  p->arena = malloc(AS_PS_SAMPLE_ENTRIES * 96);
  if (p->flame == NULL || p->buf == NULL || p->texts == NULL || p->arena == NULL)
    return start_failed(L, "not enough memory");
  p->wall = wall;
  p->hz = hz;
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  P.mainthread = lua_tothread(L, -1);
  lua_pop(L, 1);
  P.desc = as_debuglayout_get();
  as_memwalk_reader_self(&P.reader, &P.pid);
  if (as_ps_setup(P.lay, P.mainthread, wall) != 0) return start_failed(L, "not enough memory");
  p->safe_reads = as_ps_safe_reads();
  /* the handler, then the timer; the handler samples once it is active */
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = as_ps_handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  err = as_signals_take(L, PROFILE_SIGNAL, AS_SIGROLE_PROFILE, &sa);
  if (err != 0) {
    as_ps_teardown();
    return start_failed(L, "cannot install the SIGPROF handler: %s", strerror(err));
  }
  memset(&sev, 0, sizeof sev);
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev.sigev_signo = PROFILE_SIGNAL;
  sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
  if (timer_create(wall ? CLOCK_MONOTONIC : CLOCK_PROCESS_CPUTIME_ID, &sev, &P.timer) != 0) {
    err = errno;
    as_signals_release(PROFILE_SIGNAL);
    as_ps_teardown();
    return start_failed(L, "timer_create failed: %s", strerror(err));
  }
  P.have_timer = 1;
  P.state = st;
  P.owner = p;
  p->running = 1;
  p->started = as_now();
  as_ps_set_active(1);
  ns = (long long)(1e9 / hz);
  its.it_interval.tv_sec = (time_t)(ns / 1000000000LL);
  its.it_interval.tv_nsec = (long)(ns % 1000000000LL);
  its.it_value = its.it_interval;
  if (timer_settime(P.timer, 0, &its, NULL) != 0) {
    err = errno;
    as_profile_shutdown();
    return start_failed(L, "timer_settime failed: %s", strerror(err));
  }
  return 1;
}

static int profile_stop(lua_State *L) {
  profile *p = P.owner;
  if (p == NULL || P.state != as_state_get(L))
    return luaL_error(L, "profile.stop: no profile is running");
  stop_sampling();
  finish(L, p);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &running_key) != LUA_TUSERDATA ||
      lua_touserdata(L, -1) != p)
    return luaL_error(L, "profile.stop: the running profile was lost");
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &running_key);
  return 1;
}

static int profile_running(lua_State *L) {
  lua_pushboolean(L, P.owner != NULL && P.state == as_state_get(L));
  return 1;
}

/* ------------------------------------------------------------ outputs */

static profile *check_stopped(lua_State *L, const char *method) {
  profile *p = check_profile(L, method);
  if (p->running) luaL_error(L, "%s: the profile is still running (as.profile.stop() ends it)", method);
  if (p->flame == NULL) luaL_error(L, "%s: the profile was released", method);
  return p;
}

/* The writers use malloc, outside Lua, and must not be cut short by a Lua
** error (flame.c frees its work memory before returning): the text goes to
** a malloc'd buffer first, then into one Lua string. */
typedef struct growbuf {
  char *s;
  size_t n, cap;
  int failed;
} growbuf;

static void grow_write(void *ud, const char *s, size_t n) {
  growbuf *g = ud;
  if (g->failed) return;
  if (g->n + n > g->cap) {
    size_t cap = g->cap ? g->cap : 4096;
    char *b;
    while (cap < g->n + n) cap *= 2;
    b = realloc(g->s, cap);
    if (b == NULL) {
      g->failed = 1;
      return;
    }
    g->s = b;
    g->cap = cap;
  }
  memcpy(g->s + g->n, s, n);
  g->n += n;
}

static int push_growbuf(lua_State *L) {
  const growbuf *g = lua_touserdata(L, 1);
  lua_pushlstring(L, g->s != NULL ? g->s : "", g->n);
  return 1;
}

/* Pushes the text (a protected copy: a memory error from Lua must not leak
** the malloc'd text) and frees it. */
static int push_output(lua_State *L, growbuf *g, int r, const char *method) {
  int status;
  if (r != 0 || g->failed) {
    free(g->s);
    return luaL_error(L, "%s: not enough memory", method);
  }
  lua_pushcfunction(L, push_growbuf);
  lua_pushlightuserdata(L, g);
  status = lua_pcall(L, 1, 1, 0);
  free(g->s);
  if (status != LUA_OK) return lua_error(L);
  return 1;
}

static int profile_folded(lua_State *L) {
  profile *p = check_stopped(L, "folded");
  growbuf g = {NULL, 0, 0, 0};
  int r = as_flame_folded(p->flame, grow_write, &g);
  return push_output(L, &g, r, "folded");
}

static void profile_title(const profile *p, char *buf, size_t size) {
  snprintf(buf, size, "%s profile, %g Hz, %llu samples over %.2f s%s",
           p->wall ? "wall" : "cpu", p->hz, p->samples, p->seconds,
           p->dropped ? " (some dropped)" : "");
}

static int profile_speedscope(lua_State *L) {
  profile *p = check_stopped(L, "speedscope");
  growbuf g = {NULL, 0, 0, 0};
  char title[160];
  int r;
  profile_title(p, title, sizeof title);
  r = as_flame_speedscope(p->flame, title, 1000.0 / p->hz, grow_write, &g);
  return push_output(L, &g, r, "speedscope");
}

static int profile_svg(lua_State *L) {
  profile *p = check_stopped(L, "svg");
  const char *title = NULL;
  growbuf g = {NULL, 0, 0, 0};
  char sub[160];
  int r;
  if (!lua_isnoneornil(L, 2)) {
    if (lua_type(L, 2) != LUA_TSTRING)
      return luaL_error(L, "bad argument #2 to 'svg' (string expected, got %s)",
                        luaL_typename(L, 2));
    title = lua_tostring(L, 2);
  }
  profile_title(p, sub, sizeof sub);
  r = as_flame_svg(p->flame, title != NULL ? title : "asyncstack profile", sub,
                   grow_write, &g);
  return push_output(L, &g, r, "svg");
}

static int profile_info(lua_State *L) {
  profile *p = check_profile(L, "info");
  lua_createtable(L, 0, 12);
  lua_pushstring(L, p->wall ? "wall" : "cpu");
  lua_setfield(L, -2, "mode");
  lua_pushnumber(L, p->hz);
  lua_setfield(L, -2, "hz");
  lua_pushboolean(L, p->running);
  lua_setfield(L, -2, "running");
  lua_pushinteger(L, (lua_Integer)p->samples);
  lua_setfield(L, -2, "samples");
  lua_pushinteger(L, (lua_Integer)(p->running ? as_ps_counts_now().ticks : p->ticks));
  lua_setfield(L, -2, "ticks");
  lua_pushinteger(L, (lua_Integer)(p->running ? as_ps_counts_now().signals : p->signals));
  lua_setfield(L, -2, "signals");
  lua_pushinteger(L, (lua_Integer)p->dropped);
  lua_setfield(L, -2, "dropped");
  lua_pushinteger(L, (lua_Integer)p->cut);
  lua_setfield(L, -2, "cut");
  lua_pushinteger(L, (lua_Integer)p->unreadable);
  lua_setfield(L, -2, "unreadable");
  lua_pushnumber(L, p->running ? as_now() - p->started : p->seconds);
  lua_setfield(L, -2, "seconds");
  lua_pushboolean(L, p->safe_reads);
  lua_setfield(L, -2, "safe_reads");
  lua_pushnumber(L, p->running ? as_ps_counts_now().handler_seconds : p->handler_seconds);
  lua_setfield(L, -2, "handler_seconds");
  lua_pushnumber(L, p->naming_seconds);
  lua_setfield(L, -2, "naming_seconds");
  if (p->flame != NULL) {
    lua_pushinteger(L, (lua_Integer)as_flame_nstacks(p->flame));
    lua_setfield(L, -2, "stacks");
    lua_pushinteger(L, (lua_Integer)as_flame_nframes(p->flame));
    lua_setfield(L, -2, "frames");
  }
  return 1;
}

static int profile_tostring(lua_State *L) {
  profile *p = check_profile(L, "__tostring");
  lua_pushfstring(L, "asyncstack.Profile (%s, %f Hz, %I samples%s)",
                  p->wall ? "wall" : "cpu", p->hz, (lua_Integer)p->samples,
                  p->running ? ", running" : "");
  return 1;
}

void as_profile_open(lua_State *L) {
  static const luaL_Reg methods[] = {
    {"folded", profile_folded}, {"speedscope", profile_speedscope},
    {"svg", profile_svg}, {"info", profile_info}, {NULL, NULL}
  };
  static const luaL_Reg meta[] = {
    {"__gc", profile_gc}, {"__tostring", profile_tostring}, {NULL, NULL}
  };
  static const luaL_Reg funcs[] = {
    {"profile_start", profile_start}, {"profile_stop", profile_stop},
    {"profile_running", profile_running}, {NULL, NULL}
  };
  luaL_newmetatable(L, AS_PROFILE_MT);
  as_module_setfuncs(L, meta);
  lua_newtable(L);
  as_module_setfuncs(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  as_module_setfuncs(L, funcs);
}
