/*
** crash_async.c: the crash report's async section, made inside the
** fatal-signal handler from the process's own memory:
**
**   frames   the memory walker (memwalk_forks.h) reads each fork's
**            coroutines and run()'s caller through the published descriptor
**            (debuglayout.h) with process_vm_readv on the own pid (or memcpy
**            where the kernel refuses it), so a torn or freed structure
**            gives a failed walk, not a fault;
**   chain    the one chain rule (chain.h) picks the fork after each one;
**   text     memwalk_render.h turns them into the renderer's frames and
**            the one renderer (render.h) writes them, in the form of
**            as.traceback with async = true, to an fd sink over the
**            signal-safe writer (sigsafe.h).
**
** No Lua API call and no allocation: every buffer is static (the handler
** admits one reporting thread at a time, crash.c). The frames the traces
** hide (asyncstack's own C functions and Lua front end) are left out here
** too. When the descriptor's Lua layout is unverified the section says so
** and prints no frames.
*/
#include <string.h>
#include <unistd.h>
#include "crash_async.h"
#include "chain.h"
#include "debuglayout.h"
#include "memwalk_forks.h"
#include "memwalk_render.h"
#include "render.h"

#define CRASH_FRAMES 256     /* frames in the section, all forks together */
#define CRASH_FORKS 64       /* forks followed along the chain */
#define CRASH_FORK_FRAMES 100 /* frames of one fork, at most */
#define CRASH_RESERVE 40     /* frames kept for the forks after a deep one */

static struct {
  as_memwalk_reader reader;
  pid_t pid;
  as_memwalk_target target;
  as_memwalk_fork fork;
  as_memwalk_frame frames[CRASH_FRAMES];
  char globals[CRASH_FRAMES][AS_MEMWALK_NAME_SIZE];
  as_rframe out[CRASH_FRAMES + CRASH_FORKS];   /* + spawn-site frames */
  long n;
  int nframes;                 /* frames[] in use */
  int truncated;               /* some walk failed, or frames ran out */
  long skip_at, skipped;       /* the first fork cut short: where, how much */
  int others;                  /* forks on the chain that have more waiters */
  char names[CRASH_FORKS][AS_MEMWALK_NAME_SIZE];
  char spawn_src[CRASH_FORKS][AS_MEMWALK_SOURCE_SIZE];
  const as_fork *visited[CRASH_FORKS];
  as_sink sink;
} c;

static void sink_write(as_sink *k, const char *s, size_t n) {
  as_sigsafe_write((as_sigsafe *)k->ud, s, n);
}

static int trace_frame(as_rtrace *t, long i, as_rframe *out) {
  (void)t;
  if (i < 0 || i >= c.n) return 0;
  *out = c.out[i];
  return 1;
}

/* The next output frame, or NULL when the section is full. */
static as_rframe *next_out(void) {
  as_rframe *r;
  if (c.n >= (long)(sizeof c.out / sizeof c.out[0])) {
    c.truncated = 1;
    return NULL;
  }
  r = &c.out[c.n++];
  memset(r, 0, sizeof *r);
  return r;
}

/* Appends frames[first, first + n) of fork `id` (0: no fork) as output
** frames; the first gets boundary `b` (from `from`, via `node`). */
static void add_frames(int first, int n, uintptr_t thread, long long id,
                       const char *fork_name, int root, int b,
                       const as_fork *from, const char *from_name,
                       const as_waitnode *node) {
  int j;
  for (j = first; j < first + n; j++) {
    const as_memwalk_frame *f = &c.frames[j];
    as_rframe *r = next_out();
    if (r == NULL) return;
    as_memwalk_render_frame(&c.target, thread, f, c.globals[j], id, fork_name, r);
    if (root && j == first + n - 1) r->flags |= AS_RFRAME_ROOT;
    if (j == first) {
      r->boundary = b;
      if (from != NULL) {
        r->from_id = (long long)from->id;
        r->from_name = from_name;
      }
      if (node != NULL && node->waiter != NULL && node->waiter->await != NULL &&
          node->waiter->await->wait.mode != AS_WAIT_ONE) {
        r->via = node->waiter->await->wait.mode == AS_WAIT_ALL ? AS_VIA_WAIT_ALL
                                                              : AS_VIA_WAIT_ANY;
        r->via_index = node->index;
      }
    }
  }
}

/* Walks fork f into the section; returns its name slot's text or NULL. */
static const char *add_fork(const as_fork *f, int hop, int b,
                            const as_fork *from, const char *from_name,
                            const as_waitnode *node) {
  const char *name;
  int room = CRASH_FRAMES - c.nframes - CRASH_RESERVE;
  if (room > CRASH_FORK_FRAMES) room = CRASH_FORK_FRAMES;
  if (room < 8) room = CRASH_FRAMES - c.nframes;
  as_memwalk_fork_read(&c.target, (uintptr_t)as_sched_active, (uintptr_t)f, 0, &c.fork,
                       c.frames + c.nframes, room);
  memcpy(c.names[hop], c.fork.name, sizeof c.names[hop]);
  memcpy(c.spawn_src[hop], c.fork.spawn_source, sizeof c.spawn_src[hop]);
  name = c.names[hop][0] != '\0' ? c.names[hop] : NULL;
  if (c.fork.walk == AS_MEMWALK_FAILED) c.truncated = 1;
  add_frames(c.nframes, c.fork.nframes, (uintptr_t)as_fork_thread(f), (long long)f->id,
             name, c.fork.walk == AS_MEMWALK_COMPLETE, b, from, from_name, node);
  c.nframes += c.fork.nframes;
  if (c.fork.walk == AS_MEMWALK_TRUNCATED && c.skipped == 0) {
    /* the renderer marks the gap: the levels below the frames kept (the
    ** CallInfo count of the fork's coroutines, hidden frames included) */
    long levels = 0;
    int k;
    for (k = 0; k < f->astack.depth && k < AS_MEMWALK_MAX_ASTACK; k++) {
      int d = as_memwalk_depth(&c.target.lay, &c.reader,
                               (uintptr_t)f->astack.frames[k].thread, 1 << 20);
      if (d > 0) levels += d;
    }
    c.skip_at = c.n;
    c.skipped = levels > c.fork.nframes ? levels - c.fork.nframes : 1;
  }
  if (c.fork.more_waiters || c.fork.nwaiters > 1) c.others = 1;
  return name;
}

