/*
** memwalk.c: the memory-level frame walker of memwalk.h. No Lua API here:
** every Lua structure is read through the reader, at offsets from
** lualayout.h. The rules it follows (lua_getstack, lua_getinfo "Slnt",
** luaG_getfuncline, getobjname/funcnamefromcode, luaO_chunkid,
** luaL_traceback's search of package.loaded) are described where they are
** implemented; the code is ours, written from those descriptions.
*/
#define _GNU_SOURCE  /* process_vm_readv */
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>
#include "memwalk_internal.h"

static const char str_lua[] = "Lua";
static const char str_c[] = "C";
static const char str_main[] = "main";
static const char str_empty[] = "";
static const char str_metamethod[] = "metamethod";
static const char str_hook[] = "hook";

/* ------------------------------------------------------------ reading */

int as_mw_rd(walker *w, uintptr_t addr, size_t len, void *out) {
  if (addr == 0 || addr + len < addr || w->budget <= 0) return -1;
  w->budget--;
  return w->rd->read(w->rd->ctx, addr, len, out) == 0 ? 0 : -1;
}

int as_mw_rd_ptr(walker *w, uintptr_t addr, uintptr_t *out) {
  uint64_t v;
  if ((addr & 7) != 0 || as_mw_rd(w, addr, sizeof v, &v) != 0) return -1;
  *out = (uintptr_t)v;
  return 0;
}

int as_mw_rd_int(walker *w, uintptr_t addr, int *out) {
  int32_t v;
  if ((addr & 3) != 0 || as_mw_rd(w, addr, sizeof v, &v) != 0) return -1;
  *out = (int)v;
  return 0;
}

int as_mw_rd_byte(walker *w, uintptr_t addr, unsigned char *out) {
  return as_mw_rd(w, addr, 1, out);
}

/* A GC object's address must be non-NULL and 8-aligned (malloc'd). */
int as_mw_gc_ok(uintptr_t p) {
  return p != 0 && (p & 7) == 0;
}

/*
** Reads string `ts` (a TString: short when its tag is LUA_VSHRSTR, length
** in shrlen; long when LUA_VLNGSTR, length in u.lnglen) into out[size]
** from byte `from`, NUL-terminated. *len gets the full length. Returns 0, or
** -1 when it is not a readable string. Sets w->truncated when cut.
*/
int as_mw_read_string(walker *w, uintptr_t ts, size_t from, char *out,
                       size_t size, size_t *len) {
  const as_lualayout *lay = w->lay;
  unsigned char tag, shrlen;
  size_t n, take;
  if (size == 0 || !as_mw_gc_ok(ts) || as_mw_rd_byte(w, ts + lay->gc_tt, &tag) != 0)
    return -1;
  if (tag == lay->tag_shrstr) {
    if (as_mw_rd_byte(w, ts + lay->ts_shrlen, &shrlen) != 0) return -1;
    n = shrlen;
  } else if (tag == lay->tag_lngstr) {
    uint64_t lnglen;
    if (as_mw_rd(w, ts + lay->ts_lnglen, sizeof lnglen, &lnglen) != 0) return -1;
    if (lnglen > ((uint64_t)1 << 40)) return -1;
    n = (size_t)lnglen;
  } else
    return -1;
  if (len) *len = n;
  if (from > n) from = n;
  take = n - from;
  if (take > size - 1) {
    take = size - 1;
    w->truncated = 1;
  }
  if (take > 0 && as_mw_rd(w, ts + lay->ts_contents + from, take, out) != 0)
    return -1;
  out[take] = '\0';
  return 0;
}

void as_mw_set_name(objname *nm, const char *s) {
  size_t n = strlen(s);
  if (n >= sizeof nm->s) n = sizeof nm->s - 1;
  memcpy(nm->s, s, n);
  nm->s[n] = '\0';
  nm->set = 1;
}

/* Reads the TString `ts` as a name; an unreadable one counts as no name. */
void as_mw_set_name_ts(walker *w, objname *nm, uintptr_t ts) {
  if (as_mw_read_string(w, ts, 0, nm->s, sizeof nm->s, NULL) == 0)
    nm->set = 1;
  else
    nm->set = 0;
}

