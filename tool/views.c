/*
** views.c: ps, pstree and bt of a snapshot (see views.h).
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "views.h"
#include "memwalk_render.h"
#include "render.h"

#define OWN(s, name) ((s)->t.d.own[AS_DEBUG_OWN_##name])
#define BT_FRAMES 100000     /* frames of one async trace, all forks together */

/* ------------------------------------------------------------- helpers */

static const char *status_name(const tool_snapshot *s, int st) {
  if (st < 0) return "unreadable";
  if ((unsigned)st == OWN(s, status_runnable)) return "runnable";
  if ((unsigned)st == OWN(s, status_running)) return "running";
  if ((unsigned)st == OWN(s, status_sleeping)) return "sleeping";
  if ((unsigned)st == OWN(s, status_waiting)) return "waiting";
  if ((unsigned)st == OWN(s, status_done)) return "done";
  if ((unsigned)st == OWN(s, status_failed)) return "failed";
  if ((unsigned)st == OWN(s, status_cancelled)) return "cancelled";
  return "unknown";
}

static const char *walk_name(as_memwalk_status st) {
  return st == AS_MEMWALK_COMPLETE ? "complete"
         : st == AS_MEMWALK_TRUNCATED ? "truncated" : "failed";
}

/* Decimal digits of v at p (no NUL); returns the end. */
static char *put_int(char *p, long long v) {
  char d[24];
  int n = 0;
  unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
  if (v < 0) *p++ = '-';
  do { d[n++] = (char)('0' + (int)(u % 10)); u /= 10; } while (u != 0);
  while (n > 0) *p++ = d[--n];
  return p;
}

/* "250ms" under a second, "1.5s", "120s": as as.dump() prints them
** (formatted by hand: `ps` prints two per fork, 100,000 forks). */
static void seconds_text(double sec, char *out, size_t size) {
  char *p = out;
  if (size < 24) { out[0] = '\0'; return; }   /* "1000000000000000s" fits */
  if (!(sec >= 0)) sec = 0;
  if (sec > 1e15) sec = 1e15;
  if (floor(sec * 1000 + 0.5) < 1000) {
    p = put_int(p, (long long)floor(sec * 1000 + 0.5));
    *p++ = 'm';
  } else if (sec >= 100) {
    p = put_int(p, (long long)floor(sec + 0.5));
  } else {
    long long tenths = (long long)floor(sec * 10 + 0.5);
    p = put_int(p, tenths / 10);
    *p++ = '.';
    *p++ = (char)('0' + (int)(tenths % 10));
  }
  *p++ = 's';
  *p = '\0';
}

static void label(const as_memwalk_fork *f, char *out, size_t size) {
  if (f->name[0]) snprintf(out, size, "fork #%lld '%s'", f->id, f->name);
  else snprintf(out, size, "fork #%lld", f->id);
}

static int is_kind(const as_memwalk_fork *f, unsigned kind) {
  return f->await_kind != 0 && (unsigned)f->await_kind == kind;
}

/* What it waits on: "fork #5", "forks #5, #6 (wait_all)", "channel #3
** (recv)", "fd 7 (read)", "deadline in 1.5s", "forever"; plus ", timeout
** in 2.0s" for a wait with one. */
static void target_text(const tool_snapshot *s, const tool_fork *tf, char *out,
                        size_t size) {
  const as_memwalk_fork *f = &tf->f;
  double now = tool_snapshot_now(s, tf);
  char t[32];
  size_t n = 0;
  out[0] = '\0';
  if (is_kind(f, OWN(s, await_wait))) {
    int i;
    if (f->wait_mode == AS_MEMWALK_WAIT_ONE && f->nwait_targets <= 1) {
      long long id = f->nwait_targets == 1 ? f->wait_targets[0] : f->await_target;
      if (id != 0) n = (size_t)snprintf(out, size, "fork #%lld", id);
    } else {
      n = (size_t)snprintf(out, size, "forks ");
      for (i = 0; i < f->nwait_targets && n < size; i++)
        n += (size_t)snprintf(out + n, size - n, "%s#%lld", i ? ", " : "", f->wait_targets[i]);
      if (n < size)
        n += (size_t)snprintf(out + n, size - n, "%s (%s)", f->more_wait_targets ? ", ..." : "",
                              f->wait_mode == AS_MEMWALK_WAIT_ALL ? "wait_all"
                              : f->wait_mode == AS_MEMWALK_WAIT_ANY ? "wait_any" : "wait");
    }
  } else if (is_kind(f, OWN(s, await_channel))) {
    if (f->channel_id != 0)
      n = (size_t)snprintf(out, size, "channel #%lld (%s)", f->channel_id,
                           f->channel_op == 1 ? "send" : "recv");
  } else if (is_kind(f, OWN(s, await_fd))) {
    n = (size_t)snprintf(out, size, "fd %lld (%s)", f->await_target,
                         f->fd_write ? "write" : "read");
  } else if (is_kind(f, OWN(s, await_sleep))) {
    if (f->has_deadline) {
      seconds_text(f->deadline > now ? f->deadline - now : 0, t, sizeof t);
      snprintf(out, size, "deadline in %s", t);
    } else {
      snprintf(out, size, "forever");
    }
    return;
  }
  if (f->has_deadline && n < size && f->await_kind != 0) {
    seconds_text(f->deadline > now ? f->deadline - now : 0, t, sizeof t);
    snprintf(out + n, size - n, "%stimeout in %s", n ? ", " : "", t);
  }
}

