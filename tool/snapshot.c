/*
** snapshot.c: every fork of a process through the memory walker (see
** snapshot.h).
*/
#define _GNU_SOURCE
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>
#include "snapshot.h"
#include "hugemem.h"
#include "memwalk_render.h"
#include "render.h"

#define SNAPSHOT_ROOM 4096   /* frames of one fork while the forks are listed */


typedef struct collect {
  tool_snapshot *s;
  int cap;
  int oom;
} collect;

static int collect_one(void *ud, const as_memwalk_fork *f,
                       const as_memwalk_frame *frames) {
  collect *c = (collect *)ud;
  tool_snapshot *s = c->s;
  tool_fork *out;
  if (s->nforks == c->cap) {
    /* in huge pages (procmem.h), grown by moving the pages, not copying
    ** them: 100,000 records are 90 MB */
    int cap = c->cap ? 2 * c->cap : 4096;
    size_t size = sizeof *s->forks * (size_t)cap;
    void *m = s->forks == NULL ? tool_map_huge(size)
              : mremap(s->forks, sizeof *s->forks * (size_t)c->cap, size, MREMAP_MAYMOVE);
    if (m == NULL || m == MAP_FAILED) {
      c->oom = 1;
      return 1;
    }
#ifdef MADV_HUGEPAGE
    madvise(m, size, MADV_HUGEPAGE);
#endif
    s->forks = m;
    c->cap = cap;
    s->cap = cap;
  }
  out = &s->forks[s->nforks++];
  out->f = *f;
  out->site_file[0] = '\0';
  out->site_line = -1;
  out->site_function[0] = '\0';
  if (f->nframes > 0) {
    as_rframe r;
    char global[AS_MEMWALK_NAME_SIZE];
    as_text_sink b;
    as_memwalk_render_frame(&s->t, f->thread, &frames[0], global, f->id,
                            f->name[0] ? f->name : NULL, &r);
    memcpy(out->site_file, frames[0].source, sizeof out->site_file);
    out->site_line = frames[0].currentline;
    as_render_describe(as_text_sink_init(&b, out->site_function, sizeof out->site_function),
                       &r, 0);
  }
  return 0;
}

static void build_index(tool_snapshot *s);

const char *tool_snapshot_take(tool_snapshot *s, as_memwalk_read_fn read,
                               void *ctx, uintptr_t descriptor, double clock) {
  const char *err;
  collect c;
  as_memwalk_fork scratch;
  as_memwalk_frame *frames;
  memset(s, 0, sizeof *s);
  s->rd.read = read;
  s->rd.ctx = ctx;
  s->clock = clock;
  err = as_memwalk_target_open(&s->t, &s->rd, descriptor);
  if (err != NULL) return err;
  s->names = calloc(1, sizeof *s->names);
  frames = malloc(sizeof *frames * SNAPSHOT_ROOM);
  if (s->names == NULL || frames == NULL) {
    free(frames);
    return "out of memory";
  }
  s->t.names = s->names;
  c.s = s;
  c.cap = 0;
  c.oom = 0;
  s->res = as_memwalk_forks_each(&s->t, collect_one, &c, &scratch, frames, SNAPSHOT_ROOM);
  free(frames);
  if (c.oom) return "out of memory";
  build_index(s);
  return s->res.error;
}

static size_t slot_of(const tool_snapshot *s, long long id) {
  return (size_t)((unsigned long long)id * 0x9E3779B97F4A7C15ull >> 20) & (s->index_size - 1);
}

/* The index by id (ids never repeat in a process; a torn read could
** repeat one: then the first wins, and the lookup below checks the rest). */
static void build_index(tool_snapshot *s) {
  size_t size = 1024, k;
  int i;
  while (size < 2 * (size_t)s->nforks + 1) size *= 2;
  s->index = malloc(sizeof *s->index * size);
  if (s->index == NULL) return;
  s->index_size = size;
  for (k = 0; k < size; k++) s->index[k] = -1;
  for (i = 0; i < s->nforks; i++) {
    k = slot_of(s, s->forks[i].f.id);
    while (s->index[k] >= 0) k = (k + 1) & (size - 1);
    s->index[k] = i;
  }
}

tool_fork *tool_snapshot_find(tool_snapshot *s, long long id, uintptr_t sched) {
  int i;
  if (s->index != NULL) {
    size_t k = slot_of(s, id);
    for (; s->index[k] >= 0; k = (k + 1) & (s->index_size - 1)) {
      tool_fork *f = &s->forks[s->index[k]];
      if (f->f.id == id && (sched == 0 || f->f.sched == sched)) return f;
    }
    return NULL;
  }
  for (i = 0; i < s->nforks; i++)
    if (s->forks[i].f.id == id && (sched == 0 || s->forks[i].f.sched == sched))
      return &s->forks[i];
  return NULL;
}

double tool_snapshot_now(const tool_snapshot *s, const tool_fork *f) {
  return s->clock > 0 ? s->clock : f->f.now;
}

double tool_snapshot_seconds(const tool_snapshot *s, const tool_fork *f) {
  double now = tool_snapshot_now(s, f);
  if (f->f.since <= 0 || now < f->f.since) return f->f.seconds_in_state;
  return now - f->f.since;
}

void tool_snapshot_free(tool_snapshot *s) {
  free(s->index);
  if (s->forks != NULL) munmap(s->forks, sizeof *s->forks * (size_t)s->cap);
  free(s->names);
  memset(s, 0, sizeof *s);
}
