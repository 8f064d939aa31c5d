/*
** render.c: the one trace renderer (see render.h). Pure C: no Lua API, no
** allocation, no stdio; what it writes goes through the sink.
*/
#include <string.h>
#include "render.h"

void as_sink_init(as_sink *k, void (*write)(as_sink *, const char *, size_t), void *ud) {
  k->write = write;
  k->ud = ud;
  k->staged = 0;
}

static void text_write(as_sink *k, const char *s, size_t n) {
  as_text_sink *t = (as_text_sink *)k->ud;
  if (n > t->size - 1 - t->len) n = t->size - 1 - t->len;
  memcpy(t->buf + t->len, s, n);
  t->len += n;
  t->buf[t->len] = '\0';
}

as_sink *as_text_sink_init(as_text_sink *t, char *buf, size_t size) {
  t->buf = buf;
  t->size = size;
  t->len = 0;
  buf[0] = '\0';
  as_sink_init(&t->k, text_write, t);
  return &t->k;
}

static void flush(as_sink *k) {
  if (k->staged > 0) {
    size_t n = k->staged;
    k->staged = 0;
    k->write(k, k->stage, n);
  }
}

static void put(as_sink *k, const char *s, size_t n) {
  if (n > sizeof k->stage - k->staged) flush(k);
  if (n >= sizeof k->stage) {
    k->write(k, s, n);
  } else {
    memcpy(k->stage + k->staged, s, n);
    k->staged += n;
  }
}

static void str(as_sink *k, const char *s) {
  put(k, s, strlen(s));
}

void as_render_str(as_sink *k, const char *s) {
  str(k, s);
  flush(k);
}

#define LIT(k, s) put((k), (s), sizeof(s) - 1)

static void integer(as_sink *k, long long v) {
  char digits[3 * sizeof(long long) + 2];
  size_t i = sizeof digits;
  unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
  do {
    digits[--i] = (char)('0' + (int)(u % 10));
    u /= 10;
  } while (u != 0);
  if (v < 0) digits[--i] = '-';
  put(k, digits + i, sizeof digits - i);
}

static void put_file(as_sink *k, const as_rframe *fr) {
  str(k, fr->file != NULL ? fr->file : "nil");
}

static void location(as_sink *k, const as_rframe *fr) {
  put_file(k, fr);
  if (fr->line > 0) {
    LIT(k, ":");
    integer(k, fr->line);
  }
}

static void fork_label(as_sink *k, long long id, const char *name) {
  LIT(k, "fork #");
  integer(k, id);
  if (name != NULL) {
    LIT(k, " '");
    str(k, name);
    LIT(k, "'");
  }
}

static void via_text(as_sink *k, int via, int index) {
  if (via == AS_VIA_NONE) return;
  str(k, via == AS_VIA_WAIT_ALL ? "wait_all" : "wait_any");
  LIT(k, " (index ");
  integer(k, index);
  LIT(k, ")");
}

static int nonempty(const char *s) {
  return s != NULL && *s != '\0';
}

static void describe(as_sink *k, const as_rframe *fr, int php) {
  const char *name = NULL, *kind = "function";
  if (nonempty(fr->global_name)) {
    name = fr->global_name;
  } else if (nonempty(fr->name) && nonempty(fr->namewhat)) {
    name = fr->name;
    kind = fr->namewhat;
  } else if (nonempty(fr->guessed_name)) {
    name = fr->guessed_name;
  }
  if (name != NULL) {
    if (php) {
      str(k, name);
      LIT(k, "()");
    } else {
      str(k, kind);
      LIT(k, " '");
      str(k, name);
      LIT(k, "'");
    }
  } else if (fr->what == 'm') {
    if (php) LIT(k, "{main chunk}"); else LIT(k, "main chunk");
  } else if (fr->what != 'C') {
    if (php) {
      LIT(k, "{closure}()");
    } else {
      LIT(k, "function <");
      put_file(k, fr);
      LIT(k, ":");
      integer(k, fr->linedefined > 0 ? fr->linedefined : 0);
      LIT(k, ">");
    }
  } else {
    if (php) LIT(k, "{unknown}()"); else LIT(k, "?");
  }
}

/* The profiler's frame text: the name alone (no kind), then the place. */
static void profile_frame(as_sink *k, const as_rframe *fr) {
  if (nonempty(fr->global_name)) str(k, fr->global_name);
  else if (nonempty(fr->name) && nonempty(fr->namewhat)) str(k, fr->name);
  else if (nonempty(fr->guessed_name)) str(k, fr->guessed_name);
  else describe(k, fr, 0);
  LIT(k, " (");
  if (fr->what == 'C') LIT(k, "[C]");
  else location(k, fr);
  LIT(k, ")");
}