static void site_text(const tool_fork *tf, char *out, size_t size) {
  if (tf->site_file[0] == '\0') snprintf(out, size, "-");
  else if (tf->site_line > 0)
    snprintf(out, size, "%s:%d in %s", tf->site_file, tf->site_line, tf->site_function);
  else snprintf(out, size, "%s in %s", tf->site_file, tf->site_function);
}

static void spawn_text(tool_snapshot *s, const tool_fork *tf, char *out, size_t size) {
  const as_memwalk_fork *f = &tf->f;
  char where[128] = "", who[128];
  if (f->spawn_source[0]) {
    if (f->spawn_line > 0) snprintf(where, sizeof where, " at %s:%d", f->spawn_source, f->spawn_line);
    else snprintf(where, sizeof where, " at %s", f->spawn_source);
  }
  if (f->spawner_id == 0) {
    snprintf(out, size, "run()%s", where);
  } else {
    tool_fork *p = tool_snapshot_find(s, f->spawner_id, f->sched);
    if (p != NULL) label(&p->f, who, sizeof who);
    else snprintf(who, sizeof who, "fork #%lld (ended)", f->spawner_id);
    snprintf(out, size, "%s%s", who, where);
  }
}

static void header(FILE *out, const tool_snapshot *s, const tool_source *src) {
  fprintf(out, "%s: %d fork%s in %d scheduler%s (Lua %s), %s\n", src->what, s->nforks,
          s->nforks == 1 ? "" : "s", s->res.nscheds, s->res.nscheds == 1 ? "" : "s",
          s->t.d.lua_release[0] ? s->t.d.lua_release : "?",
          !src->live ? "from a core file"
          : src->stopped ? "read while paused (--stop)"
                         : "read while running (a fork that changed meanwhile may read torn; --stop pauses it)");
}

/* ------------------------------------------------------------------ ps */

static void csv_field(FILE *out, const char *v, int last) {
  if (strpbrk(v, ",\"\n") != NULL) {
    fputc('"', out);
    for (; *v; v++) {
      if (*v == '"') fputc('"', out);
      fputc(*v, out);
    }
    fputc('"', out);
  } else {
    fputs(v, out);
  }
  fputc(last ? '\n' : ',', out);
}

static void json_string(FILE *out, const char *v) {
  fputc('"', out);
  for (; *v; v++) {
    unsigned char c = (unsigned char)*v;
    if (c == '"' || c == '\\') fprintf(out, "\\%c", c);
    else if (c < 0x20) fprintf(out, "\\u%04x", c);
    else fputc(c, out);
  }
  fputc('"', out);
}

#define NCOLS 9
static const char *const ps_heads[NCOLS] = {
  "ID", "NAME", "STATUS", "AWAIT", "TARGET", "TIME", "SITE", "SPAWNED BY", "WALK"
};

/* The cells of one row. */
typedef struct ps_row {
  char id[24], name[AS_MEMWALK_NAME_SIZE], time[24], target[200], site[300], spawn[300];
  const char *status, *await, *walk;
} ps_row;

