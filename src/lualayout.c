/*
** lualayout.c: the facts of lualayout.h, per group of Lua 5.4 releases that
** share a layout (x86_64, Lua's default luaconf.h).
**
** Groups (from the releases' lstate.h, lobject.h, ldebug.c):
**   5.4.0          lua_State has `const Instruction *oldpc` before
**                  stack_last; CIST_HOOKED/TAIL/FIN are bits 2/4/6.
**   5.4.1          oldpc becomes an int at the end of lua_State (stack_last,
**                  stack, base_ci move up 8 bytes); global_State loses
**                  Cstacklimit (mainthread, tmname move down 8 bytes).
**   5.4.2          CIST_FRESH takes bit 2: HOOKED/TAIL/FIN move to 3/5/7.
**   5.4.3 - 5.4.8  lua_State gains `tbclist` after openupval (base_ci at
**                  96 again). No layout change after 5.4.3; the naming rules
**                  of ldebug.c change in 5.4.3, 5.4.4, 5.4.7 and 5.4.8 (see
**                  the AS_NAMING_* notes in lualayout.h).
** Every other field below is the same in all nine releases.
*/
#include <stddef.h>
#include "lualayout.h"

/* Declared by lua.h as `extern const char lua_ident[]`; weak so that a host
** that does not export it leaves the module loadable (the address is NULL). */
#include <lua.h>
#pragma weak lua_ident