void as_render_profile_frame(as_sink *k, const as_rframe *fr) {
  profile_frame(k, fr);
  flush(k);
}

void as_render_int(as_sink *k, long long v) { integer(k, v); flush(k); }
void as_render_location(as_sink *k, const as_rframe *fr) { location(k, fr); flush(k); }
void as_render_fork_label(as_sink *k, long long id, const char *name) {
  fork_label(k, id, name);
  flush(k);
}
void as_render_await_point(as_sink *k, int point, long long target) {
  switch (point) {
    case AS_POINT_RUNNABLE: LIT(k, "[runnable]"); break;
    case AS_POINT_SLEEP: LIT(k, "[sleeping]"); break;
    case AS_POINT_YIELD: LIT(k, "[yielding]"); break;
    case AS_POINT_WAIT:
      LIT(k, "[waiting on fork #");
      integer(k, target);
      LIT(k, "]");
      break;
    case AS_POINT_WAIT_ALL: LIT(k, "[waiting in wait_all]"); break;
    case AS_POINT_WAIT_ANY: LIT(k, "[waiting in wait_any]"); break;
    case AS_POINT_CHANNEL_SEND:
    case AS_POINT_CHANNEL_RECV:
      LIT(k, "[waiting on channel #");
      integer(k, target);
      if (point == AS_POINT_CHANNEL_SEND) LIT(k, " (send)]"); else LIT(k, " (recv)]");
      break;
    case AS_POINT_FD_READ:
    case AS_POINT_FD_WRITE:
      LIT(k, "[waiting on fd ");
      integer(k, target);
      if (point == AS_POINT_FD_WRITE) LIT(k, " (write)]"); else LIT(k, " (read)]");
      break;
    default: LIT(k, "[suspended]");
  }
  flush(k);
}
void as_render_via(as_sink *k, int via, int index) { via_text(k, via, index); flush(k); }
void as_render_describe(as_sink *k, const as_rframe *fr, int php) {
  describe(k, fr, php);
  flush(k);
}

/* " at <location> in <name>]": the end of most boundary lines */
static void boundary_site(as_sink *k, const as_rframe *fr) {
  LIT(k, " at ");
  location(k, fr);
  LIT(k, " in ");
  describe(k, fr, 0);
  LIT(k, "]");
}

/* The marker line of a boundary (without the line separator). */
static void boundary_line(as_sink *k, const as_rframe *fr) {
  switch (fr->boundary) {
    case AS_BOUND_COROUTINE:
      LIT(k, "[coroutine resumed");
      boundary_site(k, fr);
      break;
    case AS_BOUND_AWAITED:
      LIT(k, "[");
      fork_label(k, fr->from_id, fr->from_name);
      LIT(k, " awaited by ");
      fork_label(k, fr->fork_id, fr->fork_name);
      if (fr->via != AS_VIA_NONE) {
        LIT(k, " in ");
        via_text(k, fr->via, fr->via_index);
      }
      boundary_site(k, fr);
      break;
    case AS_BOUND_SPAWNED:
      LIT(k, "[");
      fork_label(k, fr->from_id, fr->from_name);
      LIT(k, " spawned by ");
      fork_label(k, fr->fork_id, fr->fork_name);
      boundary_site(k, fr);
      break;
    case AS_BOUND_RUN:
      LIT(k, "[");
      fork_label(k, fr->from_id, fr->from_name);
      LIT(k, " started by run()");
      boundary_site(k, fr);
      break;
    default:  /* AS_BOUND_UNBRIDGED */
      LIT(k, "[coroutine resumed outside the asyncstack bridge]");
      break;
  }
}

/* ------------------------------------------------------------ traceback */

typedef struct tb_state {
  as_sink *k;
  int lines;                /* lines written so far */
} tb_state;

static void tb_line(tb_state *s) {
  if (s->lines++ == 0) LIT(s->k, "stack traceback:\n\t");
  else LIT(s->k, "\n\t");
}

static void tb_frame(tb_state *s, const as_rframe *fr) {
  as_sink *k = s->k;
  if (fr->flags & AS_RFRAME_AFTER_TAILCALL) {
    tb_line(s);
    LIT(k, "(...tail calls...)");
  }
  if (fr->boundary != AS_BOUND_NONE) {
    tb_line(s);
    boundary_line(k, fr);
  }
  if (!(fr->flags & AS_RFRAME_SPAWN_SITE)) {
    tb_line(s);
    location(k, fr);
    LIT(k, ": in ");
    describe(k, fr, 0);
    if (fr->flags & AS_RFRAME_ROOT) {
      LIT(k, "  (root of ");
      fork_label(k, fr->fork_id, fr->fork_name);
      LIT(k, ")");
    }
  }
  if (fr->flags & AS_RFRAME_TAILCALL) {
    tb_line(s);
    LIT(k, "(...tail calls...)");
  }
}