static void ps_cells(tool_snapshot *s, const tool_fork *tf, ps_row *r, const char *cells[NCOLS]) {
  snprintf(r->id, sizeof r->id, "%lld", tf->f.id);
  snprintf(r->name, sizeof r->name, "%s", tf->f.name);
  r->status = status_name(s, tf->f.status);
  r->await = tf->f.await_name;
  target_text(s, tf, r->target, sizeof r->target);
  seconds_text(tool_snapshot_seconds(s, tf), r->time, sizeof r->time);
  site_text(tf, r->site, sizeof r->site);
  spawn_text(s, tf, r->spawn, sizeof r->spawn);
  r->walk = walk_name(tf->f.walk);
  cells[0] = r->id; cells[1] = r->name; cells[2] = r->status; cells[3] = r->await;
  cells[4] = r->target; cells[5] = r->time; cells[6] = r->site; cells[7] = r->spawn;
  cells[8] = r->walk;
}

static void ps_json(FILE *out, tool_snapshot *s, const tool_source *src) {
  int i, j;
  fprintf(out, "{\"source\": ");
  json_string(out, src->what);
  fprintf(out, ", \"live\": %s, \"stopped\": %s, \"lua\": ", src->live ? "true" : "false",
          src->stopped ? "true" : "false");
  json_string(out, s->t.d.lua_release);
  fprintf(out, ", \"schedulers\": %d, \"walk\": \"%s\", \"forks\": [", s->res.nscheds,
          walk_name(s->res.status));
  for (i = 0; i < s->nforks; i++) {
    const tool_fork *tf = &s->forks[i];
    const as_memwalk_fork *f = &tf->f;
    char target[200];
    double now = tool_snapshot_now(s, tf);
    fprintf(out, "%s\n  {\"id\": %lld, \"name\": ", i ? "," : "", f->id);
    json_string(out, f->name);
    fprintf(out, ", \"status\": \"%s\", \"seconds\": %.3f", status_name(s, f->status),
            tool_snapshot_seconds(s, tf));
    if (f->await_kind != 0) {
      target_text(s, tf, target, sizeof target);
      fprintf(out, ", \"await\": {\"kind\": ");
      json_string(out, f->await_name);
      fprintf(out, ", \"target\": ");
      json_string(out, target);
      if (is_kind(f, OWN(s, await_wait))) {
        fprintf(out, ", \"forks\": [");
        if (f->nwait_targets > 0)
          for (j = 0; j < f->nwait_targets; j++)
            fprintf(out, "%s%lld", j ? ", " : "", f->wait_targets[j]);
        else if (f->await_target != 0)
          fprintf(out, "%lld", f->await_target);
        fprintf(out, "]");
        if (f->wait_mode != AS_MEMWALK_WAIT_ONE)
          fprintf(out, ", \"combinator\": \"%s\"",
                  f->wait_mode == AS_MEMWALK_WAIT_ALL ? "wait_all" : "wait_any");
      } else if (is_kind(f, OWN(s, await_channel))) {
        fprintf(out, ", \"channel\": %lld, \"op\": \"%s\"", f->channel_id,
                f->channel_op == 1 ? "send" : "recv");
      } else if (is_kind(f, OWN(s, await_fd))) {
        fprintf(out, ", \"fd\": %lld, \"op\": \"%s\"", f->await_target,
                f->fd_write ? "write" : "read");
      }
      if (f->has_deadline)
        fprintf(out, ", \"deadline_in\": %.3f", f->deadline > now ? f->deadline - now : 0.0);
      fprintf(out, "}");
    }
    if (tf->site_file[0]) {
      fprintf(out, ", \"site\": {\"file\": ");
      json_string(out, tf->site_file);
      fprintf(out, ", \"line\": %d, \"function\": ", tf->site_line);
      json_string(out, tf->site_function);
      fprintf(out, "}");
    }
    fprintf(out, ", \"spawned_by\": %lld", f->spawner_id);
    if (f->spawn_source[0]) {
      fprintf(out, ", \"spawn\": {\"file\": ");
      json_string(out, f->spawn_source);
      fprintf(out, ", \"line\": %d}", f->spawn_line);
    }
    fprintf(out, ", \"waiters\": [");
    for (j = 0; j < f->nwaiters; j++) fprintf(out, "%s%lld", j ? ", " : "", f->waiters[j]);
    fprintf(out, "], \"walk\": \"%s\", \"address\": \"0x%llx\"}", walk_name(f->walk),
            (unsigned long long)f->addr);
  }
  fprintf(out, "%s]}\n", s->nforks ? "\n" : "");
}

