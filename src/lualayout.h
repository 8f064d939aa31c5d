/*
** lualayout.h: Lua 5.4's internal memory layout, stated as facts per release.
**
** Why
** ---
** A walker that reads a coroutine's frames from memory alone (in a signal
** handler, from another process, from a core file: see memwalk.h) must know
** where Lua keeps a thread's CallInfo list, a closure's Proto, a Proto's line
** info, a string's bytes. None of that is in Lua's public headers (lua.h,
** lauxlib.h): it is in the internal ones (lstate.h, lobject.h, lfunc.h,
** lopcodes.h, ltm.h) and it changed between 5.4 releases. This file states
** those facts as plain numbers, one table per group of releases that share a
** layout, for x86_64 (LP64, 8-byte pointers, lua_Number double, lua_Integer
** long long: Lua's default luaconf.h). lualayout.c says, field by field, which
** struct of which header each number comes from.
**
** The layout of the running interpreter is chosen by its release, read from
** the exported `lua_ident` string ("$LuaVersion: Lua 5.4.4  Copyright ...").
** lua_version() only says 504. An interpreter built with another luaconf.h
** (32-bit ints, float numbers, LUAI_MAXALIGN changes...) or patched structs
** would have the same ident and a different layout: the layout is therefore
** only trusted after as_memwalk_verify (memwalk.h) compared a walk with
** lua_getinfo.
**
** Nothing here calls Lua or allocates: a table is const data.
**
** Checked by `make test-lua-versions`: src-test/lualayout_facts.c is compiled
** against each release's own internal headers and prints the same fields
** with offsetof/sizeof; the test compares that with these tables.
*/
#ifndef ASYNCSTACK_LUALAYOUT_H
#define ASYNCSTACK_LUALAYOUT_H

#include <string.h>

/*
** The fields a memory-level walker reads, as X(name). Offsets are in bytes
** from the start of the struct named by the prefix; "size_" entries are
** sizeof; "tag_"/"cist_"/"op_"/"tm_" entries are constant values.
*/
#define AS_LUALAYOUT_FIELDS(X) \
  /* GC object header (CommonHeader: next, tt, marked) */ \
  X(gc_tt) \
  /* lua_State (lstate.h) */ \
  X(L_status) X(L_nci) X(L_top) X(L_l_G) X(L_ci) X(L_stack_last) \
  X(L_stack) X(L_base_ci) \
  /* CallInfo (lstate.h) */ \
  X(size_CallInfo) X(ci_func) X(ci_top) X(ci_previous) X(ci_next) \
  X(ci_savedpc) X(ci_nextraargs) X(ci_callstatus) X(size_ci_callstatus) \
  X(cist_C) X(cist_hooked) X(cist_tail) X(cist_fin) \
  /* TValue, StackValue (lobject.h) */ \
  X(size_TValue) X(size_StackValue) X(tv_value) X(tv_tt) \
  /* type tags with variant bits (lobject.h), BIT_ISCOLLECTABLE */ \
  X(tag_nil) X(tag_shrstr) X(tag_lngstr) X(tag_table) X(tag_lcl) \
  X(tag_lcf) X(tag_ccl) X(tag_thread) X(bit_collectable) \
  /* closures (lobject.h) */ \
  X(lcl_nupvalues) X(lcl_p) X(lcl_upvals) X(upval_v) X(ccl_nupvalues) \
  X(ccl_f) \
  /* Proto (lobject.h) */ \
  X(p_numparams) X(p_is_vararg) X(p_sizeupvalues) X(p_sizek) \
  X(p_sizecode) X(p_sizelineinfo) X(p_sizelocvars) X(p_sizeabslineinfo) \
  X(p_linedefined) X(p_lastlinedefined) X(p_k) X(p_code) X(p_upvalues) \
  X(p_lineinfo) X(p_abslineinfo) X(p_locvars) X(p_source) \
  X(size_Upvaldesc) X(upvaldesc_name) \
  X(size_LocVar) X(locvar_varname) X(locvar_startpc) X(locvar_endpc) \
  X(size_AbsLineInfo) X(absline_pc) X(absline_line) \
  /* TString (lobject.h) */ \
  X(ts_shrlen) X(ts_lnglen) X(ts_contents) \
  /* Table and Node (lobject.h) */ \
  X(t_lsizenode) X(t_node) X(size_Node) X(node_val) X(node_key_tt) \
  X(node_key_val) \
  /* global_State (lstate.h) */ \
  X(g_l_registry) X(g_mainthread) X(g_tmname) \
  /* opcodes (lopcodes.h: same numbering in 5.4.0 ... 5.4.8) */ \
  X(op_move) X(op_loadk) X(op_loadkx) X(op_loadnil) X(op_getupval) \
  X(op_gettabup) X(op_gettable) X(op_geti) X(op_getfield) \
  X(op_settabup) X(op_settable) X(op_seti) X(op_setfield) X(op_self) \
  X(op_mmbin) X(op_mmbini) X(op_mmbink) X(op_unm) X(op_bnot) X(op_len) \
  X(op_concat) X(op_close) X(op_jmp) X(op_eq) X(op_lt) X(op_le) \
  X(op_lti) X(op_lei) X(op_gti) X(op_gei) X(op_call) X(op_tailcall) \
  X(op_return) X(op_tforcall) X(op_extraarg) X(num_opcodes) \
  /* tag methods (ltm.h, enum TMS) */ \
  X(tm_index) X(tm_newindex) X(tm_unm) X(tm_bnot) X(tm_len) \
  X(tm_concat) X(tm_eq) X(tm_lt) X(tm_le) X(tm_close) \
  /* limits (luaconf.h, ldebug.h) */ \
  X(lua_idsize) X(abslineinfo_mark)

