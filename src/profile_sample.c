/*
** profile_sample.c: the signal-safe half of the profiler (see
** profile_sample.h): the SIGPROF handler that records the raw async stacks
** of the running fork (and, in wall mode, of every suspended one) into a
** preallocated ring, and the ring's reader for the naming half (profile.c).
** No Lua API call, no allocation, no lock in the handler.
*/
#define _GNU_SOURCE          /* process_vm_readv */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "profile_sample.h"
#include "chain.h"
#include "channel.h"
#include "memwalk.h"
#include "sched.h"

#define SCRATCH_ENTRIES (4 * AS_PS_SAMPLE_ENTRIES)  /* the samples of one
                                        tick, resolved together (wall mode) */
#define THREAD_FRAMES 200            /* frames of one coroutine, at most */
#define CHAIN_HOPS 64                /* forks followed from the sampled one */
#define WALL_FORKS 256               /* suspended forks sampled per tick */
#define IOV_BATCH 256                /* iovecs per process_vm_readv */
#define EXTRA_STACK 5                /* Lua's EXTRA_STACK, every 5.4 release */

typedef uint64_t entry[4];

/* The sampler's process-wide state: the handler gets no Lua state.
** Written by setup/teardown while no handler can run (the signal not yet
** installed, or `active` clear and the signal blocked); head and the
** counters by the handler, tail by as_ps_next, in the same thread. */
static struct {
  volatile sig_atomic_t active;
  int wall;
  lua_State *mainthread;            /* walked when no run is active */
  const as_lualayout *lay;
  pid_t pid;
  int vm;                           /* process_vm_readv works on ourselves */
  uint64_t *ring;
  volatile size_t head, tail;       /* words, monotonic */
  volatile unsigned long ticks, signals, dropped, cut;
  double handler_seconds;           /* time spent in the handler (monotonic) */
} P;

/* The handler's scratch (one handler at a time: SIGPROF is blocked while
** it runs, and it only ever runs in the starting thread). */
static struct {
  entry e[SCRATCH_ENTRIES];
  int n;                       /* entries in use */
  int start, full;             /* the sample being built */
  struct { int start, n, full; } seg[WALL_FORKS + 1];   /* samples built */
  int nseg;
  uint64_t weight;
  unsigned char tv[SCRATCH_ENTRIES][16];
  uint64_t word[SCRATCH_ENTRIES];
  struct iovec local[IOV_BATCH], remote[IOV_BATCH];
  int owner[IOV_BATCH];
  unsigned char ok[SCRATCH_ENTRIES];
  const as_fork *visited[CHAIN_HOPS];
} S;

static void put(uint64_t w0, uint64_t w1, uint64_t w2, uint64_t w3) {
  if (S.n - S.start >= AS_PS_SAMPLE_ENTRIES || S.n >= SCRATCH_ENTRIES) {
    S.full = 1;
    return;
  }
  S.e[S.n][0] = w0;
  S.e[S.n][1] = w1;
  S.e[S.n][2] = w2;
  S.e[S.n][3] = w3;
  S.n++;
}

static int aligned(uintptr_t p) {
  return p != 0 && (p & 7) == 0;
}

static uintptr_t load_ptr(uintptr_t addr) {
  uintptr_t v;
  memcpy(&v, (const void *)addr, sizeof v);
  return v;
}

