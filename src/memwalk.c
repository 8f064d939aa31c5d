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

static const char str_lua[] = "Lua";
static const char str_c[] = "C";
static const char str_main[] = "main";
static const char str_empty[] = "";
static const char str_local[] = "local";
static const char str_upvalue[] = "upvalue";
static const char str_constant[] = "constant";
static const char str_global[] = "global";
static const char str_field[] = "field";
static const char str_method[] = "method";
static const char str_metamethod[] = "metamethod";
static const char str_foriter[] = "for iterator";
static const char str_hook[] = "hook";

/* ------------------------------------------------------------ reading */

static int rd(walker *w, uintptr_t addr, size_t len, void *out) {
  if (addr == 0 || addr + len < addr || w->budget <= 0) return -1;
  w->budget--;
  return w->rd->read(w->rd->ctx, addr, len, out) == 0 ? 0 : -1;
}

static int rd_ptr(walker *w, uintptr_t addr, uintptr_t *out) {
  uint64_t v;
  if ((addr & 7) != 0 || rd(w, addr, sizeof v, &v) != 0) return -1;
  *out = (uintptr_t)v;
  return 0;
}

static int rd_int(walker *w, uintptr_t addr, int *out) {
  int32_t v;
  if ((addr & 3) != 0 || rd(w, addr, sizeof v, &v) != 0) return -1;
  *out = (int)v;
  return 0;
}

static int rd_byte(walker *w, uintptr_t addr, unsigned char *out) {
  return rd(w, addr, 1, out);
}

/* A GC object's address must be non-NULL and 8-aligned (malloc'd). */
static int gc_ok(uintptr_t p) {
  return p != 0 && (p & 7) == 0;
}