/* Opcode property bits (lopcodes.h, luaP_opmodes: "testAMode", "testMMMode"). */
#define AS_LUALAYOUT_OPMODE_A   (1u << 3)
#define AS_LUALAYOUT_OPMODE_MM  (1u << 7)
#define AS_LUALAYOUT_MAX_OPCODES 96

/*
** How ldebug.c names a function from its calling instruction changed twice:
**   AS_NAMING_540: 5.4.0 - 5.4.2: order metamethods (__lt/__le via OP_LT,
**     OP_LE, OP_LTI, OP_LEI) are named "order", OP_CLOSE/OP_RETURN "close";
**     OP_GTI/OP_GEI name nothing; a finalizer is named from the called
**     CallInfo (CIST_FIN on it); a hook from the caller (funcnamefromcode).
**   AS_NAMING_543: 5.4.3 - 5.4.6: metamethod names come from the TMS enum for
**     all of them; 5.4.4 moves the hook/finalizer checks to the caller's
**     CallInfo (funcnamefromcall) -- see the `finalizer_on_caller` field.
**   AS_NAMING_547: 5.4.7 - 5.4.8: getobjname split into basicgetobjname
**     (locals, upvalues, constants, moves) and table accesses; OP_MOVE and
**     the _ENV check follow only the basic part. 5.4.8 also requires the
**     _ENV candidate to be a local or an upvalue (`env_needs_variable`).
*/
enum { AS_NAMING_540 = 0, AS_NAMING_543 = 1, AS_NAMING_547 = 2 };

typedef struct as_lualayout {
  const char *releases;        /* e.g. "5.4.4 - 5.4.6": the releases sharing it */
  int naming;                  /* AS_NAMING_* */
  int finalizer_on_caller;     /* 5.4.4+: CIST_FIN/HOOKED tested on ci->previous */
  int env_needs_variable;      /* 5.4.8: _ENV only when a local/upvalue name */
#define AS_LUALAYOUT_MEMBER(name) unsigned name;
  AS_LUALAYOUT_FIELDS(AS_LUALAYOUT_MEMBER)
#undef AS_LUALAYOUT_MEMBER
  unsigned char opmodes[AS_LUALAYOUT_MAX_OPCODES];  /* luaP_opmodes */
} as_lualayout;

/*
** The layout of Lua 5.4.`minor` (0 ... 8), or NULL for a release with no
** stated layout.
*/
const as_lualayout *as_lualayout_for_release(int minor);

/*
** The minor release named by an ident string ("$LuaVersion: Lua 5.4.6 ..."),
** or -1 when the string is NULL or names no 5.4 release.
*/
int as_lualayout_parse_ident(const char *ident);

/*
** The running interpreter's `lua_ident` (referenced weakly, so a host that
** does not export it gives NULL instead of failing to load the module).
*/
const char *as_lualayout_running_ident(void);

/*
** Reads of the running interpreter's own live objects through a verified
** layout (in-process: the caller holds what it reads; a memory-level
** walker of another process goes through memwalk's reader instead).
*/
static inline const void *as_lualayout_ptr(const void *base, unsigned offset) {
  const void *p;
  memcpy(&p, (const char *)base + offset, sizeof p);
  return p;
}

/* The function value of frame `ci` (the object for a closure, the C
** function's address for a light one), and its type tag when `tag` is not
** NULL. */
static inline const void *as_lualayout_frame_value(const as_lualayout *lay, const void *ci,
                                                   unsigned char *tag) {
  const char *slot = (const char *)as_lualayout_ptr(ci, lay->ci_func);
  if (tag != NULL) memcpy(tag, slot + lay->tv_tt, 1);
  return as_lualayout_ptr(slot, lay->tv_value);
}

/* The Lua closure the frame `ci` runs, or NULL when it runs a C function. */
static inline const void *as_lualayout_frame_lclosure(const as_lualayout *lay, const void *ci) {
  unsigned char tag;
  const void *v = as_lualayout_frame_value(lay, ci, &tag);
  return tag == (lay->tag_lcl | lay->bit_collectable) ? v : NULL;
}

/* The instruction the Lua frame `ci` of Lua closure `cl` stopped at (what
** lua_getinfo's currentline is worked out from), or -1 when its saved pc
** is not inside the closure's code. */
static inline int as_lualayout_frame_pc(const as_lualayout *lay, const void *ci,
                                        const void *cl) {
  const void *proto = as_lualayout_ptr(cl, lay->lcl_p);
  const char *code = (const char *)as_lualayout_ptr(proto, lay->p_code);
  const char *savedpc = (const char *)as_lualayout_ptr(ci, lay->ci_savedpc);
  int sizecode;
  memcpy(&sizecode, (const char *)proto + lay->p_sizecode, sizeof sizecode);
  if (code == NULL || savedpc <= code || (savedpc - code) % 4 != 0 ||
      (savedpc - code) / 4 > sizecode)
    return -1;
  return (int)((savedpc - code) / 4) - 1;
}

#endif