/* The raw frames of coroutine `th`, top first (see profile.h for why the
** CallInfo list may be read with plain loads). ci->func is only kept when
** it lies inside the stack; its slot is read later, safely. */
static void walk_thread(uintptr_t th) {
  const as_lualayout *lay = P.lay;
  uintptr_t ci, base, stack, end;
  int n = 0;
  if (!aligned(th)) {
    put(AS_PS_BAD, 0, 0, 0);
    return;
  }
  put(AS_PS_THREAD, th, 0, 0);
  ci = load_ptr(th + lay->L_ci);
  base = th + lay->L_base_ci;
  stack = load_ptr(th + lay->L_stack);
  end = load_ptr(th + lay->L_stack_last) + (EXTRA_STACK + 1) * (uintptr_t)lay->size_StackValue;
  while (ci != base && n < THREAD_FRAMES) {
    uintptr_t func, prev, savedpc;
    unsigned cs = 0;
    if (!aligned(ci)) {
      put(AS_PS_BAD, 0, 0, 0);
      return;
    }
    func = load_ptr(ci + lay->ci_func);
    prev = load_ptr(ci + lay->ci_previous);
    savedpc = load_ptr(ci + lay->ci_savedpc);
    if (lay->size_ci_callstatus == 2) {
      uint16_t c16;
      memcpy(&c16, (const void *)(ci + lay->ci_callstatus), 2);
      cs = c16;
    } else {
      uint32_t c32;
      memcpy(&c32, (const void *)(ci + lay->ci_callstatus), 4);
      cs = c32;
    }
    if (aligned(stack) && func >= stack && func + lay->size_TValue <= end &&
        (func - stack) % lay->size_StackValue == 0)
      /* a C frame's savedpc is another union member, maybe never set */
      put(AS_PS_SLOT | ((uint64_t)(cs & 0xffff) << 16), func, 0,
          (cs & lay->cist_C) ? 0 : savedpc);
    else
      put(AS_PS_BAD, 0, 0, 0);
    n++;
    if (prev == 0) break;
    ci = prev;
  }
  if (ci != base) put(AS_PS_MARK, AS_PS_MARK_CUT, 0, 0);
}

/* Reads len[i] bytes at remote[i] into local[i] for the `count` requests
** set up in S.local/S.remote; S.ok[S.owner[i]] says which succeeded. */
static void read_batch(int count) {
  int i = 0;
  if (!P.vm) {
    for (i = 0; i < count; i++) {
      memcpy(S.local[i].iov_base, S.remote[i].iov_base, S.local[i].iov_len);
      S.ok[S.owner[i]] = 1;
    }
    return;
  }
  while (i < count) {
    ssize_t got = process_vm_readv(P.pid, S.local + i, (unsigned long)(count - i),
                                   S.remote + i, (unsigned long)(count - i), 0);
    size_t left = got > 0 ? (size_t)got : 0;
    /* a partial read stops at the first request it could not complete */
    while (i < count && left >= S.local[i].iov_len) {
      left -= S.local[i].iov_len;
      S.ok[S.owner[i]] = 1;
      i++;
    }
    if (i < count) i++;   /* that one failed: go on after it */
  }
}