static void tb_skipping(tb_state *s, long n) {
  tb_line(s);
  LIT(s->k, "...\t(skipping ");
  integer(s->k, n);
  LIT(s->k, " levels)");
}

static void tb_range(tb_state *s, as_rtrace *t, long from, long to) {
  long i;
  as_rframe fr;
  for (i = from; i < to; i++)
    if (t->frame(t, i, &fr)) tb_frame(s, &fr);
}

void as_render_traceback(as_sink *k, as_rtrace *t, const char *msg, size_t msglen) {
  tb_state s;
  s.k = k;
  s.lines = 0;
  if (msg != NULL) {
    put(k, msg, msglen);
    LIT(k, "\n");
  }
  if (t->skipped > 0) {                 /* the walker kept head and tail */
    tb_range(&s, t, 0, t->skip_at);
    tb_skipping(&s, t->skipped);
    tb_range(&s, t, t->skip_at, t->n);
  } else if (t->n <= AS_RENDER_HEAD + AS_RENDER_TAIL) {
    tb_range(&s, t, 0, t->n);
  } else {
    tb_range(&s, t, 0, AS_RENDER_HEAD);
    tb_skipping(&s, t->n - AS_RENDER_HEAD - AS_RENDER_TAIL);
    tb_range(&s, t, t->n - AS_RENDER_TAIL, t->n);
  }
  if (t->omitted > 0) {
    tb_line(&s);
    LIT(k, "...\t(");
    integer(k, t->omitted);
    LIT(k, " more frames omitted)");
  }
  if (s.lines == 0) LIT(k, "stack traceback:");
  flush(k);
}

/* ----------------------------------------------------------------- dump */

void as_render_dump(as_sink *k, as_rtrace *t) {
  long i;
  int first = 1;
  as_rframe fr;
  for (i = 0; i < t->n; i++) {
    if (!t->frame(t, i, &fr)) continue;
    if (fr.boundary == AS_BOUND_COROUTINE) {
      if (!first) LIT(k, "\n");
      LIT(k, "\t[coroutine resumed at ");
      location(k, &fr);
      LIT(k, " in ");
      describe(k, &fr, 0);
      LIT(k, "]");
      first = 0;
    }
    if (!first) LIT(k, "\n");
    LIT(k, "\t#");
    integer(k, i);
    LIT(k, " ");
    location(k, &fr);
    LIT(k, " in ");
    describe(k, &fr, 0);
    first = 0;
  }
  if (t->omitted > 0) {
    if (!first) LIT(k, "\n");
    LIT(k, "\t... ");
    integer(k, t->omitted);
    LIT(k, " more frames omitted");
  }
  flush(k);
}

/* ------------------------------------------------------------------ PHP */

void as_render_php(as_sink *k, as_rtrace *t) {
  long i, lines = 0;
  as_rframe fr;
  for (i = 0; i < t->n; i++) {
    if (!t->frame(t, i, &fr)) continue;
    LIT(k, "#");
    integer(k, lines++);
    LIT(k, " ");
    if (fr.what == 'C') {
      LIT(k, "[internal function]");
    } else {
      put_file(k, &fr);
      LIT(k, "(");
      if (fr.line > 0) integer(k, fr.line); else LIT(k, "?");
      LIT(k, ")");
    }
    LIT(k, ": ");
    describe(k, &fr, 1);
    LIT(k, "\n");
  }
  if (t->omitted > 0) {
    LIT(k, "#");
    integer(k, lines++);
    LIT(k, " ... ");
    integer(k, t->omitted);
    LIT(k, " frames omitted\n");
  }
  LIT(k, "#");
  integer(k, lines);
  LIT(k, " {main}");
  flush(k);
}

void as_render_rethrow_head(as_sink *k, as_rtrace *t, const char *how, long site) {
  as_rframe fr;
  str(k, how);
  LIT(k, " at ");
  if (site < 0 || !t->frame(t, site, &fr)) {
    LIT(k, "?");
  } else {
    location(k, &fr);
    if (fr.fork_id > 0) {
      LIT(k, " in ");
      fork_label(k, fr.fork_id, fr.fork_name);
    }
  }
  flush(k);
}
