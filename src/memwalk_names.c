/*
** memwalk_names.c: a function's name from its calling instruction, as
** ldebug.c derives it (getobjname, funcnamefromcode: "local", "global",
** "method", "field", "upvalue", "constant", "metamethod", "for iterator"),
** for each release's rules (lualayout.h AS_NAMING_*), read from memory.
** About 320 lines: the three generations of getobjname belong together.
*/
#include "memwalk_internal.h"

static const char str_local[] = "local";
static const char str_upvalue[] = "upvalue";
static const char str_constant[] = "constant";
static const char str_global[] = "global";
static const char str_field[] = "field";
static const char str_method[] = "method";
static const char str_metamethod[] = "metamethod";
static const char str_foriter[] = "for iterator";

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
    if (as_mw_rd_int(w, lv + lay->locvar_startpc, &startpc) != 0) return -1;
    if (startpc > pc) break;
    if (as_mw_rd_int(w, lv + lay->locvar_endpc, &endpc) != 0) return -1;
    if (pc < endpc) {
      local_number--;
      if (local_number == 0) {
        uintptr_t vn;
        if (as_mw_rd_ptr(w, lv + lay->locvar_varname, &vn) != 0) return -1;
        as_mw_set_name_ts(w, nm, vn);
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
      as_mw_rd_ptr(w, pi->upvalues + (uintptr_t)uv * w->lay->size_Upvaldesc +
                    w->lay->upvaldesc_name, &name) != 0 || name == 0) {
    as_mw_set_name(nm, "?");
    return;
  }
  as_mw_set_name_ts(w, nm, name);
  if (!nm->set) as_mw_set_name(nm, "?");
}

