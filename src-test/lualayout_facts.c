/*
** lualayout_facts.c: prints, for the Lua release whose internal headers it
** is compiled against, every field of src/lualayout.h as "name value" lines
** (offsetof, sizeof and constants taken from the release's own headers), then
** "opmodes" with luaP_opmodes. `make test-lua-versions` compiles it against
** each release in ../shared/lua/ and compares its output with the tables of
** src/lualayout.c (printed by lualayout_print.c): the stated facts are
** checked against the headers they come from.
**
** Test tool only: never part of the module (it includes Lua's internals).
**   cc -I lua-5.4.N -o facts src-test/lualayout_facts.c lua-5.4.N/lopcodes.c
*/
#include <stddef.h>
#include <stdio.h>
#include "lua.h"
#include "lstate.h"
#include "lobject.h"
#include "lfunc.h"
#include "lopcodes.h"
#include "ltm.h"
#include "ldebug.h"

#define P(name, value) printf("%s %u\n", #name, (unsigned)(value))
#define OFF(name, type, member) P(name, offsetof(type, member))
#define FIELDSIZE(type, member) sizeof(((type *)0)->member)

int main(void) {
  int i;
  OFF(gc_tt, struct GCObject, tt);
  OFF(L_status, lua_State, status);
  OFF(L_nci, lua_State, nci);
  OFF(L_top, lua_State, top);
  OFF(L_l_G, lua_State, l_G);
  OFF(L_ci, lua_State, ci);
  OFF(L_stack_last, lua_State, stack_last);
  OFF(L_stack, lua_State, stack);
  OFF(L_base_ci, lua_State, base_ci);
  P(size_CallInfo, sizeof(CallInfo));
  OFF(ci_func, CallInfo, func);
  OFF(ci_top, CallInfo, top);
  OFF(ci_previous, CallInfo, previous);
  OFF(ci_next, CallInfo, next);
  OFF(ci_savedpc, CallInfo, u.l.savedpc);
  OFF(ci_nextraargs, CallInfo, u.l.nextraargs);
  OFF(ci_callstatus, CallInfo, callstatus);
  P(size_ci_callstatus, FIELDSIZE(CallInfo, callstatus));
  P(cist_C, CIST_C);
  P(cist_hooked, CIST_HOOKED);
  P(cist_tail, CIST_TAIL);
  P(cist_fin, CIST_FIN);
  P(size_TValue, sizeof(TValue));
  P(size_StackValue, sizeof(StackValue));
  OFF(tv_value, TValue, value_);
  OFF(tv_tt, TValue, tt_);
  P(tag_nil, LUA_VNIL);
  P(tag_shrstr, LUA_VSHRSTR);
  P(tag_lngstr, LUA_VLNGSTR);
  P(tag_table, LUA_VTABLE);
  P(tag_lcl, LUA_VLCL);
  P(tag_lcf, LUA_VLCF);
  P(tag_ccl, LUA_VCCL);
  P(tag_thread, LUA_VTHREAD);
  P(bit_collectable, BIT_ISCOLLECTABLE);
  OFF(lcl_nupvalues, LClosure, nupvalues);
  OFF(lcl_p, LClosure, p);
  OFF(lcl_upvals, LClosure, upvals);
  OFF(upval_v, UpVal, v);
  OFF(ccl_nupvalues, CClosure, nupvalues);
  OFF(ccl_f, CClosure, f);
  OFF(p_numparams, Proto, numparams);
  OFF(p_is_vararg, Proto, is_vararg);
  OFF(p_sizeupvalues, Proto, sizeupvalues);
  OFF(p_sizek, Proto, sizek);
  OFF(p_sizecode, Proto, sizecode);
  OFF(p_sizelineinfo, Proto, sizelineinfo);
  OFF(p_sizelocvars, Proto, sizelocvars);
  OFF(p_sizeabslineinfo, Proto, sizeabslineinfo);
  OFF(p_linedefined, Proto, linedefined);
  OFF(p_lastlinedefined, Proto, lastlinedefined);
  OFF(p_k, Proto, k);
  OFF(p_code, Proto, code);
  OFF(p_upvalues, Proto, upvalues);
  OFF(p_lineinfo, Proto, lineinfo);
  OFF(p_abslineinfo, Proto, abslineinfo);
  OFF(p_locvars, Proto, locvars);
  OFF(p_source, Proto, source);
  P(size_Upvaldesc, sizeof(Upvaldesc));
  OFF(upvaldesc_name, Upvaldesc, name);
  P(size_LocVar, sizeof(LocVar));
  OFF(locvar_varname, LocVar, varname);
  OFF(locvar_startpc, LocVar, startpc);
  OFF(locvar_endpc, LocVar, endpc);
  P(size_AbsLineInfo, sizeof(AbsLineInfo));
  OFF(absline_pc, AbsLineInfo, pc);
  OFF(absline_line, AbsLineInfo, line);
  OFF(ts_shrlen, TString, shrlen);
  OFF(ts_lnglen, TString, u.lnglen);
  OFF(ts_contents, TString, contents);
  OFF(t_lsizenode, Table, lsizenode);
  OFF(t_node, Table, node);
  P(size_Node, sizeof(Node));
  OFF(node_val, Node, i_val);
  OFF(node_key_tt, Node, u.key_tt);
  OFF(node_key_val, Node, u.key_val);
  OFF(g_l_registry, global_State, l_registry);
  OFF(g_mainthread, global_State, mainthread);
  OFF(g_tmname, global_State, tmname);
  P(op_move, OP_MOVE); P(op_loadk, OP_LOADK); P(op_loadkx, OP_LOADKX);
  P(op_loadnil, OP_LOADNIL); P(op_getupval, OP_GETUPVAL);
  P(op_gettabup, OP_GETTABUP); P(op_gettable, OP_GETTABLE);
  P(op_geti, OP_GETI); P(op_getfield, OP_GETFIELD);
  P(op_settabup, OP_SETTABUP); P(op_settable, OP_SETTABLE);
  P(op_seti, OP_SETI); P(op_setfield, OP_SETFIELD); P(op_self, OP_SELF);
  P(op_mmbin, OP_MMBIN); P(op_mmbini, OP_MMBINI); P(op_mmbink, OP_MMBINK);
  P(op_unm, OP_UNM); P(op_bnot, OP_BNOT); P(op_len, OP_LEN);
  P(op_concat, OP_CONCAT); P(op_close, OP_CLOSE); P(op_jmp, OP_JMP);
  P(op_eq, OP_EQ); P(op_lt, OP_LT); P(op_le, OP_LE); P(op_lti, OP_LTI);
  P(op_lei, OP_LEI); P(op_gti, OP_GTI); P(op_gei, OP_GEI);
  P(op_call, OP_CALL); P(op_tailcall, OP_TAILCALL); P(op_return, OP_RETURN);
  P(op_tforcall, OP_TFORCALL); P(op_extraarg, OP_EXTRAARG);
  P(num_opcodes, NUM_OPCODES);
  P(tm_index, TM_INDEX); P(tm_newindex, TM_NEWINDEX); P(tm_unm, TM_UNM);
  P(tm_bnot, TM_BNOT); P(tm_len, TM_LEN); P(tm_concat, TM_CONCAT);
  P(tm_eq, TM_EQ); P(tm_lt, TM_LT); P(tm_le, TM_LE); P(tm_close, TM_CLOSE);
  P(lua_idsize, LUA_IDSIZE);
  P(abslineinfo_mark, (unsigned char)ABSLINEINFO);
  printf("opmodes");
  for (i = 0; i < NUM_OPCODES; i++) printf(" %u", (unsigned)luaP_opmodes[i]);
  printf("\n");
  return 0;
}
