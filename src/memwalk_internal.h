/*
** memwalk_internal.h: what the memory walker's files share (memwalk.c:
** reading, frames and the public entry points; memwalk_proto.c: Proto,
** code and line info; memwalk_names.c: names from the calling instruction;
** memwalk_loaded.c: the search of package.loaded). Not for other callers:
** use memwalk.h. Same rules as memwalk.h (no Lua API, no allocation,
** bounded, every read checked).
*/
#ifndef ASYNCSTACK_MEMWALK_INTERNAL_H
#define ASYNCSTACK_MEMWALK_INTERNAL_H

#include <string.h>
#include "memwalk.h"

/* One walk: the layout, the reader, and what went wrong so far. */
typedef struct walker {
  const as_lualayout *lay;
  const as_memwalk_reader *rd;
  uintptr_t L;
  int truncated;   /* a string was cut to its buffer */
  long budget;     /* reads left for the current frame or search */
} walker;

/* A name being derived: `set` is 0 for Lua's NULL name. */
typedef struct objname {
  int set;
  char s[AS_MEMWALK_NAME_SIZE];
} objname;

/* Instructions of one Proto, read in windows (one read per window). */
#define CODE_WINDOW 64
typedef struct protoinfo {
  uintptr_t addr;
  int sizeupvalues, sizek, sizecode, sizelineinfo, sizelocvars;
  int sizeabslineinfo, linedefined, lastlinedefined;
  uintptr_t k, code, upvalues, lineinfo, abslineinfo, locvars, source;
  int window_start, window_len;
  uint32_t window[CODE_WINDOW];
} protoinfo;


/* Instruction fields (lopcodes.h, every 5.4 release): op 7 bits, A 8 bits
** at 7, k 1 bit at 15, B 8 bits at 16, C 8 bits at 24, Bx 17 bits at 15,
** Ax and sJ 25 bits at 7 (sJ excess-(2^24 - 1)). */
#define I_OP(i) ((unsigned)((i) & 0x7Fu))
#define I_A(i) ((int)(((i) >> 7) & 0xFFu))
#define I_K(i) ((int)(((i) >> 15) & 0x1u))
#define I_B(i) ((int)(((i) >> 16) & 0xFFu))
#define I_C(i) ((int)(((i) >> 24) & 0xFFu))
#define I_BX(i) ((int)(((i) >> 15) & 0x1FFFFu))
#define I_AX(i) ((int)(((i) >> 7) & 0x1FFFFFFu))
#define I_SJ(i) ((int)(((i) >> 7) & 0x1FFFFFFu) - ((1 << 24) - 1))

/* reading (memwalk.c) */
int as_mw_rd(walker *w, uintptr_t addr, size_t len, void *out);
int as_mw_rd_ptr(walker *w, uintptr_t addr, uintptr_t *out);
int as_mw_rd_int(walker *w, uintptr_t addr, int *out);
int as_mw_rd_byte(walker *w, uintptr_t addr, unsigned char *out);
int as_mw_gc_ok(uintptr_t p);
int as_mw_read_string(walker *w, uintptr_t ts, size_t from, char *out,
                      size_t size, size_t *len);
void as_mw_set_name(objname *nm, const char *s);
void as_mw_set_name_ts(walker *w, objname *nm, uintptr_t ts);
int as_mw_init_walker(walker *w, const as_lualayout *lay,
                      const as_memwalk_reader *rdr, uintptr_t L);

/* Proto (memwalk_proto.c) */
int as_mw_read_proto(walker *w, uintptr_t p, protoinfo *pi);
int as_mw_code_at(walker *w, protoinfo *pi, int pc, uint32_t *out);
int as_mw_func_line(walker *w, const protoinfo *pi, int pc, int *line);

/* names (memwalk_names.c): how the instruction at `pc` names the function
** it calls (funcnamefromcode); NULL when it does not. */
const char *as_mw_name_from_code(walker *w, protoinfo *pi, int pc, objname *nm);

#endif