/* The second and third steps of a sample: every stack slot, then every
** closure the slots name, each in batched reads. */
static void resolve_frames(void) {
  const as_lualayout *lay = P.lay;
  const unsigned lcl = lay->tag_lcl | lay->bit_collectable;
  const unsigned ccl = lay->tag_ccl | lay->bit_collectable;
  int i, k = 0;
  for (i = 0; i < S.n; i++) S.ok[i] = 0;
  for (i = 0; i <= S.n; i++) {
    if (k == IOV_BATCH || (i == S.n && k > 0)) {
      read_batch(k);
      k = 0;
    }
    if (i == S.n) break;
    if ((S.e[i][0] & 0xff) != AS_PS_SLOT) continue;
    S.local[k].iov_base = S.tv[i];
    S.local[k].iov_len = lay->size_TValue <= 16 ? lay->size_TValue : 16;
    S.remote[k].iov_base = (void *)(uintptr_t)S.e[i][1];
    S.remote[k].iov_len = S.local[k].iov_len;
    S.owner[k++] = i;
  }
  for (i = 0; i < S.n; i++) {
    uint64_t value;
    unsigned tag;
    if ((S.e[i][0] & 0xff) != AS_PS_SLOT) continue;
    if (!S.ok[i]) {
      S.e[i][0] = AS_PS_BAD;
      continue;
    }
    memcpy(&value, S.tv[i] + lay->tv_value, sizeof value);
    tag = S.tv[i][lay->tv_tt];
    S.e[i][0] = AS_PS_FRAME | ((uint64_t)tag << 8) | (S.e[i][0] & ~(uint64_t)0xffff);
    S.e[i][1] = value;
    S.e[i][2] = 0;
    if (tag == lay->tag_lcf) continue;
    if ((tag != lcl && tag != ccl) || !aligned((uintptr_t)value)) {
      S.e[i][0] = AS_PS_BAD;
      continue;
    }
    S.e[i][0] |= (uint64_t)1 << 48;      /* needs its closure read */
  }
  for (i = 0; i < S.n; i++) S.ok[i] = 0;
  k = 0;
  for (i = 0; i <= S.n; i++) {
    if (k == IOV_BATCH || (i == S.n && k > 0)) {
      read_batch(k);
      k = 0;
    }
    if (i == S.n) break;
    if ((S.e[i][0] & 0xff) != AS_PS_FRAME || !(S.e[i][0] & ((uint64_t)1 << 48))) continue;
    S.local[k].iov_base = &S.word[i];
    S.local[k].iov_len = sizeof S.word[i];
    S.remote[k].iov_base = (void *)(uintptr_t)(S.e[i][1] +
        (((S.e[i][0] >> 8) & 0xff) == lcl ? lay->lcl_p : lay->ccl_f));
    S.remote[k].iov_len = sizeof S.word[i];
    S.owner[k++] = i;
  }
  for (i = 0; i < S.n; i++) {
    if ((S.e[i][0] & 0xff) != AS_PS_FRAME || !(S.e[i][0] & ((uint64_t)1 << 48))) continue;
    S.e[i][0] &= ~((uint64_t)1 << 48);
    if (!S.ok[i]) S.e[i][0] = AS_PS_BAD;
    else S.e[i][2] = S.word[i];
  }
}

/* The fork separator: id, spawn site's function, then the name. The name's
** characters are anchored by the fork's extras (fork.h: name_cstr is
** set before the name is replaced, and nothing is freed until the
** collector runs, which the handler interrupts). */
static void put_fork(const as_fork *f) {
  const char *name = f->name_cstr;
  int chunk;
  put(AS_PS_FORK, (uint64_t)f->id, (uint64_t)(uintptr_t)f->spawn_func, 0);
  if (name == NULL) return;
  for (chunk = 0; chunk < AS_PS_NAME_ENTRIES; chunk++) {
    uint64_t w[3] = {0, 0, 0};
    char *b = (char *)w;
    int j, end = 0;
    for (j = 0; j < AS_PS_NAME_CHUNK; j++) {
      b[j] = name[chunk * AS_PS_NAME_CHUNK + j];
      if (b[j] == '\0') { end = 1; break; }
    }
    if (chunk == AS_PS_NAME_ENTRIES - 1) b[AS_PS_NAME_CHUNK - 1] = '\0';
    put(AS_PS_NAME, w[0], w[1], w[2]);
    if (end) break;
  }
}

static void put_fork_frames(const as_fork *f) {
  int depth = f->astack.depth, k;
  const as_frame *frames = f->astack.frames;
  if (frames == NULL || depth < 1 || depth > 256) {
    put(AS_PS_BAD, 0, 0, 0);
  } else {
    for (k = depth - 1; k >= 0; k--) walk_thread((uintptr_t)frames[k].thread);
  }
  put_fork(f);
}

/* f's frames, then the forks after it (chain.h) down to run()'s caller. */
static void put_chain(as_sched *s, const as_fork *f) {
  int hops = 0, i;
  while (f != NULL && hops < CHAIN_HOPS) {
    as_chain_link link;
    for (i = 0; i < hops; i++)
      if (S.visited[i] == f) return;
    S.visited[hops++] = f;
    put_fork_frames(f);
    link = as_chain_next(s, f);
    if (link.kind == AS_LINK_RUN) {
      walk_thread((uintptr_t)s->L);
      return;
    }
    f = link.next;
  }
}

