/*
** memwalk_forks.c: every fork of every running scheduler, from memory alone
** (see memwalk_forks.h). Everything asyncstack-specific is read at the
** offsets the descriptor states (debuglayout.h), never with this build's
** struct definitions, so the same code reads another process or a core file
** of a build with other offsets.
*/
#include <string.h>
#include "memwalk_forks.h"
#include "debuglayout.h"

typedef as_memwalk_target forks_walk;

#define OWN(fw, name) ((fw)->d.own[AS_DEBUG_OWN_##name])

static int rd_u64(forks_walk *fw, uintptr_t addr, uint64_t *out) {
  return addr == 0 ? -1 : fw->rd->read(fw->rd->ctx, addr, sizeof *out, out);
}

static int rd_i32(forks_walk *fw, uintptr_t addr, int32_t *out) {
  return addr == 0 ? -1 : fw->rd->read(fw->rd->ctx, addr, sizeof *out, out);
}

static int rd_u16(forks_walk *fw, uintptr_t addr, uint16_t *out) {
  return fw->rd->read(fw->rd->ctx, addr, sizeof *out, out);
}

static int rd_u8(forks_walk *fw, uintptr_t addr, unsigned char *out) {
  return addr == 0 ? -1 : fw->rd->read(fw->rd->ctx, addr, 1, out);
}

static int rd_double(forks_walk *fw, uintptr_t addr, double *out) {
  return addr == 0 ? -1 : fw->rd->read(fw->rd->ctx, addr, sizeof *out, out);
}

static int ptr_ok(uint64_t p) {
  return p != 0 && (p & 7) == 0;
}

/* A NUL-terminated C string at addr, cut to size - 1 bytes ("" when it
** cannot be read). Read in small pieces: the string may end near the end of
** a mapping. */
static void rd_cstring(forks_walk *fw, uintptr_t addr, char *out, size_t size) {
  size_t n = 0;
  out[0] = '\0';
  if (addr == 0) return;
  while (n + 1 < size) {
    char c;
    if (fw->rd->read(fw->rd->ctx, addr + n, 1, &c) != 0 || c == '\0') break;
    out[n++] = c;
  }
  out[n] = '\0';
}

/* Reads and checks the descriptor; rebuilds the Lua layout into *lay. */
const char *as_memwalk_target_open(as_memwalk_target *fw,
                                   const as_memwalk_reader *rd,
                                   uintptr_t addr) {
  as_debug_descriptor *d = &fw->d;
  as_lualayout *lay = &fw->lay;
  int i = 0;
  fw->rd = rd;
  fw->names = NULL;
  if (rd == NULL || rd->read == NULL) return "no reader";
  if (addr == 0 || fw->rd->read(fw->rd->ctx, addr, sizeof *d, d) != 0)
    return "the descriptor cannot be read";
  if (memcmp(d->magic, AS_DEBUG_MAGIC, sizeof d->magic) != 0)
    return "no asyncstack debug descriptor there (bad magic)";
  if (d->layout_version != AS_DEBUG_LAYOUT_VERSION ||
      d->descriptor_size != sizeof *d || d->pointer_size != sizeof(void *) ||
      d->nown != AS_DEBUG_NOWN || d->nlua != AS_DEBUG_NLUA)
    return "the descriptor has another layout version";
  if (d->status != AS_DEBUG_VERIFIED)
    return "the Lua layout is unverified (see as.debug_layout())";
  d->lua_release[sizeof d->lua_release - 1] = '\0';
  d->internal_prefix[sizeof d->internal_prefix - 1] = '\0';
  if (d->internal_prefix_len >= sizeof d->internal_prefix) d->internal_prefix_len = 0;
  memset(lay, 0, sizeof *lay);
  lay->releases = d->lua_release;
  lay->naming = (int)d->lua_naming;
  lay->finalizer_on_caller = (int)d->lua_finalizer_on_caller;
  lay->env_needs_variable = (int)d->lua_env_needs_variable;
#define AS_FORKS_LUA_FIELD(name) lay->name = d->lua[i++];
  AS_LUALAYOUT_FIELDS(AS_FORKS_LUA_FIELD)
#undef AS_FORKS_LUA_FIELD
  memcpy(lay->opmodes, d->lua_opmodes, sizeof lay->opmodes);
  return NULL;
}