/*
** Reads string `ts` (a TString: short when its tag is LUA_VSHRSTR, length
** in shrlen; long when LUA_VLNGSTR, length in u.lnglen) into out[size]
** from byte `from`, NUL-terminated. *len gets the full length. Returns 0, or
** -1 when it is not a readable string. Sets w->truncated when cut.
*/
static int read_string(walker *w, uintptr_t ts, size_t from, char *out,
                       size_t size, size_t *len) {
  const as_lualayout *lay = w->lay;
  unsigned char tag, shrlen;
  size_t n, take;
  if (size == 0 || !gc_ok(ts) || rd_byte(w, ts + lay->gc_tt, &tag) != 0)
    return -1;
  if (tag == lay->tag_shrstr) {
    if (rd_byte(w, ts + lay->ts_shrlen, &shrlen) != 0) return -1;
    n = shrlen;
  } else if (tag == lay->tag_lngstr) {
    uint64_t lnglen;
    if (rd(w, ts + lay->ts_lnglen, sizeof lnglen, &lnglen) != 0) return -1;
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
  if (take > 0 && rd(w, ts + lay->ts_contents + from, take, out) != 0)
    return -1;
  out[take] = '\0';
  return 0;
}

static void set_name(objname *nm, const char *s) {
  size_t n = strlen(s);
  if (n >= sizeof nm->s) n = sizeof nm->s - 1;
  memcpy(nm->s, s, n);
  nm->s[n] = '\0';
  nm->set = 1;
}

/* Reads the TString `ts` as a name; an unreadable one counts as no name. */
static void set_name_ts(walker *w, objname *nm, uintptr_t ts) {
  if (read_string(w, ts, 0, nm->s, sizeof nm->s, NULL) == 0)
    nm->set = 1;
  else
    nm->set = 0;
}

/* ------------------------------------------------------------ Proto */

/* Field `off` of a struct image `buf` read in one piece. */
static int img_int(const unsigned char *buf, unsigned off) {
  int32_t v;
  memcpy(&v, buf + off, sizeof v);
  return (int)v;
}

static uintptr_t img_ptr(const unsigned char *buf, unsigned off) {
  uint64_t v;
  memcpy(&v, buf + off, sizeof v);
  return (uintptr_t)v;
}

/* Reads the Proto at `p` in one read (every field used lies before
** p_source + 8) and checks its sizes. */
static int read_proto(walker *w, uintptr_t p, protoinfo *pi) {
  const as_lualayout *lay = w->lay;
  unsigned char buf[192];
  size_t len = (size_t)lay->p_source + 8;
  if (!gc_ok(p) || len > sizeof buf || rd(w, p, len, buf) != 0) return -1;
  pi->addr = p;
  pi->window_start = 0;
  pi->window_len = 0;
  pi->sizeupvalues = img_int(buf, lay->p_sizeupvalues);
  pi->sizek = img_int(buf, lay->p_sizek);
  pi->sizecode = img_int(buf, lay->p_sizecode);
  pi->sizelineinfo = img_int(buf, lay->p_sizelineinfo);
  pi->sizelocvars = img_int(buf, lay->p_sizelocvars);
  pi->sizeabslineinfo = img_int(buf, lay->p_sizeabslineinfo);
  pi->linedefined = img_int(buf, lay->p_linedefined);
  pi->lastlinedefined = img_int(buf, lay->p_lastlinedefined);
  pi->k = img_ptr(buf, lay->p_k);
  pi->code = img_ptr(buf, lay->p_code);
  pi->upvalues = img_ptr(buf, lay->p_upvalues);
  pi->lineinfo = img_ptr(buf, lay->p_lineinfo);
  pi->abslineinfo = img_ptr(buf, lay->p_abslineinfo);
  pi->locvars = img_ptr(buf, lay->p_locvars);
  pi->source = img_ptr(buf, lay->p_source);
  if (pi->sizecode < 0 || pi->sizecode > AS_MEMWALK_MAX_CODE ||
      pi->sizeupvalues < 0 || pi->sizeupvalues > 255 ||
      pi->sizek < 0 || pi->sizelineinfo < 0 ||
      pi->sizelineinfo > AS_MEMWALK_MAX_CODE || pi->sizelocvars < 0 ||
      pi->sizeabslineinfo < 0 || pi->sizeabslineinfo > AS_MEMWALK_MAX_CODE)
    return -1;
  return 0;
}

/* Instruction `pc` of the Proto, through the window cache. */
static int code_at(walker *w, protoinfo *pi, int pc, uint32_t *out) {
  if (pc < 0 || pc >= pi->sizecode || (pi->code & 3) != 0) return -1;
  if (pc < pi->window_start || pc >= pi->window_start + pi->window_len) {
    int n = pi->sizecode - pc;
    if (n > CODE_WINDOW) n = CODE_WINDOW;
    pi->window_len = 0;
    if (rd(w, pi->code + (uintptr_t)pc * 4, (size_t)n * 4, pi->window) != 0)
      return -1;
    pi->window_start = pc;
    pi->window_len = n;
  }
  *out = pi->window[pc - pi->window_start];
  return 0;
}

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

/*
** The line of instruction `pc` (luaG_getfuncline): start from the last
** absolute entry (abslineinfo, sorted by pc) at or before pc, or from
** linedefined when there is none, then add the signed byte deltas of
** lineinfo for each later instruction up to pc. -1 without line info.
*/
static int func_line(walker *w, const protoinfo *pi, int pc, int *line) {
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
    if (rd_int(w, a + w->lay->absline_pc, &first_pc) != 0) return -1;
    if (pc >= first_pc) {
      /* binary search: the largest i with abslineinfo[i].pc <= pc */
      while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2, mid_pc;
        if (rd_int(w, a + (uintptr_t)mid * w->lay->size_AbsLineInfo +
                          w->lay->absline_pc, &mid_pc) != 0)
          return -1;
        if (mid_pc <= pc) lo = mid; else hi = mid - 1;
      }
      if (rd_int(w, a + (uintptr_t)lo * w->lay->size_AbsLineInfo +
                        w->lay->absline_pc, &basepc) != 0 ||
          rd_int(w, a + (uintptr_t)lo * w->lay->size_AbsLineInfo +
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
      if (rd(w, pi->lineinfo + (uintptr_t)next, (size_t)n, buf) != 0) return -1;
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

/* ------------------------------------------------------------ names */

/* luaF_getlocalname: the `local_number`-th local active at `pc`. */
static int local_name(walker *w, const protoinfo *pi, int local_number, int pc,
                      objname *nm) {
  int i;
  const as_lualayout *lay = w->lay;
  nm->set = 0;
  if (pi->locvars == 0 || (pi->locvars & 7) != 0) return 0;
  for (i = 0; i < pi->sizelocvars && i < AS_MEMWALK_MAX_CODE; i++) {
    uintptr_t lv = pi->locvars + (uintptr_t)i * lay->size_LocVar;
    int startpc, endpc;
    if (rd_int(w, lv + lay->locvar_startpc, &startpc) != 0) return -1;
    if (startpc > pc) break;
    if (rd_int(w, lv + lay->locvar_endpc, &endpc) != 0) return -1;
    if (pc < endpc) {
      local_number--;
      if (local_number == 0) {
        uintptr_t vn;
        if (rd_ptr(w, lv + lay->locvar_varname, &vn) != 0) return -1;
        set_name_ts(w, nm, vn);
        return nm->set;
      }
    }
  }
  return 0;
}

/* upvalname: "?" when the upvalue has no name. */
static void upval_name(walker *w, const protoinfo *pi, int uv, objname *nm) {
  uintptr_t name = 0;
  if (uv < 0 || uv >= pi->sizeupvalues || pi->upvalues == 0 ||
      rd_ptr(w, pi->upvalues + (uintptr_t)uv * w->lay->size_Upvaldesc +
                    w->lay->upvaldesc_name, &name) != 0 || name == 0) {
    set_name(nm, "?");
    return;
  }
  set_name_ts(w, nm, name);
  if (!nm->set) set_name(nm, "?");
}

/* Constant `index` of the Proto when it is a string: 1 and its text in nm;
** else 0 (nm untouched). */
static int const_string(walker *w, const protoinfo *pi, int index,
                        objname *nm) {
  uintptr_t kv, ts;
  unsigned char tt;
  if (index < 0 || index >= pi->sizek || pi->k == 0) return 0;
  kv = pi->k + (uintptr_t)index * w->lay->size_TValue;
  if (rd_byte(w, kv + w->lay->tv_tt, &tt) != 0) return 0;
  if ((tt & ~w->lay->bit_collectable) != w->lay->tag_shrstr &&
      (tt & ~w->lay->bit_collectable) != w->lay->tag_lngstr)
    return 0;
  if (rd_ptr(w, kv + w->lay->tv_value, &ts) != 0) return 0;
  set_name_ts(w, nm, ts);
  return nm->set;
}

static int opmode(walker *w, unsigned op, unsigned bit) {
  return op < w->lay->num_opcodes && op < AS_LUALAYOUT_MAX_OPCODES &&
         (w->lay->opmodes[op] & bit) != 0;
}

/*
** findsetreg: the last instruction before `lastpc` that changed register
** `reg`, or -1 (also when it may have been skipped by a jump). An
** instruction in MM mode at lastpc means the one before it did not
** complete, so it is not counted.
*/
static int find_set_reg(walker *w, protoinfo *pi, int lastpc, int reg) {
  const as_lualayout *lay = w->lay;
  int pc, setreg = -1, jmptarget = 0;
  uint32_t i;
  if (code_at(w, pi, lastpc, &i) != 0) return -1;
  if (opmode(w, I_OP(i), AS_LUALAYOUT_OPMODE_MM)) lastpc--;
  for (pc = 0; pc < lastpc; pc++) {
    unsigned op;
    int a, change;
    if (code_at(w, pi, pc, &i) != 0) return -1;
    op = I_OP(i);
    a = I_A(i);
    if (op == lay->op_loadnil)
      change = (a <= reg && reg <= a + I_B(i));
    else if (op == lay->op_tforcall)
      change = (reg >= a + 2);
    else if (op == lay->op_call || op == lay->op_tailcall)
      change = (reg >= a);
    else if (op == lay->op_jmp) {
      int dest = pc + 1 + I_SJ(i);
      if (dest <= lastpc && dest > jmptarget) jmptarget = dest;
      change = 0;
    } else
      change = opmode(w, op, AS_LUALAYOUT_OPMODE_A) && reg == a;
    if (change) setreg = (pc < jmptarget) ? -1 : pc;
  }
  return setreg;
}

static const char *getobjname_old(walker *w, protoinfo *pi, int lastpc,
                                  int reg, objname *nm, int depth);

/* gxf / isEnv: "global" when the indexed table is the variable _ENV. */
static const char *env_kind(walker *w, protoinfo *pi, int pc, uint32_t i,
                            int isup, int depth);

/*
** getobjname of 5.4.0 - 5.4.6: a local; else what the last instruction
** that set the register loaded into it.
*/
static const char *getobjname_old(walker *w, protoinfo *pi, int lastpc,
                                  int reg, objname *nm, int depth) {
  const as_lualayout *lay = w->lay;
  int pc;
  uint32_t i;
  unsigned op;
  if (depth > AS_MEMWALK_MAX_NAME_DEPTH) { nm->set = 0; return NULL; }
  if (local_name(w, pi, reg + 1, lastpc, nm) == 1) return str_local;
  nm->set = 0;
  pc = find_set_reg(w, pi, lastpc, reg);
  if (pc == -1 || code_at(w, pi, pc, &i) != 0) return NULL;
  op = I_OP(i);
  if (op == lay->op_move) {
    if (I_B(i) < I_A(i))
      return getobjname_old(w, pi, pc, I_B(i), nm, depth + 1);
  } else if (op == lay->op_gettabup) {
    if (!const_string(w, pi, I_C(i), nm)) set_name(nm, "?");
    return env_kind(w, pi, pc, i, 1, depth);
  } else if (op == lay->op_gettable) {
    objname key;
    const char *what = getobjname_old(w, pi, pc, I_C(i), &key, depth + 1);
    if (what != NULL && what[0] == 'c') *nm = key; else set_name(nm, "?");
    return env_kind(w, pi, pc, i, 0, depth);
  } else if (op == lay->op_geti) {
    set_name(nm, "integer index");
    return str_field;
  } else if (op == lay->op_getfield) {
    if (!const_string(w, pi, I_C(i), nm)) set_name(nm, "?");
    return env_kind(w, pi, pc, i, 0, depth);
  } else if (op == lay->op_getupval) {
    upval_name(w, pi, I_B(i), nm);
    return str_upvalue;
  } else if (op == lay->op_loadk || op == lay->op_loadkx) {
    int b;
    if (op == lay->op_loadk)
      b = I_BX(i);
    else {
      uint32_t extra;
      if (code_at(w, pi, pc + 1, &extra) != 0) return NULL;
      b = I_AX(extra);
    }
    if (const_string(w, pi, b, nm)) return str_constant;
  } else if (op == lay->op_self) {
    if (I_K(i)) {
      if (!const_string(w, pi, I_C(i), nm)) set_name(nm, "?");
    } else {
      objname key;
      const char *what = getobjname_old(w, pi, pc, I_C(i), &key, depth + 1);
      if (what != NULL && what[0] == 'c') *nm = key; else set_name(nm, "?");
    }
    return str_method;
  }
  return NULL;
}

/*
** basicgetobjname of 5.4.7+: locals, upvalues, string constants and moves
** between them; *ppc becomes the instruction that set the register.
*/
static const char *basic_objname(walker *w, protoinfo *pi, int *ppc, int reg,
                                 objname *nm, int depth) {
  const as_lualayout *lay = w->lay;
  int pc = *ppc;
  uint32_t i;
  unsigned op;
  if (depth > AS_MEMWALK_MAX_NAME_DEPTH) { nm->set = 0; return NULL; }
  if (local_name(w, pi, reg + 1, pc, nm) == 1) return str_local;
  nm->set = 0;
  *ppc = pc = find_set_reg(w, pi, pc, reg);
  if (pc == -1 || code_at(w, pi, pc, &i) != 0) return NULL;
  op = I_OP(i);
  if (op == lay->op_move) {
    if (I_B(i) < I_A(i)) return basic_objname(w, pi, ppc, I_B(i), nm, depth + 1);
  } else if (op == lay->op_getupval) {
    upval_name(w, pi, I_B(i), nm);
    return str_upvalue;
  } else if (op == lay->op_loadk || op == lay->op_loadkx) {
    int b;
    if (op == lay->op_loadk)
      b = I_BX(i);
    else {
      uint32_t extra;
      if (code_at(w, pi, pc + 1, &extra) != 0) return NULL;
      b = I_AX(extra);
    }
    if (const_string(w, pi, b, nm)) return str_constant;
    set_name(nm, "?");
  }
  return NULL;
}

/* rname of 5.4.7+: a register's name only when it holds a string constant. */
static void reg_const_name(walker *w, protoinfo *pi, int pc, int c,
                           objname *nm, int depth) {
  const char *what = basic_objname(w, pi, &pc, c, nm, depth + 1);
  if (!(what != NULL && what[0] == 'c')) set_name(nm, "?");
}

static const char *env_kind(walker *w, protoinfo *pi, int pc, uint32_t i,
                            int isup, int depth) {
  objname t;
  int t_reg = I_B(i);
  t.set = 0;
  if (isup)
    upval_name(w, pi, t_reg, &t);
  else if (w->lay->naming == AS_NAMING_547) {
    const char *what = basic_objname(w, pi, &pc, t_reg, &t, depth + 1);
    if (w->lay->env_needs_variable && what != str_local && what != str_upvalue)
      t.set = 0;
  } else
    getobjname_old(w, pi, pc, t_reg, &t, depth + 1);
  return (t.set && strcmp(t.s, "_ENV") == 0) ? str_global : str_field;
}

/* getobjname of 5.4.7+: the basic part, then table accesses. */
static const char *getobjname_new(walker *w, protoinfo *pi, int lastpc,
                                  int reg, objname *nm) {
  const as_lualayout *lay = w->lay;
  const char *kind = basic_objname(w, pi, &lastpc, reg, nm, 0);
  uint32_t i;
  unsigned op;
  if (kind != NULL) return kind;
  if (lastpc == -1 || code_at(w, pi, lastpc, &i) != 0) return NULL;
  op = I_OP(i);
  if (op == lay->op_gettabup) {
    if (!const_string(w, pi, I_C(i), nm)) set_name(nm, "?");
    return env_kind(w, pi, lastpc, i, 1, 0);
  } else if (op == lay->op_gettable) {
    reg_const_name(w, pi, lastpc, I_C(i), nm, 0);
    return env_kind(w, pi, lastpc, i, 0, 0);
  } else if (op == lay->op_geti) {
    set_name(nm, "integer index");
    return str_field;
  } else if (op == lay->op_getfield) {
    if (!const_string(w, pi, I_C(i), nm)) set_name(nm, "?");
    return env_kind(w, pi, lastpc, i, 0, 0);
  } else if (op == lay->op_self) {
    if (I_K(i)) {
      if (!const_string(w, pi, I_C(i), nm)) set_name(nm, "?");
    } else
      reg_const_name(w, pi, lastpc, I_C(i), nm, 0);
    return str_method;
  }
  return NULL;
}

/* The name of tag method `tm` without its "__" (G(L)->tmname[tm] + 2). */
static const char *tm_name(walker *w, unsigned tm, objname *nm) {
  uintptr_t g, ts;
  char buf[AS_MEMWALK_NAME_SIZE + 2];
  if (tm > 31 || rd_ptr(w, w->L + w->lay->L_l_G, &g) != 0 || !gc_ok(g) ||
      rd_ptr(w, g + w->lay->g_tmname + tm * 8u, &ts) != 0 ||
      read_string(w, ts, 0, buf, sizeof buf, NULL) != 0 || strlen(buf) < 2)
    return NULL;
  set_name(nm, buf + 2);
  return str_metamethod;
}

/*
** funcnamefromcode: the name of the function called by instruction `pc` of
** the caller: by a call, by the generic for, or as a metamethod.
*/
static const char *name_from_code(walker *w, protoinfo *pi, int pc,
                                  objname *nm) {
  const as_lualayout *lay = w->lay;
  int old = lay->naming == AS_NAMING_540;
  uint32_t i;
  unsigned op;
  unsigned tm;
  if (code_at(w, pi, pc, &i) != 0) return NULL;
  op = I_OP(i);
  if (op == lay->op_call || op == lay->op_tailcall) {
    if (lay->naming == AS_NAMING_547) return getobjname_new(w, pi, pc, I_A(i), nm);
    return getobjname_old(w, pi, pc, I_A(i), nm, 0);
  }
  if (op == lay->op_tforcall) {
    set_name(nm, "for iterator");
    return str_foriter;
  }
  if (op == lay->op_self || op == lay->op_gettabup || op == lay->op_gettable ||
      op == lay->op_geti || op == lay->op_getfield)
    tm = lay->tm_index;
  else if (op == lay->op_settabup || op == lay->op_settable ||
           op == lay->op_seti || op == lay->op_setfield)
    tm = lay->tm_newindex;
  else if (op == lay->op_mmbin || op == lay->op_mmbini || op == lay->op_mmbink)
    tm = (unsigned)I_C(i);
  else if (op == lay->op_unm) tm = lay->tm_unm;
  else if (op == lay->op_bnot) tm = lay->tm_bnot;
  else if (op == lay->op_len) tm = lay->tm_len;
  else if (op == lay->op_concat) tm = lay->tm_concat;
  else if (op == lay->op_eq) tm = lay->tm_eq;
  else if (old && (op == lay->op_lt || op == lay->op_le ||
                   op == lay->op_lti || op == lay->op_lei)) {
    set_name(nm, "order");
    return str_metamethod;
  } else if (old && (op == lay->op_close || op == lay->op_return)) {
    set_name(nm, "close");
    return str_metamethod;
  } else if (!old && (op == lay->op_lt || op == lay->op_lti ||
                      op == lay->op_gti)) tm = lay->tm_lt;
  else if (!old && (op == lay->op_le || op == lay->op_lei ||
                    op == lay->op_gei)) tm = lay->tm_le;
  else if (!old && (op == lay->op_close || op == lay->op_return))
    tm = lay->tm_close;
  else
    return NULL;
  return tm_name(w, tm, nm);
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
  if (!gc_ok(ci) || lay->size_CallInfo > sizeof buf ||
      rd(w, ci, lay->size_CallInfo, buf) != 0)
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
      rd_byte(w, ci->func + w->lay->tv_tt, tag) != 0 ||
      rd_ptr(w, ci->func + w->lay->tv_value, value) != 0)
    return -1;
  return 0;
}

/* The Proto of a Lua ci, with currentpc (savedpc - code - 1). */
static int ci_proto(walker *w, const ciinfo *ci, protoinfo *pi, int *pc) {
  unsigned char tag;
  uintptr_t cl, p;
  if (ci_function(w, ci, &tag, &cl) != 0 ||
      tag != (w->lay->tag_lcl | w->lay->bit_collectable) || !gc_ok(cl) ||
      rd_ptr(w, cl + w->lay->lcl_p, &p) != 0 || read_proto(w, p, pi) != 0)
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
  if (read_string(w, source, 0, head, sizeof head, &srclen) != 0) return -1;
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
      if (read_string(w, source, srclen - keep, out + 3, keep + 1, NULL) != 0)
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
static const char *frame_name(walker *w, const ciinfo *ci, const ciinfo *prev,
                              objname *nm) {
  const as_lualayout *lay = w->lay;
  protoinfo pi;
  int pc;
  if (!lay->finalizer_on_caller && (ci->callstatus & lay->cist_fin)) {
    set_name(nm, "__gc");
    return str_metamethod;
  }
  if (ci->callstatus & lay->cist_tail) return NULL;
  if (!lay->finalizer_on_caller && !ci_is_lua(w, prev)) return NULL;
  if (prev->callstatus & lay->cist_hooked) {
    set_name(nm, "?");
    return str_hook;
  }
  if (lay->finalizer_on_caller && (prev->callstatus & lay->cist_fin)) {
    set_name(nm, "__gc");
    return str_metamethod;
  }
  if (!ci_is_lua(w, prev)) return NULL;
  if (ci_proto(w, prev, &pi, &pc) != 0) return NULL;
  return name_from_code(w, &pi, pc, nm);
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
    if (!gc_ok(value) || rd_ptr(w, value + lay->lcl_p, &p) != 0 ||
        read_proto(w, p, &pi) != 0 || chunk_id(w, pi.source, f->source) != 0)
      goto done;
    f->linedefined = pi.linedefined;
    f->lastlinedefined = pi.lastlinedefined;
    f->what = pi.linedefined == 0 ? str_main : str_lua;
    f->source_ts = pi.source;
    if (ci_is_lua(w, ci)) {
      int pc;
      if (ci_proto(w, ci, &pi, &pc) != 0 ||
          func_line(w, &pi, pc, &f->currentline) != 0)
        goto done;
    }
  } else if (tag == lay->tag_lcf ||
             tag == (lay->tag_ccl | lay->bit_collectable)) {
    memcpy(f->source, "[C]", 4);
    if (tag != lay->tag_lcf &&
        (!gc_ok(value) || rd_ptr(w, value + lay->ccl_f, &value) != 0))
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

static int init_walker(walker *w, const as_lualayout *lay,
                       const as_memwalk_reader *rdr, uintptr_t L) {
  w->lay = lay;
  w->rd = rdr;
  w->L = L;
  w->truncated = 0;
  w->budget = AS_MEMWALK_FRAME_READS;
  return (lay != NULL && lay->lua_idsize == AS_MEMWALK_SOURCE_SIZE &&
          rdr != NULL && rdr->read != NULL && gc_ok(L)) ? 0 : -1;
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
  if (init_walker(&w, lay, rdr, L) != 0 || level < 0 || max < 0)
    return AS_MEMWALK_FAILED;
  base = L + lay->L_base_ci;
  if (rd_ptr(&w, L + lay->L_ci, &ci_addr) != 0) return AS_MEMWALK_FAILED;
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
  if (init_walker(&w, lay, rdr, closure) != 0 ||
      rd_byte(&w, closure + lay->gc_tt, &tag) != 0 || tag != lay->tag_lcl ||
      rd_ptr(&w, closure + lay->lcl_p, &p) != 0 || read_proto(&w, p, &pi) != 0 ||
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

int as_memwalk_upvalue_name(const as_lualayout *lay,
                            const as_memwalk_reader *rdr, uintptr_t holder,
                            uintptr_t fn, char *out, size_t size) {
  walker w;
  protoinfo pi;
  uintptr_t p;
  unsigned char tag, n;
  int i;
  if (size == 0 || init_walker(&w, lay, rdr, holder) != 0 ||
      rd_byte(&w, holder + lay->gc_tt, &tag) != 0 || tag != lay->tag_lcl ||
      rd_byte(&w, holder + lay->lcl_nupvalues, &n) != 0 ||
      rd_ptr(&w, holder + lay->lcl_p, &p) != 0 || read_proto(&w, p, &pi) != 0)
    return -1;
  for (i = 0; i < n && i < pi.sizeupvalues; i++) {
    uintptr_t uv, v, value, name;
    unsigned char vtag;
    if (rd_ptr(&w, holder + lay->lcl_upvals + (uintptr_t)i * 8, &uv) != 0 ||
        !gc_ok(uv) || rd_ptr(&w, uv + lay->upval_v, &v) != 0 ||
        (v & 7) != 0 || rd_byte(&w, v + lay->tv_tt, &vtag) != 0 ||
        rd_ptr(&w, v + lay->tv_value, &value) != 0)
      return -1;
    if (vtag != (lay->tag_lcl | lay->bit_collectable) || value != fn) continue;
    if (rd_ptr(&w, pi.upvalues + (uintptr_t)i * lay->size_Upvaldesc +
                   lay->upvaldesc_name, &name) != 0)
      return -1;
    if (name == 0) {   /* stripped: lua_getupvalue's "(no name)" */
      static const char noname[] = "(no name)";
      size_t k = sizeof noname <= size ? sizeof noname : size;
      memcpy(out, noname, k);
      out[k - 1] = '\0';
      return 1;
    }
    if (read_string(&w, name, 0, out, size, NULL) != 0) return -1;
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
  if (len > AS_MEMWALK_PREFIX_MAX || init_walker(&w, lay, rdr, ts) != 0 ||
      read_string(&w, ts, 0, head, len + 1, &n) != 0)
    return -1;
  return n >= len && memcmp(head, prefix, len) == 0;
}

int as_memwalk_depth(const as_lualayout *lay, const as_memwalk_reader *rdr,
                     uintptr_t L, int limit) {
  walker w;
  uintptr_t ci, base;
  int n = 0;
  if (init_walker(&w, lay, rdr, L) != 0) return -1;
  base = L + lay->L_base_ci;
  if (rd_ptr(&w, L + lay->L_ci, &ci) != 0) return -1;
  while (ci != base && n < limit) {
    w.budget = 8;
    if (n >= AS_MEMWALK_MAX_CALLINFO || !gc_ok(ci) ||
        rd_ptr(&w, ci + lay->ci_previous, &ci) != 0)
      return -1;
    n++;
  }
  return n;
}

/* ------------------------------------------------------------ package.loaded */

/* The node part of table `t`: its first node and its size (2^lsizenode). */
static int table_nodes(walker *w, uintptr_t t, uintptr_t *node, int *size) {
  unsigned char lsize;
  if (!gc_ok(t) || rd_byte(w, t + w->lay->t_lsizenode, &lsize) != 0 ||
      lsize > AS_MEMWALK_MAX_LSIZENODE || rd_ptr(w, t + w->lay->t_node, node) != 0 ||
      !gc_ok(*node))
    return -1;
  *size = 1 << lsize;
  return 0;
}

/* One node: its key's tag and payload, its value's tag and payload. */
typedef struct nodeinfo {
  unsigned char key_tt, val_tt;
  uintptr_t key, val;
} nodeinfo;

static int read_node(walker *w, uintptr_t node, int i, nodeinfo *ni) {
  const as_lualayout *lay = w->lay;
  unsigned char buf[64];
  uint64_t v;
  if (lay->size_Node > sizeof buf ||
      rd(w, node + (uintptr_t)i * lay->size_Node, lay->size_Node, buf) != 0)
    return -1;
  ni->key_tt = buf[lay->node_key_tt];
  ni->val_tt = buf[lay->node_val + lay->tv_tt];
  memcpy(&v, buf + lay->node_key_val, 8); ni->key = (uintptr_t)v;
  memcpy(&v, buf + lay->node_val + lay->tv_value, 8); ni->val = (uintptr_t)v;
  return 0;
}

static int is_string_tag(const as_lualayout *lay, unsigned char tt) {
  return tt == (lay->tag_shrstr | lay->bit_collectable) ||
         tt == (lay->tag_lngstr | lay->bit_collectable);
}

static int is_empty_tag(unsigned char tt) {
  return (tt & 0x0F) == 0;  /* LUA_TNIL with any variant: empty slot */
}

/* lua_rawequal of a node value with the frame's function. */
static int same_function(const as_memwalk_frame *f, const nodeinfo *ni) {
  return ni->val_tt == f->func_tag && ni->val == f->func;
}

/* A string key equal to the NUL-terminated `want`. */
static int key_is(walker *w, const nodeinfo *ni, const char *want) {
  char buf[16];
  size_t len, wl = strlen(want);
  int saved = w->truncated;
  if (!is_string_tag(w->lay, ni->key_tt) || wl >= sizeof buf) return 0;
  if (read_string(w, ni->key, 0, buf, sizeof buf, &len) != 0) return 0;
  w->truncated = saved;
  return len == wl && memcmp(buf, want, wl) == 0;
}

/* Appends the string key of `ni` to out at *pos; 0, or -1 if unreadable. */
static int append_key(walker *w, const nodeinfo *ni, char *out, size_t size,
                      size_t *pos) {
  if (*pos >= size - 1) { w->truncated = 1; return 0; }
  if (read_string(w, ni->key, 0, out + *pos, size - *pos, NULL) != 0) return -1;
  *pos += strlen(out + *pos);
  return 0;
}

/*
** luaL_traceback's pushglobalfuncname: findfield(loaded, 2) visits
** package.loaded's string keys in lua_next order (array part first, which
** holds no string keys, then the node part by index); for each, the value
** itself, then (when it is a table) that table's string keys, one level.
** A name starting with "_G." loses that prefix.
*/
int as_memwalk_global_name(const as_lualayout *lay, const as_memwalk_reader *rdr,
                           uintptr_t L, const as_memwalk_frame *frame,
                           char *out, size_t size) {
  walker w;
  uintptr_t g, reg_t, node, loaded = 0;
  unsigned char tt;
  int size_reg, size_loaded, i;
  if (size < 4 || init_walker(&w, lay, rdr, L) != 0) return -1;
  out[0] = '\0';
  if (rd_ptr(&w, L + lay->L_l_G, &g) != 0 || !gc_ok(g) ||
      rd_byte(&w, g + lay->g_l_registry + lay->tv_tt, &tt) != 0 ||
      tt != (lay->tag_table | lay->bit_collectable) ||
      rd_ptr(&w, g + lay->g_l_registry + lay->tv_value, &reg_t) != 0 ||
      table_nodes(&w, reg_t, &node, &size_reg) != 0)
    return -1;
  for (i = 0; i < size_reg; i++) {  /* registry._LOADED */
    nodeinfo ni;
    if (read_node(&w, node, i, &ni) != 0) return -1;
    if (!is_empty_tag(ni.val_tt) && key_is(&w, &ni, "_LOADED")) {
      if (ni.val_tt != (lay->tag_table | lay->bit_collectable)) return 0;
      loaded = ni.val;
      break;
    }
  }
  if (loaded == 0 || table_nodes(&w, loaded, &node, &size_loaded) != 0)
    return loaded == 0 ? 0 : -1;
  for (i = 0; i < size_loaded; i++) {
    nodeinfo mod;
    uintptr_t mnode;
    int msize, j;
    size_t pos = 0;
    if (read_node(&w, node, i, &mod) != 0) return -1;
    if (is_empty_tag(mod.val_tt) || !is_string_tag(lay, mod.key_tt)) continue;
    if (same_function(frame, &mod))
      return append_key(&w, &mod, out, size, &pos) == 0 ? 1 : -1;
    if (mod.val_tt != (lay->tag_table | lay->bit_collectable)) continue;
    if (table_nodes(&w, mod.val, &mnode, &msize) != 0) continue;
    for (j = 0; j < msize; j++) {
      nodeinfo fld;
      if (read_node(&w, mnode, j, &fld) != 0) break;
      if (is_empty_tag(fld.val_tt) || !is_string_tag(lay, fld.key_tt) ||
          !same_function(frame, &fld))
        continue;
      if (!key_is(&w, &mod, "_G")) {
        if (append_key(&w, &mod, out, size, &pos) != 0) return -1;
        if (pos < size - 1) out[pos++] = '.';
        out[pos] = '\0';
      }
      return append_key(&w, &fld, out, size, &pos) == 0 ? 1 : -1;
    }
  }
  return 0;
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