/* ------------------------------------------------------------ frames */

/* The parts of a CallInfo the walk reads. */
typedef struct ciinfo {
  uintptr_t addr, func, previous, savedpc;
  unsigned callstatus;
} ciinfo;

static int read_ci(walker *w, uintptr_t ci, ciinfo *out) {
  const as_lualayout *lay = w->lay;
  unsigned char buf[128];
  uint64_t v;
  uint16_t cs;
  if (!as_mw_gc_ok(ci) || lay->size_CallInfo > sizeof buf ||
      as_mw_rd(w, ci, lay->size_CallInfo, buf) != 0)
    return -1;
  out->addr = ci;
  memcpy(&v, buf + lay->ci_func, 8); out->func = (uintptr_t)v;
  memcpy(&v, buf + lay->ci_previous, 8); out->previous = (uintptr_t)v;
  memcpy(&v, buf + lay->ci_savedpc, 8); out->savedpc = (uintptr_t)v;
  memcpy(&cs, buf + lay->ci_callstatus, 2); out->callstatus = cs;
  return 0;
}

static int ci_is_lua(const walker *w, const ciinfo *ci) {
  return (ci->callstatus & w->lay->cist_C) == 0;
}

/* The called value of `ci`: tag and payload of the TValue at ci->func. */
static int ci_function(walker *w, const ciinfo *ci, unsigned char *tag,
                       uintptr_t *value) {
  if ((ci->func & 7) != 0 ||
      as_mw_rd_byte(w, ci->func + w->lay->tv_tt, tag) != 0 ||
      as_mw_rd_ptr(w, ci->func + w->lay->tv_value, value) != 0)
    return -1;
  return 0;
}

/* The Proto of a Lua ci, with currentpc (savedpc - code - 1). */
static int ci_proto(walker *w, const ciinfo *ci, protoinfo *pi, int *pc) {
  unsigned char tag;
  uintptr_t cl, p;
  if (ci_function(w, ci, &tag, &cl) != 0 ||
      tag != (w->lay->tag_lcl | w->lay->bit_collectable) || !as_mw_gc_ok(cl) ||
      as_mw_rd_ptr(w, cl + w->lay->lcl_p, &p) != 0 || as_mw_read_proto(w, p, pi) != 0)
    return -1;
  if (ci->savedpc < pi->code || ((ci->savedpc - pi->code) & 3) != 0)
    return -1;
  *pc = (int)((ci->savedpc - pi->code) / 4) - 1;
  if (*pc < 0 || *pc >= pi->sizecode) return -1;
  return 0;
}

/*
** luaO_chunkid from a source TString: "=..." literally (cut), "@file" (its
** end, after "...", when too long), else [string "first line..."].
*/
static int chunk_id(walker *w, uintptr_t source, char *out) {
  const size_t idsize = AS_MEMWALK_SOURCE_SIZE;
  char head[AS_MEMWALK_SOURCE_SIZE + 1];
  size_t srclen;
  int saved = w->truncated;
  if (source == 0) {  /* no source: "=?" */
    memcpy(out, "?", 2);
    return 0;
  }
  if (as_mw_read_string(w, source, 0, head, sizeof head, &srclen) != 0) return -1;
  w->truncated = saved;  /* cutting is what chunkid does: not a truncation */
  if (srclen == 0) head[0] = '\0';
  if (head[0] == '=') {
    size_t n = srclen - 1;
    if (n > idsize - 1) n = idsize - 1;
    memcpy(out, head + 1, n);
    out[n] = '\0';
  } else if (head[0] == '@') {
    if (srclen <= idsize) {
      memcpy(out, head + 1, srclen - 1);
      out[srclen - 1] = '\0';
    } else {
      /* "..." and the last idsize - 4 bytes */
      size_t keep = idsize - 3 - 1;
      memcpy(out, "...", 3);
      if (as_mw_read_string(w, source, srclen - keep, out + 3, keep + 1, NULL) != 0)
        return -1;
      w->truncated = saved;
    }
  } else {
    static const char pre[] = "[string \"", rets[] = "...", pos[] = "\"]";
    size_t room = idsize - (sizeof pre - 1 + sizeof rets - 1 + sizeof pos - 1)
                  - 1;
    size_t n = 0, o = 0, lim = srclen < sizeof head - 1 ? srclen : sizeof head - 1;
    const char *nl = NULL;
    for (n = 0; n < lim && head[n] != '\0'; n++)
      if (head[n] == '\n') { nl = head + n; break; }
    memcpy(out, pre, sizeof pre - 1);
    o = sizeof pre - 1;
    if (srclen < room && nl == NULL) {
      memcpy(out + o, head, srclen);
      o += srclen;
    } else {
      size_t len = nl != NULL ? (size_t)(nl - head) : srclen;
      if (len > room) len = room;
      memcpy(out + o, head, len);
      o += len;
      memcpy(out + o, rets, sizeof rets - 1);
      o += sizeof rets - 1;
    }
    memcpy(out + o, pos, sizeof pos);
  }
  return 0;
}