int as_memwalk_global_name_cached(as_memwalk_target *fw, uintptr_t thread,
                                  const as_memwalk_frame *f, char *out,
                                  size_t size) {
  as_memwalk_name_cache *c = fw->names;
  unsigned h;
  int r;
  if (c == NULL || f->func == 0)
    return as_memwalk_global_name(&fw->lay, fw->rd, thread, f, out, size);
  h = (unsigned)((f->func >> 4) ^ (f->func >> 17)) % AS_MEMWALK_NAME_CACHE;
  if (c->func[h] == f->func) {
    if (!c->found[h]) return 0;
    if (size > 0) {
      size_t n = strlen(c->name[h]);
      if (n >= size) n = size - 1;
      memcpy(out, c->name[h], n);
      out[n] = '\0';
    }
    return 1;
  }
  r = as_memwalk_global_name(&fw->lay, fw->rd, thread, f, c->name[h],
                             sizeof c->name[h]);
  if (r < 0) return r;          /* unreadable now: not remembered */
  c->func[h] = f->func;
  c->found[h] = (signed char)r;
  if (r == 1 && size > 0) {
    size_t n = strlen(c->name[h]);
    if (n >= size) n = size - 1;
    memcpy(out, c->name[h], n);
    out[n] = '\0';
  }
  return r;
}

/* Whether the traces hide frame f (asyncstack's own C code or front end). */
static int hidden(forks_walk *fw, const as_memwalk_frame *f) {
  const as_debug_descriptor *d = &fw->d;
  if (f->cfunc != 0)
    return f->cfunc >= d->text_start && f->cfunc < d->text_end;
  if (f->source_ts != 0 && d->internal_prefix_len > 0)
    return as_memwalk_string_has_prefix(&fw->lay, fw->rd, f->source_ts,
                                        d->internal_prefix,
                                        d->internal_prefix_len) == 1;
  return 0;
}

/* Walks coroutine `thread` into frames[0, room), dropping hidden frames and
** naming unnamed ones by their global name; returns how many were kept
** (*status: the walk's). */
int as_memwalk_thread_visible(as_memwalk_target *fw, uintptr_t thread,
                              as_memwalk_frame *frames, int room,
                              as_memwalk_status *status) {
  int n = 0, kept = 0, i;
  *status = as_memwalk_frames(&fw->lay, fw->rd, thread, 0, frames, room, &n);
  for (i = 0; i < n; i++) {
    as_memwalk_frame *f = &frames[i];
    if (f->status == AS_MEMWALK_FAILED || hidden(fw, f)) continue;
    if (*f->namewhat == '\0' && f->func != 0) {
      if (as_memwalk_global_name_cached(fw, thread, f, f->name,
                                        sizeof f->name) == 1)
        f->name_kind = AS_MEMWALK_NAME_GLOBAL;
      else
        f->name[0] = '\0';
    }
    if (kept != i) frames[kept] = *f;
    kept++;
  }
  return kept;
}

/* The fork's root function with neither a call-site nor a global name is
** named as the traces name it: the upvalue of the spawn site's function
** that holds it ("local function worker ... fork(worker)"). */
static void name_root(forks_walk *fw, uintptr_t fork, as_memwalk_frame *f) {
  uint64_t holder;
  if (*f->namewhat != '\0' || f->name[0] != '\0' || f->func == 0 ||
      f->func_tag != (fw->lay.tag_lcl | fw->lay.bit_collectable) ||
      rd_u64(fw, fork + OWN(fw, fork_spawn_func), &holder) != 0 || !ptr_ok(holder))
    return;
  if (as_memwalk_upvalue_name(&fw->lay, fw->rd, (uintptr_t)holder, f->func,
                              f->name, sizeof f->name) == 1)
    f->name_kind = AS_MEMWALK_NAME_UPVALUE;
  else
    f->name[0] = '\0';
}

static as_memwalk_status worse(as_memwalk_status a, as_memwalk_status b) {
  return a > b ? a : b;
}

/* The await record of fork `f` (fork.h: as_fork.await), or 0. */
static uintptr_t await_record(forks_walk *fw, uintptr_t f) {
  uint64_t p;
  if (rd_u64(fw, f + OWN(fw, fork_await), &p) != 0 || !ptr_ok(p)) return 0;
  return (uintptr_t)p;
}

/* AS_MEMWALK_WAIT_* of the wait fork `f` is in (plain when unreadable). */
static int wait_mode_of(forks_walk *fw, uintptr_t f) {
  unsigned char mode;
  uintptr_t rec = await_record(fw, f);
  if (rec == 0 || rd_u8(fw, rec + OWN(fw, await_wait_mode), &mode) != 0)
    return AS_MEMWALK_WAIT_ONE;
  if (mode == OWN(fw, wait_mode_all)) return AS_MEMWALK_WAIT_ALL;
  if (mode == OWN(fw, wait_mode_any)) return AS_MEMWALK_WAIT_ANY;
  return AS_MEMWALK_WAIT_ONE;
}