static void put_await(const as_fork *g) {
  unsigned kind = g->await_kind;
  const as_await_fields *a = g->await;
  if (g->status == AS_RUNNABLE || kind == AS_AWAIT_NONE) {
    put(AS_PS_AWAIT, AS_PS_AWAIT_RUNNABLE, 0, 0);
    return;
  }
  if (a == NULL && (kind == AS_AWAIT_WAIT || kind == AS_AWAIT_CHANNEL || kind == AS_AWAIT_FD)) {
    put(AS_PS_AWAIT, kind, 0, 0);   /* not expected: the record comes first */
    return;
  }
  switch (kind) {
    case AS_AWAIT_WAIT: {
      const as_fork *t = a->wait.own_node.target;
      put(AS_PS_AWAIT, AS_AWAIT_WAIT, t != NULL ? (uint64_t)t->id : 0, a->wait.mode);
      break;
    }
    case AS_AWAIT_CHANNEL:
      put(AS_PS_AWAIT, AS_AWAIT_CHANNEL,
          a->chan.channel != NULL ? (uint64_t)as_channel_id(a->chan.channel) : 0,
          a->chan.op);
      break;
    case AS_AWAIT_FD:
      put(AS_PS_AWAIT, AS_AWAIT_FD, (uint64_t)(int64_t)a->fd.fd, a->fd.write);
      break;
    default:
      put(AS_PS_AWAIT, kind, 0, 0);
  }
}

/* Copies sample `k` of S into the ring (or counts it dropped when the
** ring is full). */
static void commit(int k) {
  size_t head = P.head, n = (size_t)S.seg[k].n, words = 4 * (n + 1), i;
  const size_t mask = AS_PS_RING_WORDS - 1;
  const entry *e = S.e + S.seg[k].start;
  if (n == 0) return;
  if (S.seg[k].full) P.cut++;
  __atomic_signal_fence(__ATOMIC_ACQUIRE);
  if (head - P.tail + words > AS_PS_RING_WORDS) {
    P.dropped++;
    return;
  }
  P.ring[head & mask] = AS_PS_SAMPLE;
  P.ring[(head + 1) & mask] = (uint64_t)n;
  P.ring[(head + 2) & mask] = S.weight;
  P.ring[(head + 3) & mask] = 0;
  for (i = 0; i < n; i++) {
    P.ring[(head + 4 + 4 * i) & mask] = e[i][0];
    P.ring[(head + 5 + 4 * i) & mask] = e[i][1];
    P.ring[(head + 6 + 4 * i) & mask] = e[i][2];
    P.ring[(head + 7 + 4 * i) & mask] = e[i][3];
  }
  __atomic_signal_fence(__ATOMIC_RELEASE);
  P.head = head + words;
}

/* Resolves every sample built (two batched reads for all of them) and
** copies them into the ring. */
static void flush(void) {
  int k;
  if (S.n > 0) resolve_frames();
  for (k = 0; k < S.nseg; k++) commit(k);
  S.n = S.start = 0;
  S.nseg = 0;
}

static void begin(void) {
  S.start = S.n;
  S.full = 0;
}

static void end_sample(void) {
  S.seg[S.nseg].start = S.start;
  S.seg[S.nseg].n = S.n - S.start;
  S.seg[S.nseg].full = S.full;
  S.nseg++;
  if (S.n > SCRATCH_ENTRIES - AS_PS_SAMPLE_ENTRIES || S.nseg == WALL_FORKS + 1) flush();
}