/*
** getfuncname: how `ci`'s caller `prev` named it. 5.4.0 - 5.4.3 test the
** finalizer flag on ci itself and only name from a Lua caller (which may be
** running a hook); 5.4.4+ test hook and finalizer flags on the caller.
*/
static const char *name_by_flags(walker *w, unsigned cs, unsigned prev_cs,
                                 objname *nm, int *from_code) {
  const as_lualayout *lay = w->lay;
  *from_code = 0;
  if (!lay->finalizer_on_caller && (cs & lay->cist_fin)) {
    as_mw_set_name(nm, "__gc");
    return str_metamethod;
  }
  if (cs & lay->cist_tail) return NULL;
  if (!lay->finalizer_on_caller && (prev_cs & lay->cist_C)) return NULL;
  if (prev_cs & lay->cist_hooked) {
    as_mw_set_name(nm, "?");
    return str_hook;
  }
  if (lay->finalizer_on_caller && (prev_cs & lay->cist_fin)) {
    as_mw_set_name(nm, "__gc");
    return str_metamethod;
  }
  if (prev_cs & lay->cist_C) return NULL;
  *from_code = 1;   /* the caller's calling instruction names it */
  return NULL;
}

static const char *frame_name(walker *w, const ciinfo *ci, const ciinfo *prev,
                              objname *nm) {
  protoinfo pi;
  int pc, from_code;
  const char *namewhat = name_by_flags(w, ci->callstatus, prev->callstatus, nm,
                                       &from_code);
  if (!from_code) return namewhat;
  if (ci_proto(w, prev, &pi, &pc) != 0) return NULL;
  return as_mw_name_from_code(w, &pi, pc, nm);
}

/* Fills `f` from `ci` (and its caller `prev`, for the name). */
static void fill_frame(walker *w, const ciinfo *ci, const ciinfo *prev,
                       as_memwalk_frame *f) {
  const as_lualayout *lay = w->lay;
  unsigned char tag;
  uintptr_t value;
  objname nm;
  const char *namewhat;
  int saved = w->truncated;
  w->truncated = 0;
  w->budget = AS_MEMWALK_FRAME_READS;
  memset(f, 0, sizeof *f);
  f->ci = ci->addr;
  f->what = str_c;
  f->namewhat = str_empty;
  f->currentline = f->linedefined = f->lastlinedefined = -1;
  f->istailcall = (ci->callstatus & lay->cist_tail) != 0;
  memcpy(f->source, "?", 2);
  f->status = AS_MEMWALK_FAILED;
  if (ci_function(w, ci, &tag, &value) != 0) goto done;
  f->func = value;
  f->func_tag = tag;
  if (tag == (lay->tag_lcl | lay->bit_collectable)) {
    protoinfo pi;
    uintptr_t p;
    if (!as_mw_gc_ok(value) || as_mw_rd_ptr(w, value + lay->lcl_p, &p) != 0 ||
        as_mw_read_proto(w, p, &pi) != 0 || chunk_id(w, pi.source, f->source) != 0)
      goto done;
    f->linedefined = pi.linedefined;
    f->lastlinedefined = pi.lastlinedefined;
    f->what = pi.linedefined == 0 ? str_main : str_lua;
    f->source_ts = pi.source;
    if (ci_is_lua(w, ci)) {
      int pc;
      if (ci_proto(w, ci, &pi, &pc) != 0 ||
          as_mw_func_line(w, &pi, pc, &f->currentline) != 0)
        goto done;
    }
  } else if (tag == lay->tag_lcf ||
             tag == (lay->tag_ccl | lay->bit_collectable)) {
    memcpy(f->source, "[C]", 4);
    if (tag != lay->tag_lcf &&
        (!as_mw_gc_ok(value) || as_mw_rd_ptr(w, value + lay->ccl_f, &value) != 0))
      goto done;
    f->cfunc = value;
  } else
    goto done;
  nm.set = 0;
  namewhat = frame_name(w, ci, prev, &nm);
  if (namewhat != NULL && nm.set) {
    f->namewhat = namewhat;
    memcpy(f->name, nm.s, sizeof f->name);
  }
  f->status = w->truncated ? AS_MEMWALK_TRUNCATED : AS_MEMWALK_COMPLETE;
done:
  w->truncated = saved || f->status != AS_MEMWALK_COMPLETE;
}