/*
** Fields shared by every 5.4 release, with the struct each comes from.
*/
#define AS_LUALAYOUT_COMMON \
  /* lobject.h CommonHeader: GCObject *next; lu_byte tt; lu_byte marked */ \
  .gc_tt = 8, \
  /* lstate.h struct lua_State: CommonHeader; lu_byte status; lu_byte \
  ** allowhook; unsigned short nci; StkId(Rel) top; global_State *l_G; \
  ** CallInfo *ci; ... (StkIdRel, 5.4.6+, is a union of the same size) */ \
  .L_status = 10, .L_nci = 12, .L_top = 16, .L_l_G = 24, .L_ci = 32, \
  /* lstate.h struct CallInfo: StkId func, top; CallInfo *previous, *next; \
  ** union u { struct l { const Instruction *savedpc; l_signalT trap; \
  ** int nextraargs; }; struct c {...} }; union u2; short nresults; \
  ** unsigned short callstatus */ \
  .size_CallInfo = 64, .ci_func = 0, .ci_top = 8, .ci_previous = 16, \
  .ci_next = 24, .ci_savedpc = 32, .ci_nextraargs = 44, \
  .ci_callstatus = 62, .size_ci_callstatus = 2, \
  /* lstate.h CIST_C (1<<1) in every release */ \
  .cist_C = 2, \
  /* lobject.h TValue: Value value_ (8 bytes); lu_byte tt_; padded to 16. \
  ** StackValue is a union of TValue and the tbc list entry: also 16. */ \
  .size_TValue = 16, .size_StackValue = 16, .tv_value = 0, .tv_tt = 8, \
  /* lobject.h makevariant(type, variant) = type | variant << 4, with \
  ** lua.h's LUA_T* numbers; BIT_ISCOLLECTABLE is 1 << 6 */ \
  .tag_nil = 0, .tag_shrstr = 4, .tag_lngstr = 20, .tag_table = 5, \
  .tag_lcl = 6, .tag_lcf = 22, .tag_ccl = 38, .tag_thread = 8, \
  .bit_collectable = 64, \
  /* lobject.h ClosureHeader: CommonHeader; lu_byte nupvalues; GCObject \
  ** *gclist; then LClosure: Proto *p; UpVal *upvals[1] and CClosure: \
  ** lua_CFunction f; TValue upvalue[1] */ \
  .lcl_nupvalues = 10, .lcl_p = 24, .lcl_upvals = 32, \
  /* lobject.h UpVal: CommonHeader; lu_byte tbc; then v (TValue *, a \
  ** union {TValue *p; ptrdiff_t offset} from 5.4.6) */ \
  .upval_v = 16, \
  .ccl_nupvalues = 10, .ccl_f = 24, \
  /* lobject.h struct Proto: CommonHeader; lu_byte numparams, is_vararg, \
  ** maxstacksize; int sizeupvalues, sizek, sizecode, sizelineinfo, sizep, \
  ** sizelocvars, sizeabslineinfo, linedefined, lastlinedefined; TValue *k; \
  ** Instruction *code; Proto **p; Upvaldesc *upvalues; ls_byte *lineinfo; \
  ** AbsLineInfo *abslineinfo; LocVar *locvars; TString *source */ \
  .p_numparams = 10, .p_is_vararg = 11, .p_sizeupvalues = 16, \
  .p_sizek = 20, .p_sizecode = 24, .p_sizelineinfo = 28, \
  .p_sizelocvars = 36, .p_sizeabslineinfo = 40, .p_linedefined = 44, \
  .p_lastlinedefined = 48, .p_k = 56, .p_code = 64, .p_upvalues = 80, \
  .p_lineinfo = 88, .p_abslineinfo = 96, .p_locvars = 104, \
  .p_source = 112, \
  /* lobject.h Upvaldesc: TString *name; lu_byte instack, idx, kind */ \
  .size_Upvaldesc = 16, .upvaldesc_name = 0, \
  /* lobject.h LocVar: TString *varname; int startpc; int endpc */ \
  .size_LocVar = 16, .locvar_varname = 0, .locvar_startpc = 8, \
  .locvar_endpc = 12, \
  /* lobject.h AbsLineInfo: int pc; int line */ \
  .size_AbsLineInfo = 8, .absline_pc = 0, .absline_line = 4, \
  /* lobject.h TString: CommonHeader; lu_byte extra; lu_byte shrlen; \
  ** unsigned int hash; union { size_t lnglen; TString *hnext } u; \
  ** char contents[1]. Short or long is told by the tag (LUA_VSHRSTR, \
  ** LUA_VLNGSTR); 5.4.7+ also sets shrlen to 0xFF for long strings. */ \
  .ts_shrlen = 11, .ts_lnglen = 16, .ts_contents = 24, \
  /* lobject.h Table: CommonHeader; lu_byte flags; lu_byte lsizenode; \
  ** unsigned int alimit; TValue *array; Node *node; ...; Node is a union \
  ** of NodeKey { TValuefields; lu_byte key_tt; int next; Value key_val } \
  ** and TValue i_val */ \
  .t_lsizenode = 11, .t_node = 24, .size_Node = 24, .node_val = 0, \
  .node_key_tt = 9, .node_key_val = 16, \
  /* lstate.h global_State: ... TValue l_registry (after lua_Alloc frealloc, \
  ** void *ud, l_mem totalbytes, GCdebt, lu_mem GCestimate, lastatomic, \
  ** stringtable strt) */ \
  .g_l_registry = 64, \
  /* lopcodes.h enum OpCode: the same list in every 5.4 release */ \
  .op_move = 0, .op_loadk = 3, .op_loadkx = 4, .op_loadnil = 8, \
  .op_getupval = 9, .op_gettabup = 11, .op_gettable = 12, .op_geti = 13, \
  .op_getfield = 14, .op_settabup = 15, .op_settable = 16, .op_seti = 17, \
  .op_setfield = 18, .op_self = 20, .op_mmbin = 46, .op_mmbini = 47, \
  .op_mmbink = 48, .op_unm = 49, .op_bnot = 50, .op_len = 52, \
  .op_concat = 53, .op_close = 54, .op_jmp = 56, .op_eq = 57, \
  .op_lt = 58, .op_le = 59, .op_lti = 62, .op_lei = 63, .op_gti = 64, \
  .op_gei = 65, .op_call = 68, .op_tailcall = 69, .op_return = 70, \
  .op_tforcall = 76, .op_extraarg = 82, .num_opcodes = 83, \
  /* ltm.h enum TMS: the same list in every 5.4 release */ \
  .tm_index = 0, .tm_newindex = 1, .tm_unm = 18, .tm_bnot = 19, \
  .tm_len = 4, .tm_concat = 22, .tm_eq = 5, .tm_lt = 20, .tm_le = 21, \
  .tm_close = 24, \
  /* luaconf.h LUA_IDSIZE; ldebug.h ABSLINEINFO (-0x80 as a signed byte) */ \
  .lua_idsize = 60, .abslineinfo_mark = 128, \
  /* lopcodes.c luaP_opmodes, per opcode: bit 7 MM (instruction follows a \
  ** metamethod-capable one and is skipped by symbolic execution), bit 3 A \
  ** (instruction sets register A). The same table in every 5.4 release. */ \
  .opmodes = { 8, 10, 10, 9, 9, 8, 8, 8, 8, 8, 0, 8, 8, 8, 8, 0, 0, 0, 0, \
    8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, \
    8, 8, 8, 128, 128, 128, 8, 8, 8, 8, 8, 0, 0, 4, 16, 16, 16, 16, 16, 16, \
    16, 16, 16, 16, 24, 104, 104, 32, 0, 0, 9, 9, 1, 0, 9, 32, 9, 72, 40, \
    3 }

/* lstate.h lua_State 5.4.0: ... CallInfo *ci; const Instruction *oldpc;
** StkId stack_last; StkId stack; UpVal *openupval; GCObject *gclist;
** lua_State *twups; lua_longjmp *errorJmp; CallInfo base_ci. */
#define AS_LUALAYOUT_STATE_540 \
  .L_stack_last = 48, .L_stack = 56, .L_base_ci = 96
/* 5.4.1, 5.4.2: oldpc moved to an int after nCcalls. */
#define AS_LUALAYOUT_STATE_541 \
  .L_stack_last = 40, .L_stack = 48, .L_base_ci = 88