/* The table's cells, made once: a growing arena of NUL-terminated strings
** (offsets, so the arena may move), NCOLS per row. */
typedef struct cells {
  char *text;
  size_t len, cap;
  size_t *at;
} cells;

static int cells_add(cells *c, const char *v) {
  size_t n = strlen(v) + 1;
  if (c->len + n > c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 1 << 16;
    char *grown;
    while (cap < c->len + n) cap *= 2;
    grown = realloc(c->text, cap);
    if (grown == NULL) return -1;
    c->text = grown;
    c->cap = cap;
  }
  memcpy(c->text + c->len, v, n);
  c->len += n;
  return 0;
}

static void pad(FILE *out, size_t n) {
  static const char spaces[] = "                                                                ";
  while (n > 0) {
    size_t k = n < sizeof spaces - 1 ? n : sizeof spaces - 1;
    fwrite(spaces, 1, k, out);
    n -= k;
  }
}

void tool_view_ps(FILE *out, tool_snapshot *s, const tool_source *src, int format) {
  int i, c;
  size_t width[NCOLS];
  ps_row row;
  const char *cell[NCOLS];
  cells t;
  if (format == TOOL_FORMAT_JSON) {
    ps_json(out, s, src);
    return;
  }
  if (format == TOOL_FORMAT_CSV) {
    fputs("id,name,status,await,target,time,site,spawned_by,walk\n", out);
    for (i = 0; i < s->nforks; i++) {
      ps_cells(s, &s->forks[i], &row, cell);
      for (c = 0; c < NCOLS; c++) csv_field(out, cell[c], c == NCOLS - 1);
    }
    return;
  }
  header(out, s, src);
  memset(&t, 0, sizeof t);
  t.at = malloc(sizeof *t.at * NCOLS * ((size_t)s->nforks + 1));
  if (t.at == NULL) {
    fprintf(out, "asyncstack: out of memory\n");
    return;
  }
  for (c = 0; c < NCOLS; c++) width[c] = strlen(ps_heads[c]);
  for (i = 0; i < s->nforks; i++) {
    ps_cells(s, &s->forks[i], &row, cell);
    for (c = 0; c < NCOLS; c++) {
      const char *v = cell[c][0] ? cell[c] : "-";
      size_t n = strlen(v);
      if (n > width[c]) width[c] = n;
      t.at[(size_t)i * NCOLS + (size_t)c] = t.len;
      if (cells_add(&t, v) != 0) {
        free(t.at);
        free(t.text);
        fprintf(out, "asyncstack: out of memory\n");
        return;
      }
    }
  }
  for (c = 0; c < NCOLS; c++) {
    fputs(ps_heads[c], out);
    if (c == NCOLS - 1) fputc('\n', out);
    else pad(out, width[c] - strlen(ps_heads[c]) + 2);
  }
  for (i = 0; i < s->nforks; i++)
    for (c = 0; c < NCOLS; c++) {
      const char *v = t.text + t.at[(size_t)i * NCOLS + (size_t)c];
      fputs(v, out);
      if (c == NCOLS - 1) fputc('\n', out);
      else pad(out, width[c] - strlen(v) + 2);
    }
  free(t.at);
  free(t.text);
}

/* ------------------------------------------------------ frames of a fork */

typedef struct file_sink {
  as_sink k;
  FILE *out;
} file_sink;

static void file_write(as_sink *k, const char *str, size_t n) {
  fwrite(str, 1, n, ((file_sink *)k->ud)->out);
}

static void sink_to(file_sink *fs, FILE *out) {
  fs->out = out;
  as_sink_init(&fs->k, file_write, fs);
}

/* An async trace being built: renderer frames, and the strings they borrow. */
typedef struct trace {
  as_memwalk_frame *frames;   /* walker frames (their strings) */
  char (*globals)[AS_MEMWALK_NAME_SIZE];
  as_rframe *out;
  char (*names)[AS_MEMWALK_NAME_SIZE];     /* per hop: the fork's name */
  char (*sources)[AS_MEMWALK_SOURCE_SIZE]; /* per hop: its spawn source */
  long nframes, nout;
  int truncated;
} trace;

