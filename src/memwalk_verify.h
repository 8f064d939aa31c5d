/*
** memwalk_verify.h: "verified at load" for the memory walker (issue 14,
** item 2). Uses the Lua API: call it from normal Lua context only.
*/
#ifndef ASYNCSTACK_MEMWALK_VERIFY_H
#define ASYNCSTACK_MEMWALK_VERIFY_H

#include <stddef.h>
#include <lua.h>
#include "memwalk.h"

/*
** Builds a known stack in L (a suspended coroutine, and in L itself local,
** field, method, upvalue and tail calls through a C function), walks both
** threads from memory with layout `lay` (NULL: the layout of the running
** interpreter's release, from lua_ident) and compares every frame with
** lua_getinfo(L, "Slnt"). Returns 1 when all agree ("verified (layout of
** Lua 5.4.4 - 5.4.6)" in msg); 0 with msg "unverified: <first difference or
** reason>" otherwise. Leaves L's stack as it found it; raises only on memory
** errors.
*/
int as_memwalk_verify(lua_State *L, const as_lualayout *lay, char *msg,
                      size_t msgsize);

/*
** Compares the frames of thread `co` (running, normal or suspended) walked
** from memory with lua_getinfo's, all levels from 0 (at most 48). Returns 1
** when equal; else 0 and msg says which frame and field differ; `thread`
** names the thread in that message.
*/
int as_memwalk_compare_thread(lua_State *co, const as_lualayout *lay,
                              const char *thread, char *msg, size_t msgsize);

#endif