int as_mw_init_walker(walker *w, const as_lualayout *lay,
                       const as_memwalk_reader *rdr, uintptr_t L) {
  w->lay = lay;
  w->rd = rdr;
  w->L = L;
  w->truncated = 0;
  w->budget = AS_MEMWALK_FRAME_READS;
  return (lay != NULL && lay->lua_idsize == AS_MEMWALK_SOURCE_SIZE &&
          rdr != NULL && rdr->read != NULL && as_mw_gc_ok(L)) ? 0 : -1;
}

as_memwalk_status as_memwalk_frames(const as_lualayout *lay,
                                    const as_memwalk_reader *rdr, uintptr_t L,
                                    int level, as_memwalk_frame *out, int max,
                                    int *count) {
  walker w;
  uintptr_t ci_addr, base;
  ciinfo ci, prev;
  long steps = 0;
  int n = 0, any_cut = 0;
  *count = 0;
  if (as_mw_init_walker(&w, lay, rdr, L) != 0 || level < 0 || max < 0)
    return AS_MEMWALK_FAILED;
  base = L + lay->L_base_ci;
  if (as_mw_rd_ptr(&w, L + lay->L_ci, &ci_addr) != 0) return AS_MEMWALK_FAILED;
  if (ci_addr == base) return AS_MEMWALK_COMPLETE;  /* no frames */
  if (read_ci(&w, ci_addr, &ci) != 0) return AS_MEMWALK_FAILED;
  for (;;) {
    if (++steps > AS_MEMWALK_MAX_CALLINFO) return AS_MEMWALK_FAILED;
    w.budget = 8;
    if (ci.previous == 0 || read_ci(&w, ci.previous, &prev) != 0)
      return AS_MEMWALK_FAILED;
    if (level > 0)
      level--;
    else {
      if (n == max) {
        *count = n;
        return AS_MEMWALK_TRUNCATED;
      }
      w.truncated = 0;
      fill_frame(&w, &ci, &prev, &out[n]);
      if (out[n].status == AS_MEMWALK_FAILED) {
        *count = n + 1;
        return AS_MEMWALK_FAILED;
      }
      any_cut |= out[n].status == AS_MEMWALK_TRUNCATED;
      *count = ++n;
    }
    if (prev.addr == base) break;
    ci = prev;
  }
  return any_cut ? AS_MEMWALK_TRUNCATED : AS_MEMWALK_COMPLETE;
}