static int trace_init(trace *t) {
  memset(t, 0, sizeof *t);
  t->frames = malloc(sizeof *t->frames * BT_FRAMES);
  t->globals = malloc(sizeof *t->globals * BT_FRAMES);
  t->out = malloc(sizeof *t->out * BT_FRAMES);
  t->names = malloc(sizeof *t->names * BT_FRAMES);
  t->sources = malloc(sizeof *t->sources * BT_FRAMES);
  return t->frames && t->globals && t->out && t->names && t->sources ? 0 : -1;
}

static void trace_free(trace *t) {
  free(t->frames);
  free(t->globals);
  free(t->out);
  free(t->names);
  free(t->sources);
}

static as_rframe *next_out(trace *t) {
  if (t->nout >= BT_FRAMES) {
    t->truncated = 1;
    return NULL;
  }
  memset(&t->out[t->nout], 0, sizeof t->out[0]);
  return &t->out[t->nout++];
}

/* Appends walker frames [first, first + n) as renderer frames of fork id/name. */
static void add_frames(tool_snapshot *s, trace *t, long first, int n, uintptr_t thread,
                       long long id, const char *name, int root, int boundary,
                       const as_memwalk_fork *from, const char *from_name, int via,
                       int via_index) {
  long j;
  for (j = first; j < first + n; j++) {
    as_rframe *r = next_out(t);
    if (r == NULL) return;
    as_memwalk_render_frame(&s->t, thread, &t->frames[j], t->globals[j], id, name, r);
    if (root && j == first + n - 1) r->flags |= AS_RFRAME_ROOT;
    if (j == first) {
      r->boundary = boundary;
      if (from != NULL) {
        r->from_id = from->id;
        r->from_name = from_name;
      }
      r->via = via;
      r->via_index = via_index;
    }
  }
}

/* Reads fork tf again with all its frames into the trace; returns its
** record (frames at t->frames[*first, *first + rec->nframes)). */
static int read_fork(tool_snapshot *s, trace *t, const tool_fork *tf, as_memwalk_fork *rec,
                     long *first) {
  long room = BT_FRAMES - t->nframes;
  *first = t->nframes;
  if (room <= 0) {
    t->truncated = 1;
    memset(rec, 0, sizeof *rec);
    return 0;
  }
  as_memwalk_fork_read(&s->t, tf->f.sched, tf->f.addr, tf->f.now, rec, t->frames + t->nframes,
                       (int)room);
  t->nframes += rec->nframes;
  if (rec->walk != AS_MEMWALK_COMPLETE) t->truncated = 1;
  return rec->nframes;
}

static int trace_frame(as_rtrace *rt, long i, as_rframe *out) {
  trace *t = (trace *)rt->ud;
  if (i < 0 || i >= t->nout) return 0;
  *out = t->out[i];
  return 1;
}

