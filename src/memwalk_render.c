/*
** memwalk_render.c: a walker frame as the renderer's frame (see
** memwalk_render.h).
*/
#include <string.h>
#include "memwalk_render.h"

static char what_of(const as_memwalk_frame *f) {
  return f->what[0] == 'm' ? 'm' : f->what[0] == 'C' ? 'C' : 'L';
}

void as_memwalk_render_frame(as_memwalk_target *t, uintptr_t thread,
                             const as_memwalk_frame *f, char *global,
                             long long fork_id, const char *fork_name,
                             as_rframe *r) {
  memset(r, 0, sizeof *r);
  r->file = f->source;
  r->line = f->currentline;
  r->linedefined = f->linedefined;
  r->what = what_of(f);
  if (*f->namewhat != '\0') {
    r->name = f->name;
    r->namewhat = f->namewhat;
    /* the traces name a function by its global name first */
    if (f->func != 0 && thread != 0 &&
        as_memwalk_global_name_cached(t, thread, f, global, AS_MEMWALK_NAME_SIZE) == 1)
      r->global_name = global;
  } else if (f->name_kind == AS_MEMWALK_NAME_GLOBAL) {
    r->global_name = f->name;
  } else if (f->name_kind == AS_MEMWALK_NAME_UPVALUE) {
    r->guessed_name = f->name;
  }
  r->fork_id = fork_id;
  r->fork_name = fork_name;
  if (f->istailcall) r->flags |= AS_RFRAME_TAILCALL;
  if (f->coroutine_start) r->boundary = AS_BOUND_COROUTINE;
}