/* Constant `index` of the Proto when it is a string: 1 and its text in nm;
** else 0 (nm untouched). */
static int const_string(walker *w, const protoinfo *pi, int index,
                        objname *nm) {
  uintptr_t kv, ts;
  unsigned char tt;
  if (index < 0 || index >= pi->sizek || pi->k == 0) return 0;
  kv = pi->k + (uintptr_t)index * w->lay->size_TValue;
  if (as_mw_rd_byte(w, kv + w->lay->tv_tt, &tt) != 0) return 0;
  if ((tt & ~w->lay->bit_collectable) != w->lay->tag_shrstr &&
      (tt & ~w->lay->bit_collectable) != w->lay->tag_lngstr)
    return 0;
  if (as_mw_rd_ptr(w, kv + w->lay->tv_value, &ts) != 0) return 0;
  as_mw_set_name_ts(w, nm, ts);
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
  if (as_mw_code_at(w, pi, lastpc, &i) != 0) return -1;
  if (opmode(w, I_OP(i), AS_LUALAYOUT_OPMODE_MM)) lastpc--;
  for (pc = 0; pc < lastpc; pc++) {
    unsigned op;
    int a, change;
    if (as_mw_code_at(w, pi, pc, &i) != 0) return -1;
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

/* The constant a LOADK (Bx) or LOADKX (the next EXTRAARG's Ax) at pc
** loads, or -1 when the code cannot be read. */
static int loadk_index(walker *w, protoinfo *pi, int pc, uint32_t i) {
  uint32_t extra;
  if (I_OP(i) == w->lay->op_loadk) return (int)I_BX(i);
  if (as_mw_code_at(w, pi, pc + 1, &extra) != 0) return -1;
  return (int)I_AX(extra);
}

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
  if (pc == -1 || as_mw_code_at(w, pi, pc, &i) != 0) return NULL;
  op = I_OP(i);
  if (op == lay->op_move) {
    if (I_B(i) < I_A(i))
      return getobjname_old(w, pi, pc, I_B(i), nm, depth + 1);
  } else if (op == lay->op_gettabup) {
    if (!const_string(w, pi, I_C(i), nm)) as_mw_set_name(nm, "?");
    return env_kind(w, pi, pc, i, 1, depth);
  } else if (op == lay->op_gettable) {
    objname key;
    const char *what = getobjname_old(w, pi, pc, I_C(i), &key, depth + 1);
    if (what != NULL && what[0] == 'c') *nm = key; else as_mw_set_name(nm, "?");
    return env_kind(w, pi, pc, i, 0, depth);
  } else if (op == lay->op_geti) {
    as_mw_set_name(nm, "integer index");
    return str_field;
  } else if (op == lay->op_getfield) {
    if (!const_string(w, pi, I_C(i), nm)) as_mw_set_name(nm, "?");
    return env_kind(w, pi, pc, i, 0, depth);
  } else if (op == lay->op_getupval) {
    upval_name(w, pi, I_B(i), nm);
    return str_upvalue;
  } else if (op == lay->op_loadk || op == lay->op_loadkx) {
    int b = loadk_index(w, pi, pc, i);
    if (b < 0) return NULL;
    if (const_string(w, pi, b, nm)) return str_constant;
  } else if (op == lay->op_self) {
    if (I_K(i)) {
      if (!const_string(w, pi, I_C(i), nm)) as_mw_set_name(nm, "?");
    } else {
      objname key;
      const char *what = getobjname_old(w, pi, pc, I_C(i), &key, depth + 1);
      if (what != NULL && what[0] == 'c') *nm = key; else as_mw_set_name(nm, "?");
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
  if (pc == -1 || as_mw_code_at(w, pi, pc, &i) != 0) return NULL;
  op = I_OP(i);
  if (op == lay->op_move) {
    if (I_B(i) < I_A(i)) return basic_objname(w, pi, ppc, I_B(i), nm, depth + 1);
  } else if (op == lay->op_getupval) {
    upval_name(w, pi, I_B(i), nm);
    return str_upvalue;
  } else if (op == lay->op_loadk || op == lay->op_loadkx) {
    int b = loadk_index(w, pi, pc, i);
    if (b < 0) return NULL;
    if (const_string(w, pi, b, nm)) return str_constant;
    as_mw_set_name(nm, "?");
  }
  return NULL;
}

/* rname of 5.4.7+: a register's name only when it holds a string constant. */
static void reg_const_name(walker *w, protoinfo *pi, int pc, int c,
                           objname *nm, int depth) {
  const char *what = basic_objname(w, pi, &pc, c, nm, depth + 1);
  if (!(what != NULL && what[0] == 'c')) as_mw_set_name(nm, "?");
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
  if (lastpc == -1 || as_mw_code_at(w, pi, lastpc, &i) != 0) return NULL;
  op = I_OP(i);
  if (op == lay->op_gettabup) {
    if (!const_string(w, pi, I_C(i), nm)) as_mw_set_name(nm, "?");
    return env_kind(w, pi, lastpc, i, 1, 0);
  } else if (op == lay->op_gettable) {
    reg_const_name(w, pi, lastpc, I_C(i), nm, 0);
    return env_kind(w, pi, lastpc, i, 0, 0);
  } else if (op == lay->op_geti) {
    as_mw_set_name(nm, "integer index");
    return str_field;
  } else if (op == lay->op_getfield) {
    if (!const_string(w, pi, I_C(i), nm)) as_mw_set_name(nm, "?");
    return env_kind(w, pi, lastpc, i, 0, 0);
  } else if (op == lay->op_self) {
    if (I_K(i)) {
      if (!const_string(w, pi, I_C(i), nm)) as_mw_set_name(nm, "?");
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
  if (tm > 31 || as_mw_rd_ptr(w, w->L + w->lay->L_l_G, &g) != 0 || !as_mw_gc_ok(g) ||
      as_mw_rd_ptr(w, g + w->lay->g_tmname + tm * 8u, &ts) != 0 ||
      as_mw_read_string(w, ts, 0, buf, sizeof buf, NULL) != 0 || strlen(buf) < 2)
    return NULL;
  as_mw_set_name(nm, buf + 2);
  return str_metamethod;
}

/*
** funcnamefromcode: the name of the function called by instruction `pc` of
** the caller: by a call, by the generic for, or as a metamethod.
*/
const char *as_mw_name_from_code(walker *w, protoinfo *pi, int pc,
                                  objname *nm) {
  const as_lualayout *lay = w->lay;
  int old = lay->naming == AS_NAMING_540;
  uint32_t i;
  unsigned op;
  unsigned tm;
  if (as_mw_code_at(w, pi, pc, &i) != 0) return NULL;
  op = I_OP(i);
  if (op == lay->op_call || op == lay->op_tailcall) {
    if (lay->naming == AS_NAMING_547) return getobjname_new(w, pi, pc, I_A(i), nm);
    return getobjname_old(w, pi, pc, I_A(i), nm, 0);
  }
  if (op == lay->op_tforcall) {
    as_mw_set_name(nm, "for iterator");
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
    as_mw_set_name(nm, "order");
    return str_metamethod;
  } else if (old && (op == lay->op_close || op == lay->op_return)) {
    as_mw_set_name(nm, "close");
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