/* The async trace of fork `start` (through its awaiters, spawners and
** run()'s caller when `async`), as as.traceback prints it. */
static void bt_one(FILE *out, tool_snapshot *s, const tool_source *src, tool_fork *start,
                   int async, trace *t) {
  tool_fork *cur = start;
  const as_memwalk_fork *from = NULL;
  const char *from_name = NULL;
  int boundary = AS_BOUND_NONE, via = AS_VIA_NONE, via_index = 0, hop;
  char head[256], lab[128];
  long long *visited = malloc(sizeof *visited * ((size_t)s->nforks + 1));
  as_memwalk_fork *recs = malloc(sizeof *recs * ((size_t)s->nforks + 1));
  as_rtrace rt;
  file_sink fs;
  (void)src;
  t->nframes = t->nout = 0;
  t->truncated = 0;
  if (visited == NULL || recs == NULL) {
    free(visited);
    free(recs);
    fprintf(out, "asyncstack: out of memory\n");
    return;
  }
  for (hop = 0; cur != NULL && hop <= s->nforks; hop++) {
    as_memwalk_fork *rec = &recs[hop];
    long first;
    int k, seen = 0, link;
    uintptr_t next;
    for (k = 0; k < hop; k++) seen |= visited[k] == cur->f.id;
    if (seen) break;
    visited[hop] = cur->f.id;
    read_fork(s, t, cur, rec, &first);
    memcpy(t->names[hop], rec->name, sizeof t->names[hop]);
    memcpy(t->sources[hop], rec->spawn_source, sizeof t->sources[hop]);
    add_frames(s, t, first, rec->nframes, rec->thread, rec->id,
               t->names[hop][0] ? t->names[hop] : NULL, rec->walk == AS_MEMWALK_COMPLETE,
               boundary, from, from_name, via, via_index);
    if (!async) break;
    from = rec;
    from_name = t->names[hop][0] ? t->names[hop] : NULL;
    via = AS_VIA_NONE;
    via_index = 0;
    /* the chain rule (src/chain.h), read from memory by the walker: the
    ** same function `asyncstack record` follows */
    link = as_memwalk_chain_next(&s->t, rec->sched, rec->addr, &next);
    if (link == AS_MEMWALK_LINK_UNREADABLE) {
      t->truncated = 1;
      break;
    }
    if (link == AS_MEMWALK_LINK_AWAITED) {
      boundary = AS_BOUND_AWAITED;
      if (rec->waiter_mode != AS_MEMWALK_WAIT_ONE) {
        via = rec->waiter_mode == AS_MEMWALK_WAIT_ALL ? AS_VIA_WAIT_ALL : AS_VIA_WAIT_ANY;
        via_index = rec->waiter_index;
      }
      cur = rec->nwaiters > 0 ? tool_snapshot_find(s, rec->waiters[0], rec->sched) : NULL;
    } else if (link == AS_MEMWALK_LINK_RUN) {
      uintptr_t L = as_memwalk_sched_caller(&s->t, rec->sched);
      as_memwalk_status st = AS_MEMWALK_FAILED;
      int n = 0;
      if (L != 0 && t->nframes < BT_FRAMES)
        n = as_memwalk_thread_visible(&s->t, L, t->frames + t->nframes,
                                      (int)(BT_FRAMES - t->nframes), &st);
      if (st != AS_MEMWALK_COMPLETE) t->truncated = 1;
      add_frames(s, t, t->nframes, n, L, 0, NULL, 0, AS_BOUND_RUN, from, from_name,
                 AS_VIA_NONE, 0);
      t->nframes += n;
      cur = NULL;
    } else {
      /* the spawn site: one synthetic frame, then the spawner if live */
      tool_fork *spawner = tool_snapshot_find(s, rec->spawner_id, rec->sched);
      as_rframe *r = next_out(t);
      if (r == NULL) break;
      r->file = t->sources[hop][0] ? t->sources[hop] : NULL;
      r->line = rec->spawn_line;
      r->linedefined = rec->spawn_linedefined;
      r->what = 'L';
      r->flags = AS_RFRAME_SPAWN_SITE;
      r->boundary = AS_BOUND_SPAWNED;
      r->from_id = rec->id;
      r->from_name = from_name;
      r->fork_id = rec->spawner_id;
      r->fork_name = spawner != NULL && spawner->f.name[0] ? spawner->f.name : NULL;
      boundary = AS_BOUND_NONE;
      cur = spawner;
    }
  }
  label(&start->f, lab, sizeof lab);
  snprintf(head, sizeof head, "%s [%s]", lab, status_name(s, start->f.status));
  memset(&rt, 0, sizeof rt);
  rt.frame = trace_frame;
  rt.ud = t;
  rt.n = t->nout;
  sink_to(&fs, out);
  as_render_traceback(&fs.k, &rt, head, strlen(head));
  fputc('\n', out);
  if (t->truncated)
    fprintf(out, "... (some frames could not be read: the walk of a fork was %s)\n",
            src->live && !src->stopped ? "torn or cut short (--stop reads a paused process)"
                                       : "cut short");
  free(visited);
  free(recs);
}

