/*
** memwalk_proto.c: a Proto read from memory (memwalk.h): its sizes and
** pointers in one read, its code through a window cache, and the line of a
** pc from lineinfo/abslineinfo as luaG_getfuncline computes it.
*/
#include "memwalk_internal.h"

/* ------------------------------------------------------------ Proto */

/* Field `off` of a struct image `buf` read in one piece. */
static int as_mw_img_int(const unsigned char *buf, unsigned off) {
  int32_t v;
  memcpy(&v, buf + off, sizeof v);
  return (int)v;
}

static uintptr_t as_mw_img_ptr(const unsigned char *buf, unsigned off) {
  uint64_t v;
  memcpy(&v, buf + off, sizeof v);
  return (uintptr_t)v;
}

/* Reads the Proto at `p` in one read (every field used lies before
** p_source + 8) and checks its sizes. */
int as_mw_read_proto(walker *w, uintptr_t p, protoinfo *pi) {
  const as_lualayout *lay = w->lay;
  unsigned char buf[192];
  size_t len = (size_t)lay->p_source + 8;
  if (!as_mw_gc_ok(p) || len > sizeof buf || as_mw_rd(w, p, len, buf) != 0) return -1;
  pi->addr = p;
  pi->window_start = 0;
  pi->window_len = 0;
  pi->sizeupvalues = as_mw_img_int(buf, lay->p_sizeupvalues);
  pi->sizek = as_mw_img_int(buf, lay->p_sizek);
  pi->sizecode = as_mw_img_int(buf, lay->p_sizecode);
  pi->sizelineinfo = as_mw_img_int(buf, lay->p_sizelineinfo);
  pi->sizelocvars = as_mw_img_int(buf, lay->p_sizelocvars);
  pi->sizeabslineinfo = as_mw_img_int(buf, lay->p_sizeabslineinfo);
  pi->linedefined = as_mw_img_int(buf, lay->p_linedefined);
  pi->lastlinedefined = as_mw_img_int(buf, lay->p_lastlinedefined);
  pi->k = as_mw_img_ptr(buf, lay->p_k);
  pi->code = as_mw_img_ptr(buf, lay->p_code);
  pi->upvalues = as_mw_img_ptr(buf, lay->p_upvalues);
  pi->lineinfo = as_mw_img_ptr(buf, lay->p_lineinfo);
  pi->abslineinfo = as_mw_img_ptr(buf, lay->p_abslineinfo);
  pi->locvars = as_mw_img_ptr(buf, lay->p_locvars);
  pi->source = as_mw_img_ptr(buf, lay->p_source);
  if (pi->sizecode < 0 || pi->sizecode > AS_MEMWALK_MAX_CODE ||
      pi->sizeupvalues < 0 || pi->sizeupvalues > 255 ||
      pi->sizek < 0 || pi->sizelineinfo < 0 ||
      pi->sizelineinfo > AS_MEMWALK_MAX_CODE || pi->sizelocvars < 0 ||
      pi->sizeabslineinfo < 0 || pi->sizeabslineinfo > AS_MEMWALK_MAX_CODE)
    return -1;
  return 0;
}

/* Instruction `pc` of the Proto, through the window cache. */
int as_mw_code_at(walker *w, protoinfo *pi, int pc, uint32_t *out) {
  if (pc < 0 || pc >= pi->sizecode || (pi->code & 3) != 0) return -1;
  if (pc < pi->window_start || pc >= pi->window_start + pi->window_len) {
    int n = pi->sizecode - pc;
    if (n > CODE_WINDOW) n = CODE_WINDOW;
    pi->window_len = 0;
    if (as_mw_rd(w, pi->code + (uintptr_t)pc * 4, (size_t)n * 4, pi->window) != 0)
      return -1;
    pi->window_start = pc;
    pi->window_len = n;
  }
  *out = pi->window[pc - pi->window_start];
  return 0;
}
/*
** The line of instruction `pc` (luaG_getfuncline): start from the last
** absolute entry (abslineinfo, sorted by pc) at or before pc, or from
** linedefined when there is none, then add the signed byte deltas of
** lineinfo for each later instruction up to pc. -1 without line info.
*/
int as_mw_func_line(walker *w, const protoinfo *pi, int pc, int *line) {
  int basepc = -1, baseline = pi->linedefined;
  if (pi->lineinfo == 0) {
    *line = -1;
    return 0;
  }
  if (pc < 0 || pc >= pi->sizelineinfo) return -1;
  if (pi->sizeabslineinfo > 0) {
    int lo = 0, hi = pi->sizeabslineinfo - 1, first_pc;
    uintptr_t a = pi->abslineinfo;
    if ((a & 3) != 0) return -1;
    if (as_mw_rd_int(w, a + w->lay->absline_pc, &first_pc) != 0) return -1;
    if (pc >= first_pc) {
      /* binary search: the largest i with abslineinfo[i].pc <= pc */
      while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2, mid_pc;
        if (as_mw_rd_int(w, a + (uintptr_t)mid * w->lay->size_AbsLineInfo +
                          w->lay->absline_pc, &mid_pc) != 0)
          return -1;
        if (mid_pc <= pc) lo = mid; else hi = mid - 1;
      }
      if (as_mw_rd_int(w, a + (uintptr_t)lo * w->lay->size_AbsLineInfo +
                        w->lay->absline_pc, &basepc) != 0 ||
          as_mw_rd_int(w, a + (uintptr_t)lo * w->lay->size_AbsLineInfo +
                        w->lay->absline_line, &baseline) != 0)
        return -1;
      if (basepc < 0 || basepc > pc) return -1;
    }
  }
  if (pc > basepc) {
    /* at most MAXIWTHABS (128) deltas follow an absolute entry, but a torn
    ** table could say otherwise: read in windows, bounded by pc */
    signed char buf[128];
    int next = basepc + 1;
    while (next <= pc) {
      int n = pc - next + 1, i;
      if (n > (int)sizeof buf) n = (int)sizeof buf;
      if (as_mw_rd(w, pi->lineinfo + (uintptr_t)next, (size_t)n, buf) != 0) return -1;
      for (i = 0; i < n; i++) {
        if ((unsigned char)buf[i] == w->lay->abslineinfo_mark) return -1;
        baseline += buf[i];
      }
      next += n;
    }
  }
  *line = baseline;
  return 0;
}

