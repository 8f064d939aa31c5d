/*
** views.h: what the `asyncstack` command prints from a snapshot
** (snapshot.h): `ps` (one row per fork: table, CSV or JSON), `pstree`
** (the await graph as a tree; cycles named), `bt` (async traces in the
** text form of as.traceback, through the one renderer, src/render.h).
*/
#ifndef ASYNCSTACK_TOOL_VIEWS_H
#define ASYNCSTACK_TOOL_VIEWS_H

#include <stdio.h>
#include "snapshot.h"

enum { TOOL_FORMAT_TABLE, TOOL_FORMAT_CSV, TOOL_FORMAT_JSON };

typedef struct tool_source {
  const char *what;        /* "process 1234" or "core file core.1234" */
  int live;                /* reading a running process */
  int stopped;             /* it was paused (--stop) */
  const char *library;     /* the file the descriptor was found in */
} tool_source;

void tool_view_ps(FILE *out, tool_snapshot *s, const tool_source *src, int format);
void tool_view_pstree(FILE *out, tool_snapshot *s, const tool_source *src);

/* fork_id 0: the running fork(s); all: every fork. Returns 0, or 1 when
** fork_id names no live fork (message on err). */
int tool_view_bt(FILE *out, FILE *err, tool_snapshot *s, const tool_source *src,
                 long long fork_id, int all, int async);

#endif