/* 5.4.3+: StkIdRel tbclist after openupval. */
#define AS_LUALAYOUT_STATE_543 \
  .L_stack_last = 40, .L_stack = 48, .L_base_ci = 96
/* lstate.h global_State: 5.4.0 has `unsigned int Cstacklimit` before
** mainthread; 5.4.1+ not. tmname follows mainthread and `TString *memerrmsg`. */
#define AS_LUALAYOUT_GLOBAL_540 .g_mainthread = 256, .g_tmname = 272
#define AS_LUALAYOUT_GLOBAL_541 .g_mainthread = 264, .g_tmname = 280
/* lstate.h CIST_*: 5.4.0-5.4.1 OAH 0, C 1, HOOKED 2, YPCALL 3, TAIL 4,
** HOOKYIELD 5, FIN 6; 5.4.2+ insert FRESH at 2. */
#define AS_LUALAYOUT_CIST_540 .cist_hooked = 4, .cist_tail = 16, .cist_fin = 64
#define AS_LUALAYOUT_CIST_542 .cist_hooked = 8, .cist_tail = 32, .cist_fin = 128

static const as_lualayout layout_540 = {
  .releases = "5.4.0", .naming = AS_NAMING_540,
  .finalizer_on_caller = 0, .env_needs_variable = 0,
  AS_LUALAYOUT_COMMON, AS_LUALAYOUT_STATE_540, AS_LUALAYOUT_GLOBAL_540,
  AS_LUALAYOUT_CIST_540
};
static const as_lualayout layout_541 = {
  .releases = "5.4.1", .naming = AS_NAMING_540,
  .finalizer_on_caller = 0, .env_needs_variable = 0,
  AS_LUALAYOUT_COMMON, AS_LUALAYOUT_STATE_541, AS_LUALAYOUT_GLOBAL_541,
  AS_LUALAYOUT_CIST_540
};
static const as_lualayout layout_542 = {
  .releases = "5.4.2", .naming = AS_NAMING_540,
  .finalizer_on_caller = 0, .env_needs_variable = 0,
  AS_LUALAYOUT_COMMON, AS_LUALAYOUT_STATE_541, AS_LUALAYOUT_GLOBAL_541,
  AS_LUALAYOUT_CIST_542
};
static const as_lualayout layout_543 = {
  .releases = "5.4.3", .naming = AS_NAMING_543,
  .finalizer_on_caller = 0, .env_needs_variable = 0,
  AS_LUALAYOUT_COMMON, AS_LUALAYOUT_STATE_543, AS_LUALAYOUT_GLOBAL_541,
  AS_LUALAYOUT_CIST_542
};
/* 5.4.4 - 5.4.6: funcnamefromcall tests CIST_HOOKED/CIST_FIN on the caller. */
static const as_lualayout layout_544 = {
  .releases = "5.4.4 - 5.4.6", .naming = AS_NAMING_543,
  .finalizer_on_caller = 1, .env_needs_variable = 0,
  AS_LUALAYOUT_COMMON, AS_LUALAYOUT_STATE_543, AS_LUALAYOUT_GLOBAL_541,
  AS_LUALAYOUT_CIST_542
};
static const as_lualayout layout_547 = {
  .releases = "5.4.7", .naming = AS_NAMING_547,
  .finalizer_on_caller = 1, .env_needs_variable = 0,
  AS_LUALAYOUT_COMMON, AS_LUALAYOUT_STATE_543, AS_LUALAYOUT_GLOBAL_541,
  AS_LUALAYOUT_CIST_542
};
static const as_lualayout layout_548 = {
  .releases = "5.4.8", .naming = AS_NAMING_547,
  .finalizer_on_caller = 1, .env_needs_variable = 1,
  AS_LUALAYOUT_COMMON, AS_LUALAYOUT_STATE_543, AS_LUALAYOUT_GLOBAL_541,
  AS_LUALAYOUT_CIST_542
};

const as_lualayout *as_lualayout_for_release(int minor) {
  switch (minor) {
    case 0: return &layout_540;
    case 1: return &layout_541;
    case 2: return &layout_542;
    case 3: return &layout_543;
    case 4: case 5: case 6: return &layout_544;
    case 7: return &layout_547;
    case 8: return &layout_548;
    default: return NULL;
  }
}

int as_lualayout_parse_ident(const char *ident) {
  static const char prefix[] = "$LuaVersion: Lua 5.4.";
  size_t i;
  int minor = 0, digits = 0;
  if (ident == NULL) return -1;
  for (i = 0; i < sizeof prefix - 1; i++)
    if (ident[i] != prefix[i]) return -1;
  for (; ident[i] >= '0' && ident[i] <= '9' && digits < 3; i++, digits++)
    minor = minor * 10 + (ident[i] - '0');
  /* the release number ends there: "5.4.10" is not "5.4.1" */
  if (digits == 0 || (ident[i] >= '0' && ident[i] <= '9')) return -1;
  return minor;
}

const char *as_lualayout_running_ident(void) {
  const char *ident = lua_ident;
  return ident;
}