/* The deadline, and what the await kind `kind` waits on beyond the one
** awaited fork or fd: the channel, the direction of an fd, the targets of
** a combinator. */
static void read_await_details(forks_walk *fw, uintptr_t addr, unsigned kind,
                               as_memwalk_fork *out) {
  int32_t heap_index, n;
  unsigned char b;
  uint64_t p;
  int64_t id;
  uintptr_t rec;
  if (rd_i32(fw, addr + OWN(fw, fork_heap_index), &heap_index) == 0 &&
      heap_index >= 0 && rd_double(fw, addr + OWN(fw, fork_deadline), &out->deadline) == 0)
    out->has_deadline = 1;
  if (kind == 0 || (rec = await_record(fw, addr)) == 0) return;
  if (kind == OWN(fw, await_channel)) {
    if (rd_u64(fw, rec + OWN(fw, await_chan), &p) == 0 && ptr_ok(p) &&
        fw->rd->read(fw->rd->ctx, (uintptr_t)p + OWN(fw, channel_id), sizeof id, &id) == 0)
      out->channel_id = (long long)id;
    if (rd_u8(fw, rec + OWN(fw, await_chan_op), &b) == 0) out->channel_op = b;
  } else if (kind == OWN(fw, await_fd)) {
    if (rd_u8(fw, rec + OWN(fw, await_fd_write), &b) == 0) out->fd_write = b != 0;
  } else if (kind == OWN(fw, await_wait)) {
    int k;
    out->wait_mode = wait_mode_of(fw, addr);
    if (rd_u64(fw, rec + OWN(fw, await_wait_nodes), &p) != 0 || !ptr_ok(p) ||
        rd_i32(fw, rec + OWN(fw, await_wait_nnodes), &n) != 0 || n < 0)
      return;
    for (k = 0; k < n && k < 1 << 20; k++) {
      uintptr_t node = (uintptr_t)p + (uintptr_t)k * OWN(fw, waitnode_size);
      uint64_t target;
      unsigned char linked;
      if (rd_u8(fw, node + OWN(fw, waitnode_linked), &linked) != 0) break;
      if (!linked) continue;   /* that target has ended (wait_all) */
      if (out->nwait_targets == AS_MEMWALK_MAX_WAITERS) {
        out->more_wait_targets = 1;
        break;
      }
      if (rd_u64(fw, node + OWN(fw, waitnode_target), &target) != 0 || !ptr_ok(target) ||
          fw->rd->read(fw->rd->ctx, (uintptr_t)target + OWN(fw, fork_id), sizeof id, &id) != 0)
        break;
      out->wait_targets[out->nwait_targets++] = (long long)id;
    }
  }
}