static int seen(const as_fork *f, int hops) {
  int i;
  for (i = 0; i < hops; i++)
    if (c.visited[i] == f) return 1;
  return 0;
}

void as_crash_async_section(as_sigsafe *w) {
  as_sched *s = as_sched_active;
  const as_fork *f = s != NULL ? s->running : NULL;
  const as_fork *from = NULL;
  const as_waitnode *node = NULL;
  const char *err, *from_name = NULL;
  int hop, b = AS_BOUND_NONE;
  as_rtrace t;
  c.n = 0;
  c.nframes = 0;
  c.truncated = 0;
  c.skip_at = c.skipped = 0;
  c.others = 0;
  as_sink_init(&c.sink, sink_write, w);
  if (f == NULL) {
    as_sigsafe_str(w, "async stack: no fork is running\n");
    return;
  }
  as_memwalk_reader_self(&c.reader, &c.pid);
  err = as_memwalk_target_open(&c.target, &c.reader, (uintptr_t)as_debuglayout_get());
  as_sigsafe_str(w, "async stack (");
  as_render_fork_label(&c.sink, (long long)f->id, f->name_cstr);
  if (err != NULL) {
    as_sigsafe_str(w, "): not readable from memory: ");
    as_sigsafe_str(w, err);
    as_sigsafe_str(w, "\n");
    return;
  }
  as_sigsafe_str(w, "):\n");
  for (hop = 0; f != NULL && hop < CRASH_FORKS && !seen(f, hop); hop++) {
    const char *name;
    as_chain_link link;
    c.visited[hop] = f;
    name = add_fork(f, hop, b, from, from_name, node);
    link = as_chain_next(s, f);
    from = f;
    from_name = name;
    node = NULL;
    if (link.kind == AS_LINK_AWAITED) {
      b = AS_BOUND_AWAITED;
      node = link.via;
      f = link.next;
    } else if (link.kind == AS_LINK_RUN) {
      as_memwalk_status st;
      int n = as_memwalk_thread_visible(&c.target, (uintptr_t)s->L,
                                        c.frames + c.nframes,
                                        CRASH_FRAMES - c.nframes, &st);
      if (st != AS_MEMWALK_COMPLETE) c.truncated = 1;
      add_frames(c.nframes, n, (uintptr_t)s->L, 0, NULL, 0, AS_BOUND_RUN,
                 from, from_name, NULL);
      c.nframes += n;
      f = NULL;
    } else {
      /* the spawn site: one synthetic frame, then the spawner if live */
      as_rframe *r = next_out();
      if (r == NULL) break;
      r->file = c.spawn_src[hop][0] != '\0' ? c.spawn_src[hop] : NULL;
      r->line = c.fork.spawn_line;
      r->linedefined = c.fork.spawn_linedefined;
      r->what = 'L';
      r->flags = AS_RFRAME_SPAWN_SITE;
      r->boundary = AS_BOUND_SPAWNED;
      r->from_id = (long long)from->id;
      r->from_name = from_name;
      r->fork_id = (long long)from->spawner_id;
      r->fork_name = link.next != NULL ? link.next->name_cstr : NULL;
      b = AS_BOUND_NONE;
      f = link.next;
    }
  }
  memset(&t, 0, sizeof t);
  t.frame = trace_frame;
  t.n = c.n;
  t.skip_at = c.skip_at;
  t.skipped = c.skipped;
  as_render_traceback(&c.sink, &t, NULL, 0);
  as_sigsafe_str(w, "\n");
  if (c.others) {
    /* the chain follows each fork's first waiter; say who else waits */
    int i;
    for (i = 0; i < hop; i++) {
      const as_waitnode *o = c.visited[i]->waiters;
      int more = -1;
      for (; o != NULL && more < CRASH_FORKS; o = o->next) more++;
      if (more > 0) {
        as_sigsafe_str(w, "[");
        as_render_fork_label(&c.sink, (long long)c.visited[i]->id, c.names[i][0] ? c.names[i] : NULL);
        as_sigsafe_str(w, " is awaited by ");
        as_sigsafe_dec(w, more);
        as_sigsafe_str(w, more == 1 ? " other fork too]\n" : " other forks too]\n");
      }
    }
  }
  if (f != NULL) as_sigsafe_str(w, "... (more forks omitted)\n");
  if (c.truncated) as_sigsafe_str(w, "... (some frames could not be read or were omitted)\n");
}
