/*
** unhandled.h: reporting failures nobody retrieved (the on_unhandled hook).
**
** A failed fork's error is "retrieved" when a waiter (or pwait) sees it.
** One that never is gets reported once: when the fork is collected (its
** __gc, fork.c), or at the end of run() for those still unretrieved. A
** report that a finalizer asks for while the loop runs is queued and
** delivered at the loop's next safe point, never from inside a collection.
*/
#ifndef ASYNCSTACK_UNHANDLED_H
#define ASYNCSTACK_UNHANDLED_H

#include <lua.h>
#include "module.h"

struct as_sched;

typedef struct as_unhandled {
  int failed_ref;    /* registry: weak-keyed set of the run's failed forks */
  int pending_ref;   /* registry: array of reports queued by finalizers */
  int pending;       /* pending_ref holds something */
} as_unhandled;

/* Creates the tables (may raise; u is then left with LUA_NOREF refs). */
void as_unhandled_init(lua_State *L, as_unhandled *u);

/* Releases the tables. Never raises. */
void as_unhandled_free(lua_State *L, as_unhandled *u);

/* Remembers the failed fork at ud_idx for the report at run()'s end. */
void as_unhandled_add(lua_State *L, as_unhandled *u, int ud_idx);

/* The failure of the fork at ud_idx has been retrieved (a waiter saw it):
** it leaves the run's set, so the set holds only failures that may still
** need a report (it stays small, however many forks fail and are waited
** for). Never raises. */
void as_unhandled_forget(lua_State *L, as_state *st, int ud_idx);

/* The failed fork at ud_idx was never waited for (its finalizer runs):
** report it once, now when no run of its own is active, else queued. */
void as_unhandled_report(lua_State *L, as_state *st, int ud_idx);

/* Delivers the queued reports (the loop's safe points). */
void as_unhandled_drain(lua_State *L, as_state *st, as_unhandled *u);

/* Pushes an array, in id order, of the run's failed forks whose failure
** nobody has retrieved and that have not been reported yet (as.dump). */
void as_unhandled_push_unretrieved(lua_State *L, as_unhandled *u);

/* At the end of run: reports every failure nobody retrieved, by fork id. */
void as_unhandled_report_all(lua_State *L, as_state *st, as_unhandled *u);

#endif