int as_memwalk_closure(const as_lualayout *lay, const as_memwalk_reader *rdr,
                       uintptr_t closure, as_memwalk_frame *f) {
  walker w;
  protoinfo pi;
  uintptr_t p;
  unsigned char tag;
  memset(f, 0, sizeof *f);
  f->what = str_lua;
  f->namewhat = str_empty;
  f->currentline = f->linedefined = f->lastlinedefined = -1;
  f->status = AS_MEMWALK_FAILED;
  memcpy(f->source, "?", 2);
  if (as_mw_init_walker(&w, lay, rdr, closure) != 0 ||
      as_mw_rd_byte(&w, closure + lay->gc_tt, &tag) != 0 || tag != lay->tag_lcl ||
      as_mw_rd_ptr(&w, closure + lay->lcl_p, &p) != 0 || as_mw_read_proto(&w, p, &pi) != 0 ||
      chunk_id(&w, pi.source, f->source) != 0)
    return -1;
  f->func = closure;
  f->func_tag = (unsigned char)(lay->tag_lcl | lay->bit_collectable);
  f->source_ts = pi.source;
  f->linedefined = pi.linedefined;
  f->lastlinedefined = pi.lastlinedefined;
  f->what = pi.linedefined == 0 ? str_main : str_lua;
  f->status = AS_MEMWALK_COMPLETE;
  return 0;
}

int as_memwalk_closure_line(const as_lualayout *lay, const as_memwalk_reader *rdr,
                            uintptr_t closure, int pc) {
  walker w;
  protoinfo pi;
  uintptr_t p;
  unsigned char tag;
  int line;
  if (as_mw_init_walker(&w, lay, rdr, closure) != 0 ||
      as_mw_rd_byte(&w, closure + lay->gc_tt, &tag) != 0 || tag != lay->tag_lcl ||
      as_mw_rd_ptr(&w, closure + lay->lcl_p, &p) != 0 || as_mw_read_proto(&w, p, &pi) != 0 ||
      pc < 0 || pc >= pi.sizecode || as_mw_func_line(&w, &pi, pc, &line) != 0)
    return -1;
  return line;
}

int as_memwalk_upvalue_name(const as_lualayout *lay,
                            const as_memwalk_reader *rdr, uintptr_t holder,
                            uintptr_t fn, char *out, size_t size) {
  walker w;
  protoinfo pi;
  uintptr_t p;
  unsigned char tag, n;
  int i;
  if (size == 0 || as_mw_init_walker(&w, lay, rdr, holder) != 0 ||
      as_mw_rd_byte(&w, holder + lay->gc_tt, &tag) != 0 || tag != lay->tag_lcl ||
      as_mw_rd_byte(&w, holder + lay->lcl_nupvalues, &n) != 0 ||
      as_mw_rd_ptr(&w, holder + lay->lcl_p, &p) != 0 || as_mw_read_proto(&w, p, &pi) != 0)
    return -1;
  for (i = 0; i < n && i < pi.sizeupvalues; i++) {
    uintptr_t uv, v, value, name;
    unsigned char vtag;
    if (as_mw_rd_ptr(&w, holder + lay->lcl_upvals + (uintptr_t)i * 8, &uv) != 0 ||
        !as_mw_gc_ok(uv) || as_mw_rd_ptr(&w, uv + lay->upval_v, &v) != 0 ||
        (v & 7) != 0 || as_mw_rd_byte(&w, v + lay->tv_tt, &vtag) != 0 ||
        as_mw_rd_ptr(&w, v + lay->tv_value, &value) != 0)
      return -1;
    if (vtag != (lay->tag_lcl | lay->bit_collectable) || value != fn) continue;
    if (as_mw_rd_ptr(&w, pi.upvalues + (uintptr_t)i * lay->size_Upvaldesc +
                   lay->upvaldesc_name, &name) != 0)
      return -1;
    if (name == 0) {   /* stripped: lua_getupvalue's "(no name)" */
      static const char noname[] = "(no name)";
      size_t k = sizeof noname <= size ? sizeof noname : size;
      memcpy(out, noname, k);
      out[k - 1] = '\0';
      return 1;
    }
    if (as_mw_read_string(&w, name, 0, out, size, NULL) != 0) return -1;
    if (out[0] != '\0') return 1;
  }
  return 0;
}

