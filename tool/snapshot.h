/*
** snapshot.h: every fork of a process (live or core), read once through
** the one memory walker (src/memwalk_forks.h), as the `asyncstack`
** command's views (views.h) use them: the walker's record of each fork
** plus its await site (the first frame the traces show, named as they
** name it: src/memwalk_render.h). Forks are read one at a time into a
** reused frame buffer, so 100,000 forks need no frame storage of their
** own; `bt` reads the forks it shows again, with all their frames.
*/
#ifndef ASYNCSTACK_TOOL_SNAPSHOT_H
#define ASYNCSTACK_TOOL_SNAPSHOT_H

#include "memwalk_forks.h"

typedef struct tool_fork {
  as_memwalk_fork f;               /* first_frame/nframes: meaningless here */
  char site_file[AS_MEMWALK_SOURCE_SIZE];   /* "" when it has no frame */
  int site_line;                   /* <= 0: none */
  char site_function[160];         /* "function 'nap'", "upvalue 'f'", ... */
} tool_fork;

typedef struct tool_snapshot {
  as_memwalk_target t;
  as_memwalk_reader rd;
  as_memwalk_name_cache *names;
  tool_fork *forks;                /* in scheduler order, then slot order */
  int nforks, cap;                 /* forks is mapped for cap records */
  int *index;                      /* by id: open addressing, -1 empty */
  size_t index_size;               /* a power of two > 2 * nforks */
  as_memwalk_forks_result res;     /* the walk's status (error: unusable) */
  double clock;                    /* seconds in state are measured against
                                      this (live: the tool's monotonic clock;
                                      core: 0 = each scheduler's own time) */
} tool_snapshot;

/* Reads the descriptor at `descriptor` through `read`/`ctx`, then every
** fork. NULL, or why the descriptor cannot be used (static text). */
const char *tool_snapshot_take(tool_snapshot *s, as_memwalk_read_fn read,
                               void *ctx, uintptr_t descriptor, double clock);

/* The fork with id `id` (in scheduler `sched` when nonzero), or NULL. */
tool_fork *tool_snapshot_find(tool_snapshot *s, long long id, uintptr_t sched);

/* Seconds fork f has been in its state. */
double tool_snapshot_seconds(const tool_snapshot *s, const tool_fork *f);

/* "now" on fork f's scheduler clock (deadlines are on it). */
double tool_snapshot_now(const tool_snapshot *s, const tool_fork *f);

void tool_snapshot_free(tool_snapshot *s);

#endif