void as_ps_handler(int sig, siginfo_t *info, void *uctx) {
  int saved = errno;
  as_sched *s;
  struct timespec t0, t1;
  (void)sig;
  (void)uctx;
  if (!P.active) return;
  /* CPU-time timers are checked at the kernel's tick (often 250 Hz): the
  ** expirations missed since the last signal weigh this sample */
  S.weight = 1;
  if (info != NULL && info->si_code == SI_TIMER && info->si_overrun > 0)
    S.weight += (uint64_t)info->si_overrun;
  P.signals++;
  P.ticks += (unsigned long)S.weight;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  s = as_sched_active;
  S.n = S.start = S.nseg = 0;
  begin();
  if (s == NULL) {
    walk_thread((uintptr_t)P.mainthread);
    put(AS_PS_MARK, AS_PS_MARK_OUTSIDE_RUN, 0, 0);    /* the root, once reversed */
  } else if (s->running != NULL) {
    put_chain(s, s->running);
  } else if (!P.wall) {
    put(AS_PS_MARK, AS_PS_MARK_SCHEDULER, 0, 0);
    walk_thread((uintptr_t)s->L);
  }
  end_sample();
  if (P.wall && s != NULL) {
    int slot, n = 0, top = s->top_slot;
    for (slot = 1; slot <= top && n < WALL_FORKS; slot++) {
      const as_fork *g = as_sched_fork_at_slot(s, slot);
      if (g == NULL || g == s->running || as_fork_ended(g)) continue;
      begin();
      put_await(g);
      put_chain(s, g);
      end_sample();
      n++;
    }
  }
  flush();
  clock_gettime(CLOCK_MONOTONIC, &t1);
  P.handler_seconds += (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
  errno = saved;
}

/* ------------------------------------------------ outside the handler */

int as_ps_setup(const as_lualayout *lay, lua_State *mainthread, int wall) {
  as_memwalk_reader rd;
  P.active = 0;
  P.ring = malloc(AS_PS_RING_WORDS * sizeof *P.ring);
  if (P.ring == NULL) return -1;
  P.lay = lay;
  P.mainthread = mainthread;
  P.wall = wall;
  P.vm = as_memwalk_reader_self(&rd, &P.pid);
  P.head = P.tail = 0;
  P.ticks = P.signals = P.dropped = P.cut = 0;
  P.handler_seconds = 0;
  return 0;
}

void as_ps_teardown(void) {
  P.active = 0;
  free(P.ring);
  P.ring = NULL;
  P.head = P.tail = 0;
}

void as_ps_set_active(int on) {
  P.active = on && P.ring != NULL;
}

int as_ps_safe_reads(void) {
  return P.vm;
}

int as_ps_pending(void) {
  return P.ring != NULL && P.head != P.tail;
}

int as_ps_next(uint64_t *body, uint64_t *weight) {
  const size_t mask = AS_PS_RING_WORDS - 1;
  size_t tail = P.tail, head, i, n;
  if (P.ring == NULL) return -1;
  head = P.head;
  __atomic_signal_fence(__ATOMIC_ACQUIRE);
  if (tail == head) return -1;
  n = (size_t)P.ring[(tail + 1) & mask];
  if (P.ring[tail & mask] != AS_PS_SAMPLE || n > AS_PS_SAMPLE_ENTRIES) {
    P.tail = head;                  /* cannot be: start afresh */
    return -1;
  }
  *weight = P.ring[(tail + 2) & mask];
  for (i = 0; i < 4 * n; i++) body[i] = P.ring[(tail + 4 + i) & mask];
  __atomic_signal_fence(__ATOMIC_RELEASE);
  P.tail = tail + 4 * (n + 1);
  return (int)n;
}

as_ps_counts as_ps_counts_now(void) {
  as_ps_counts c;
  c.ticks = P.ticks;
  c.signals = P.signals;
  c.dropped = P.dropped;
  c.cut = P.cut;
  c.handler_seconds = P.handler_seconds;
  return c;
}