int as_memwalk_string_has_prefix(const as_lualayout *lay,
                                 const as_memwalk_reader *rdr, uintptr_t ts,
                                 const char *prefix, size_t len) {
  walker w;
  char head[AS_MEMWALK_PREFIX_MAX + 1];
  size_t n;
  if (len > AS_MEMWALK_PREFIX_MAX || as_mw_init_walker(&w, lay, rdr, ts) != 0 ||
      as_mw_read_string(&w, ts, 0, head, len + 1, &n) != 0)
    return -1;
  return n >= len && memcmp(head, prefix, len) == 0;
}

int as_memwalk_depth(const as_lualayout *lay, const as_memwalk_reader *rdr,
                     uintptr_t L, int limit) {
  walker w;
  uintptr_t ci, base;
  int n = 0;
  if (as_mw_init_walker(&w, lay, rdr, L) != 0) return -1;
  base = L + lay->L_base_ci;
  if (as_mw_rd_ptr(&w, L + lay->L_ci, &ci) != 0) return -1;
  while (ci != base && n < limit) {
    w.budget = 8;
    if (n >= AS_MEMWALK_MAX_CALLINFO || !as_mw_gc_ok(ci) ||
        as_mw_rd_ptr(&w, ci + lay->ci_previous, &ci) != 0)
      return -1;
    n++;
  }
  return n;
}

/* ------------------------------------------------- frames known raw */

/* currentpc of a Lua frame from its saved pc (as ci_proto), or -1. */
static int raw_pc(const protoinfo *pi, uintptr_t savedpc) {
  int pc;
  if (savedpc < pi->code || ((savedpc - pi->code) & 3) != 0) return -1;
  pc = (int)((savedpc - pi->code) / 4) - 1;
  return pc >= 0 && pc < pi->sizecode ? pc : -1;
}

as_memwalk_status as_memwalk_raw_frame(const as_lualayout *lay,
                                       const as_memwalk_reader *rdr, uintptr_t L,
                                       const as_memwalk_raw *raw,
                                       const as_memwalk_raw *caller,
                                       as_memwalk_frame *f) {
  walker w;
  objname nm;
  const char *namewhat;
  unsigned caller_cs;
  int from_code;
  memset(f, 0, sizeof *f);
  f->what = str_c;
  f->namewhat = str_empty;
  f->currentline = f->linedefined = f->lastlinedefined = -1;
  memcpy(f->source, "?", 2);
  f->status = AS_MEMWALK_FAILED;
  if (as_mw_init_walker(&w, lay, rdr, L) != 0) return f->status;
  f->istailcall = (raw->callstatus & lay->cist_tail) != 0;
  f->func = raw->func;
  f->func_tag = raw->func_tag;
  if (raw->func_tag == (lay->tag_lcl | lay->bit_collectable)) {
    protoinfo pi;
    if (as_mw_read_proto(&w, raw->proto, &pi) != 0 ||
        chunk_id(&w, pi.source, f->source) != 0)
      return f->status;
    f->linedefined = pi.linedefined;
    f->lastlinedefined = pi.lastlinedefined;
    f->what = pi.linedefined == 0 ? str_main : str_lua;
    f->source_ts = pi.source;
    if ((raw->callstatus & lay->cist_C) == 0) {
      int pc = raw_pc(&pi, raw->savedpc);
      if (raw->savedpc == pi.code)   /* just entered: pc -1, Lua says linedefined */
        f->currentline = pi.lineinfo != 0 ? pi.linedefined : -1;
      else if (pc < 0 || as_mw_func_line(&w, &pi, pc, &f->currentline) != 0)
        return f->status;
    }
  } else if (raw->func_tag == lay->tag_lcf ||
             raw->func_tag == (lay->tag_ccl | lay->bit_collectable)) {
    memcpy(f->source, "[C]", 4);
    f->cfunc = raw->func_tag == lay->tag_lcf ? raw->func : raw->proto;
  } else {
    return f->status;
  }
  /* a coroutine's bottom frame is called from base_ci, a C frame */
  caller_cs = caller != NULL ? caller->callstatus : lay->cist_C;
  nm.set = 0;
  namewhat = name_by_flags(&w, raw->callstatus, caller_cs, &nm, &from_code);
  if (from_code && caller != NULL &&
      caller->func_tag == (lay->tag_lcl | lay->bit_collectable)) {
    protoinfo pi;
    int pc;
    if (as_mw_read_proto(&w, caller->proto, &pi) == 0 &&
        (pc = raw_pc(&pi, caller->savedpc)) >= 0)
      namewhat = as_mw_name_from_code(&w, &pi, pc, &nm);
  }
  if (namewhat != NULL && nm.set) {
    f->namewhat = namewhat;
    memcpy(f->name, nm.s, sizeof f->name);
  }
  f->status = w.truncated ? AS_MEMWALK_TRUNCATED : AS_MEMWALK_COMPLETE;
  return f->status;
}