int tool_view_bt(FILE *out, FILE *err, tool_snapshot *s, const tool_source *src,
                 long long fork_id, int all, int async) {
  trace t;
  int i, shown = 0;
  if (trace_init(&t) != 0) {
    trace_free(&t);
    fprintf(err, "asyncstack: out of memory\n");
    return 1;
  }
  for (i = 0; i < s->nforks; i++) {
    tool_fork *tf = &s->forks[i];
    int want = all ? 1 : fork_id != 0 ? tf->f.id == fork_id
                                       : (unsigned)tf->f.status == OWN(s, status_running);
    if (!want) continue;
    if (shown++) fputc('\n', out);
    bt_one(out, s, src, tf, async, &t);
  }
  trace_free(&t);
  if (shown == 0 && fork_id != 0) {
    fprintf(err, "asyncstack: %s has no live fork #%lld\n", src->what, fork_id);
    return 1;
  }
  if (shown == 0)
    fprintf(out, "%s: %s\n", src->what,
            s->res.nscheds == 0 ? "no run() is active (no scheduler is registered)"
            : "no fork is running (the scheduler is idle or between forks); "
              "--all shows every fork, --fork N one of them");
  return 0;
}

/* --------------------------------------------------------------- pstree */

typedef struct tree {
  tool_snapshot *s;
  FILE *out;
  char *state;        /* per fork: 0 not drawn, 1 on the path, 2 drawn */
  trace t;
  char prefix[4096];
} tree;

static int index_of(tree *tr, const tool_fork *f) {
  return (int)(f - tr->s->forks);
}

/* The forks fork f waits for (live ones in its scheduler). */
static int children(tree *tr, const tool_fork *tf, tool_fork **kids, int room) {
  const as_memwalk_fork *f = &tf->f;
  int n = 0, i;
  if (!is_kind(f, OWN(tr->s, await_wait))) return 0;
  if (f->nwait_targets == 0 && f->await_target != 0) {
    tool_fork *k = tool_snapshot_find(tr->s, f->await_target, f->sched);
    if (k != NULL) kids[n++] = k;
  }
  for (i = 0; i < f->nwait_targets && n < room; i++) {
    tool_fork *k = tool_snapshot_find(tr->s, f->wait_targets[i], f->sched);
    if (k != NULL) kids[n++] = k;
  }
  return n;
}

static void state_text(tree *tr, const tool_fork *tf, char *out, size_t size) {
  char target[200], time[24];
  target_text(tr->s, tf, target, sizeof target);
  seconds_text(tool_snapshot_seconds(tr->s, tf), time, sizeof time);
  if (is_kind(&tf->f, OWN(tr->s, await_sleep)))
    snprintf(out, size, "%s for %s, %s", status_name(tr->s, tf->f.status), time, target);
  else if (tf->f.await_kind != 0 && target[0])
    snprintf(out, size, "%s on %s for %s", status_name(tr->s, tf->f.status), target, time);
  else if (tf->f.await_kind != 0)
    snprintf(out, size, "%s (%s) for %s", status_name(tr->s, tf->f.status), tf->f.await_name, time);
  else
    snprintf(out, size, "%s", status_name(tr->s, tf->f.status));
}

static void draw(tree *tr, tool_fork *tf, size_t plen, int last);

/* Draws fork tf's frames (outermost first, each one level in) and, under
** the innermost, the forks it waits for. */
static void draw_body(tree *tr, tool_fork *tf, size_t plen) {
  as_memwalk_fork rec;
  long first;
  int n, i, k, nk;
  tool_fork *kids[AS_MEMWALK_MAX_WAITERS + 1];
  size_t len = plen;
  file_sink fs;
  tr->t.nframes = tr->t.nout = 0;
  n = read_fork(tr->s, &tr->t, tf, &rec, &first);
  sink_to(&fs, tr->out);
  for (i = n - 1; i >= 0; i--) {
    as_rframe r;
    as_memwalk_render_frame(&tr->s->t, rec.thread, &tr->t.frames[first + i],
                            tr->t.globals[first + i], rec.id, NULL, &r);
    fprintf(tr->out, "%.*s└── ", (int)len, tr->prefix);
    as_render_describe(&fs.k, &r, 0);
    fputc(' ', tr->out);
    as_render_location(&fs.k, &r);
    fputc('\n', tr->out);
    if (len + 4 < sizeof tr->prefix) {
      memcpy(tr->prefix + len, "    ", 4);
      len += 4;
    }
  }
  if (rec.walk != AS_MEMWALK_COMPLETE)
    fprintf(tr->out, "%.*s└── ... (walk %s)\n", (int)len, tr->prefix, walk_name(rec.walk));
  nk = children(tr, tf, kids, AS_MEMWALK_MAX_WAITERS);
  for (k = 0; k < nk; k++) draw(tr, kids[k], len, k == nk - 1);
}