void as_memwalk_await_name(const as_memwalk_target *fw, unsigned kind,
                           char *out, size_t size) {
  /* the names core.fork_info gives (as_await_ops.name), by the
  ** descriptor's numbering */
  static const char *const names[] = { "sleep", "wait", "yield", "channel", "fd" };
  const uint32_t kinds[] = { OWN(fw, await_sleep), OWN(fw, await_wait), OWN(fw, await_yield),
                             OWN(fw, await_channel), OWN(fw, await_fd) };
  size_t k;
  if (size == 0) return;
  out[0] = '\0';
  for (k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
    if (kind == kinds[k]) {   /* (no snprintf: the crash handler calls this) */
      size_t i;
      for (i = 0; i + 1 < size && names[k][i] != '\0'; i++) out[i] = names[k][i];
      out[i] = '\0';
      return;
    }
}

uintptr_t as_memwalk_sched_caller(as_memwalk_target *fw, uintptr_t sched) {
  uint64_t L;
  if (!ptr_ok(sched) || rd_u64(fw, sched + OWN(fw, sched_L), &L) != 0 || !ptr_ok(L))
    return 0;
  return (uintptr_t)L;
}

/* Reads fork `addr` of scheduler `s` (whose batch time is `now`). */
void as_memwalk_fork_read(as_memwalk_target *fw, uintptr_t s, uintptr_t addr, double now,
                          as_memwalk_fork *out, as_memwalk_frame *frames,
                          int room) {
  unsigned char status = 0, kind = 0;
  uint64_t p, node, astack_frames;
  int32_t i32;
  uint16_t depth;
  int64_t id;
  double since;
  int k;
  uintptr_t rec;
  memset(out, 0, sizeof *out);
  out->addr = addr;
  out->sched = s;
  out->status = -1;
  out->spawn_line = out->spawn_linedefined = -1;
  out->walk = AS_MEMWALK_FAILED;
  if (fw->rd->read(fw->rd->ctx, addr + OWN(fw, fork_id), sizeof id, &id) != 0 ||
      rd_u8(fw, addr + OWN(fw, fork_status), &status) != 0)
    return;
  out->id = (long long)id;
  out->status = status;
  if (rd_u64(fw, addr + OWN(fw, fork_name_cstr), &p) == 0)
    rd_cstring(fw, (uintptr_t)p, out->name, sizeof out->name);
  /* the kind's name is the reader's (as_memwalk_await_name): the library's
  ** strings may be out of reach (a core leaves read-only data out) */
  if (rd_u8(fw, addr + OWN(fw, fork_await_kind), &kind) == 0 && kind != 0) {
    out->await_kind = kind;
    as_memwalk_await_name(fw, kind, out->await_name, sizeof out->await_name);
    rec = await_record(fw, addr);
    if (rec != 0 && kind == OWN(fw, await_wait) &&
        rd_u64(fw, rec + OWN(fw, await_awaiting), &p) == 0 && ptr_ok(p) &&
        fw->rd->read(fw->rd->ctx, (uintptr_t)p + OWN(fw, fork_id), sizeof id, &id) == 0)
      out->await_target = (long long)id;
    else if (rec != 0 && kind == OWN(fw, await_fd) &&
             rd_i32(fw, rec + OWN(fw, await_fd_fd), &i32) == 0)
      out->await_target = i32;
  }
  if (rd_double(fw, addr + OWN(fw, fork_since), &since) == 0) {
    out->since = since;
    if (now >= since) out->seconds_in_state = now - since;
  }
  out->now = now;
  if (rd_u64(fw, addr + OWN(fw, fork_thread), &p) == 0 && ptr_ok(p)) out->thread = (uintptr_t)p;
  read_await_details(fw, addr, kind, out);
  if (s != 0 && rd_u64(fw, s + OWN(fw, sched_root), &p) == 0 && p == addr)
    out->is_root = 1;
  if (fw->rd->read(fw->rd->ctx, addr + OWN(fw, fork_spawner_id), sizeof id, &id) == 0)
    out->spawner_id = (long long)id;
  if (rd_i32(fw, addr + OWN(fw, fork_spawn_line), &i32) != 0) i32 = 0;
  if (i32 > 0) out->spawn_line = i32;
  if (rd_u64(fw, addr + OWN(fw, fork_spawn_func), &p) == 0 && p != 0) {
    as_memwalk_frame site;
    /* a line not worked out yet (debuglayout.h: AS_SPAWN_PC), decoded
    ** from the spawning closure's line info */
    if (i32 <= AS_SPAWN_PC(0) && i32 > -0x40000000 && ptr_ok(p)) {   /* (no overflow on a torn read) */
      int line = as_memwalk_closure_line(&fw->lay, fw->rd, (uintptr_t)p, AS_SPAWN_PC_OF(i32));
      if (line > 0) out->spawn_line = line;
    }
    /* a light C function's "pointer" is its code address, which need not
    ** look like an object pointer (alignment): it reads as [C] too */
    if (ptr_ok(p) && as_memwalk_closure(&fw->lay, fw->rd, (uintptr_t)p, &site) == 0) {
      memcpy(out->spawn_source, site.source, sizeof out->spawn_source);
      out->spawn_linedefined = site.linedefined;
    }
    else   /* a C function (a light one is no object to read) */
      memcpy(out->spawn_source, "[C]", 4);
  }
  /* waiters: a list of wait nodes, bounded (a torn read could loop it) */
  if (rd_u64(fw, addr + OWN(fw, fork_waiters), &node) == 0) {
    for (k = 0; ptr_ok(node) && k < 4 * AS_MEMWALK_MAX_WAITERS; k++) {
      uint64_t waiter;
      if (rd_u64(fw, (uintptr_t)node + OWN(fw, waitnode_waiter), &waiter) != 0 ||
          !ptr_ok(waiter))
        break;
      if (out->nwaiters < AS_MEMWALK_MAX_WAITERS) {
        if (fw->rd->read(fw->rd->ctx, (uintptr_t)waiter + OWN(fw, fork_id),
                         sizeof id, &id) != 0)
          break;
        if (out->nwaiters == 0) {   /* the chain follows the first waiter */
          out->waiter_mode = wait_mode_of(fw, (uintptr_t)waiter);
          if (rd_i32(fw, (uintptr_t)node + OWN(fw, waitnode_index), &i32) == 0)
            out->waiter_index = i32;
        }
        out->waiters[out->nwaiters++] = (long long)id;
      } else {
        out->more_waiters = 1;
      }
      if (rd_u64(fw, (uintptr_t)node + OWN(fw, waitnode_next), &node) != 0) break;
    }
  }
  /* the async stack: innermost coroutine first, down to the root */
  if (rd_u64(fw, addr + OWN(fw, fork_astack) + OWN(fw, astack_frames),
             &astack_frames) != 0 ||
      rd_u16(fw, addr + OWN(fw, fork_astack) + OWN(fw, astack_depth), &depth) != 0 ||
      !ptr_ok(astack_frames) || depth > AS_MEMWALK_MAX_ASTACK)
    return;
  out->walk = AS_MEMWALK_COMPLETE;
  for (k = depth - 1; k >= 0; k--) {
    uint64_t thread;
    as_memwalk_status st;
    int kept;
    if (room - out->nframes <= 0) {
      out->walk = worse(out->walk, AS_MEMWALK_TRUNCATED);
      break;
    }
    if (rd_u64(fw, (uintptr_t)astack_frames + (uintptr_t)k * OWN(fw, frame_size) +
               OWN(fw, frame_thread), &thread) != 0 || !ptr_ok(thread)) {
      out->walk = AS_MEMWALK_FAILED;
      break;
    }
    kept = as_memwalk_thread_visible(fw, (uintptr_t)thread, frames + out->nframes,
                                     room - out->nframes, &st);
    if (kept > 0 && k < depth - 1) frames[out->nframes].coroutine_start = 1;
    out->nframes += kept;
    if (k == 0 && kept > 0 && st != AS_MEMWALK_FAILED)
      name_root(fw, addr, &frames[out->nframes - 1]);
    out->walk = worse(out->walk, st);
    if (st == AS_MEMWALK_FAILED) break;
  }
}

/* Walks every registered scheduler's live forks of the opened target.
** Without fn, fork i goes to forks[i] and the frames follow each other in
** frames[0, maxframes); with fn, every fork goes to forks[0] with its
** frames in frames[0, maxframes) and fn is called on it. */
static as_memwalk_forks_result walk_forks(forks_walk *fw, as_memwalk_fork_fn fn,
                                          void *ud, as_memwalk_fork *forks,
                                          int maxforks, as_memwalk_frame *frames,
                                          int maxframes) {
  as_memwalk_forks_result res;
  as_debug_registry reg;
  uint32_t i, nsched;
  int stop = 0;
  memset(&res, 0, sizeof res);
  res.status = AS_MEMWALK_FAILED;
  if (fw->rd->read(fw->rd->ctx, (uintptr_t)fw->d.registry, sizeof reg, &reg) != 0) {
    res.error = "the scheduler registry cannot be read";
    return res;
  }
  res.status = AS_MEMWALK_COMPLETE;
  nsched = reg.count < AS_DEBUG_MAX_SCHEDS ? reg.count : AS_DEBUG_MAX_SCHEDS;
  for (i = 0; i < nsched && !stop; i++) {
    uintptr_t s = (uintptr_t)reg.scheds[i];
    uint64_t slots;
    int32_t top, cap;
    double now = 0;
    int slot;
    if (s == 0) continue;
    res.nscheds++;
    if (!ptr_ok(s) || rd_u64(fw, s + OWN(fw, sched_slots), &slots) != 0 ||
        rd_i32(fw, s + OWN(fw, sched_top_slot), &top) != 0 ||
        rd_i32(fw, s + OWN(fw, sched_slots_cap), &cap) != 0 ||
        top < 0 || top > AS_MEMWALK_MAX_SLOTS || top >= cap) {
      res.status = AS_MEMWALK_FAILED;
      continue;
    }
    rd_double(fw, s + OWN(fw, sched_now), &now);
    for (slot = 1; slot <= top && ptr_ok(slots) && !stop; slot++) {
      uint64_t f;
      as_memwalk_fork *out;
      if (rd_u64(fw, (uintptr_t)slots + (uintptr_t)slot * sizeof(uint64_t), &f) != 0) {
        res.status = AS_MEMWALK_FAILED;
        break;
      }
      if (f == 0) continue;
      if ((fn == NULL && res.nforks == maxforks) || !ptr_ok(f)) {
        res.status = worse(res.status, ptr_ok(f) ? AS_MEMWALK_TRUNCATED
                                                 : AS_MEMWALK_FAILED);
        continue;
      }
      if (fn != NULL) {
        out = forks;
        as_memwalk_fork_read(fw, s, (uintptr_t)f, now, out, frames, maxframes);
        res.nforks++;
        res.nframes += out->nframes;
        res.status = worse(res.status, out->walk);
        stop = fn(ud, out, frames);
        continue;
      }
      out = &forks[res.nforks++];
      as_memwalk_fork_read(fw, s, (uintptr_t)f, now, out, frames + res.nframes,
                           maxframes - res.nframes);
      out->first_frame = res.nframes;
      res.nframes += out->nframes;
      res.status = worse(res.status, out->walk);
    }
  }
  return res;
}

as_memwalk_forks_result as_memwalk_forks_each(as_memwalk_target *fw,
                                              as_memwalk_fork_fn fn, void *ud,
                                              as_memwalk_fork *scratch,
                                              as_memwalk_frame *frames,
                                              int room) {
  as_memwalk_forks_result res;
  if (fn == NULL || scratch == NULL || room < 0) {
    memset(&res, 0, sizeof res);
    res.status = AS_MEMWALK_FAILED;
    res.error = "bad arguments";
    return res;
  }
  return walk_forks(fw, fn, ud, scratch, 1, frames, room);
}

as_memwalk_forks_result as_memwalk_forks(as_memwalk_target *fw,
                                         const as_memwalk_reader *rd,
                                         uintptr_t descriptor,
                                         as_memwalk_fork *forks, int maxforks,
                                         as_memwalk_frame *frames,
                                         int maxframes) {
  as_memwalk_forks_result res;
  memset(&res, 0, sizeof res);
  res.status = AS_MEMWALK_FAILED;
  if (maxforks < 0 || maxframes < 0) {
    res.error = "bad arguments";
    return res;
  }
  res.error = as_memwalk_target_open(fw, rd, descriptor);
  if (res.error != NULL) return res;
  return walk_forks(fw, NULL, NULL, forks, maxforks, frames, maxframes);
}

int as_memwalk_chain_next(as_memwalk_target *fw, uintptr_t s, uintptr_t addr, uintptr_t *next) {
  uint64_t node, waiter, root, slots, p;
  int64_t spawner_id, id;
  int32_t slot, top;
  *next = 0;
  if (!ptr_ok(addr)) return AS_MEMWALK_LINK_UNREADABLE;
  if (rd_u64(fw, addr + OWN(fw, fork_waiters), &node) != 0)
    return AS_MEMWALK_LINK_UNREADABLE;
  if (node != 0) {
    if (!ptr_ok(node) || rd_u64(fw, (uintptr_t)node + OWN(fw, waitnode_waiter), &waiter) != 0 ||
        !ptr_ok(waiter))
      return AS_MEMWALK_LINK_UNREADABLE;
    *next = (uintptr_t)waiter;
    return AS_MEMWALK_LINK_AWAITED;
  }
  if (!ptr_ok(s) || rd_u64(fw, s + OWN(fw, sched_root), &root) != 0 ||
      fw->rd->read(fw->rd->ctx, addr + OWN(fw, fork_spawner_id), sizeof spawner_id,
                   &spawner_id) != 0)
    return AS_MEMWALK_LINK_UNREADABLE;
  if (root == addr || spawner_id == 0) return AS_MEMWALK_LINK_RUN;
  /* slots are reused: only the fork with the recorded id is the spawner */
  if (rd_i32(fw, addr + OWN(fw, fork_spawner_slot), &slot) == 0 &&
      rd_u64(fw, s + OWN(fw, sched_slots), &slots) == 0 && ptr_ok(slots) &&
      rd_i32(fw, s + OWN(fw, sched_top_slot), &top) == 0 &&
      slot >= 1 && slot <= top &&
      rd_u64(fw, (uintptr_t)slots + (uintptr_t)slot * sizeof(uint64_t), &p) == 0 &&
      ptr_ok(p) &&
      fw->rd->read(fw->rd->ctx, (uintptr_t)p + OWN(fw, fork_id), sizeof id, &id) == 0 &&
      id == spawner_id)
    *next = (uintptr_t)p;
  return AS_MEMWALK_LINK_SPAWNED;
}