int as_memwalk_proto_lines(const as_lualayout *lay, const as_memwalk_reader *rdr,
                           uintptr_t L, uintptr_t proto, int *lines, int max,
                           uintptr_t *code) {
  walker w;
  protoinfo pi;
  signed char buf[256];
  int pc, line, abs_i = 0, n;
  if (as_mw_init_walker(&w, lay, rdr, L) != 0 || as_mw_read_proto(&w, proto, &pi) != 0)
    return -1;
  *code = pi.code;
  n = pi.sizecode < max ? pi.sizecode : max;
  if (pi.lineinfo == 0) {   /* stripped: no lines, as lua_getinfo */
    for (pc = 0; pc < n; pc++) lines[pc] = -1;
    return n;
  }
  if (pi.sizelineinfo < n) return -1;
  line = pi.linedefined;
  /* luaG_getfuncline for every pc at once: deltas from linedefined; an
  ** instruction marked ABSLINEINFO has its line in the next abslineinfo
  ** entry (they are in pc order, one per marked instruction) */
  for (pc = 0; pc < n; pc++) {
    int k = pc % (int)sizeof buf;
    if (k == 0) {
      int len = n - pc < (int)sizeof buf ? n - pc : (int)sizeof buf;
      w.budget = 8;
      if (as_mw_rd(&w, pi.lineinfo + (uintptr_t)pc, (size_t)len, buf) != 0) return -1;
    }
    if ((unsigned char)buf[k] == lay->abslineinfo_mark) {
      int apc = -1;
      w.budget = 8;
      while (abs_i < pi.sizeabslineinfo && apc < pc) {
        uintptr_t a = pi.abslineinfo + (uintptr_t)abs_i * lay->size_AbsLineInfo;
        if ((pi.abslineinfo & 3) != 0 || as_mw_rd_int(&w, a + lay->absline_pc, &apc) != 0 ||
            as_mw_rd_int(&w, a + lay->absline_line, &line) != 0)
          return -1;
        abs_i++;
      }
      if (apc != pc) return -1;
    } else {
      line += buf[k];
    }
    lines[pc] = line;
  }
  return n;
}

/* ------------------------------------------------------------ readers */

int as_memwalk_read_memcpy(void *ctx, uintptr_t address, size_t length,
                           void *out) {
  (void)ctx;
  if (address == 0) return -1;
  memcpy(out, (const void *)address, length);
  return 0;
}

int as_memwalk_read_vm(void *ctx, uintptr_t address, size_t length, void *out) {
  struct iovec local, remote;
  ssize_t got;
  local.iov_base = out;
  local.iov_len = length;
  remote.iov_base = (void *)address;
  remote.iov_len = length;
  got = process_vm_readv(*(const pid_t *)ctx, &local, 1, &remote, 1, 0);
  return (got >= 0 && (size_t)got == length) ? 0 : -1;
}

int as_memwalk_reader_self(as_memwalk_reader *rdr, pid_t *pid) {
  uintptr_t probe = (uintptr_t)&probe, copy = 0;
  *pid = getpid();
  rdr->ctx = pid;
  rdr->read = as_memwalk_read_vm;
  if (as_memwalk_read_vm(pid, (uintptr_t)&probe, sizeof probe, &copy) == 0 &&
      copy == probe)
    return 1;
  rdr->ctx = NULL;
  rdr->read = as_memwalk_read_memcpy;
  return 0;
}