static void draw(tree *tr, tool_fork *tf, size_t plen, int last) {
  int i = index_of(tr, tf);
  char lab[128], st[300];
  label(&tf->f, lab, sizeof lab);
  fprintf(tr->out, "%.*s%s (F) %s", (int)plen, tr->prefix, last ? "└──" : "├──", lab);
  if (tr->state[i] == 1) {
    fprintf(tr->out, "  (cycle: already on this path, not drawn again)\n");
    return;
  }
  if (tr->state[i] == 2) {
    fprintf(tr->out, "  (drawn above)\n");
    return;
  }
  state_text(tr, tf, st, sizeof st);
  fprintf(tr->out, " [%s]\n", st);
  tr->state[i] = 1;
  if (plen + 4 < sizeof tr->prefix) {
    memcpy(tr->prefix + plen, last ? "    " : "│   ", last ? 4 : 6);
    draw_body(tr, tf, plen + (last ? 4 : 6));
  }
  tr->state[i] = 2;
}

/* Cycles of the await graph (only a torn read or a corrupted process can
** make one: wait() refuses them), each printed once. */
static int report_cycles(tree *tr) {
  tool_snapshot *s = tr->s;
  int *color = calloc((size_t)s->nforks + 1, sizeof *color);
  int *stack = malloc(sizeof *stack * ((size_t)s->nforks + 1));
  int *next = calloc((size_t)s->nforks + 1, sizeof *next);
  int i, found = 0;
  if (color == NULL || stack == NULL || next == NULL) {
    free(color); free(stack); free(next);
    return 0;
  }
  for (i = 0; i < s->nforks; i++) {
    int sp = 0;
    if (color[i]) continue;
    stack[sp++] = i;
    color[i] = 1;
    while (sp > 0) {
      int top = stack[sp - 1];
      tool_fork *kids[AS_MEMWALK_MAX_WAITERS + 1];
      int nk = children(tr, &s->forks[top], kids, AS_MEMWALK_MAX_WAITERS);
      if (next[top] < nk) {
        int k = index_of(tr, kids[next[top]++]);
        if (color[k] == 0) {
          color[k] = 1;
          stack[sp++] = k;
        } else if (color[k] == 1) {    /* back edge: the cycle is on the stack */
          int j = sp - 1;
          char lab[128];
          while (j > 0 && stack[j] != k) j--;
          fprintf(tr->out, "cycle in the await graph:");
          for (; j < sp; j++) {
            label(&s->forks[stack[j]].f, lab, sizeof lab);
            fprintf(tr->out, " %s ->", lab);
          }
          label(&s->forks[k].f, lab, sizeof lab);
          fprintf(tr->out, " %s\n", lab);
          found++;
        }
      } else {
        color[top] = 2;
        sp--;
      }
    }
  }
  free(color); free(stack); free(next);
  return found;
}

void tool_view_pstree(FILE *out, tool_snapshot *s, const tool_source *src) {
  tree tr;
  int i, roots = 0, drawn_roots = 0;
  memset(&tr, 0, sizeof tr);
  tr.s = s;
  tr.out = out;
  tr.state = calloc((size_t)s->nforks + 1, 1);
  if (tr.state == NULL || trace_init(&tr.t) != 0) {
    free(tr.state);
    trace_free(&tr.t);
    fprintf(out, "asyncstack: out of memory\n");
    return;
  }
  header(out, s, src);
  report_cycles(&tr);
  /* roots: forks nobody waits for; the rest hang under their waiters */
  for (i = 0; i < s->nforks; i++) roots += s->forks[i].f.nwaiters == 0;
  for (i = 0; i < s->nforks; i++)
    if (s->forks[i].f.nwaiters == 0)
      draw(&tr, &s->forks[i], 0, ++drawn_roots == roots);
  /* forks only reachable through a cycle */
  for (i = 0; i < s->nforks; i++)
    if (tr.state[i] == 0) draw(&tr, &s->forks[i], 0, 1);
  free(tr.state);
  trace_free(&tr.t);
}
