/*
** chain.h: the one chain rule between forks. A trace goes on past a fork's
** root function to the fork that awaits it (the first of its waiters); when
** nobody waits, to the fork that spawned it (through the spawn site); from
** run()'s root fork (or a fork whose spawner was run() itself), to the code
** that called run().
**
** Lua-free and allocation-free: it reads as_fork fields and the scheduler's
** C array of live forks by slot (as_sched_fork_at_slot), never the registry,
** so the crash handler can follow the same chain from a signal handler. It
** keeps no state: callers bound the walk themselves (the in-process walker
** counts the distinct forks first, by Brent's cycle detection; a signal
** handler counts hops, at most the number of live forks).
*/
#ifndef ASYNCSTACK_CHAIN_H
#define ASYNCSTACK_CHAIN_H

#include "sched.h"

enum as_link_kind {
  AS_LINK_AWAITED,   /* next waits for the fork (via: its wait node) */
  AS_LINK_SPAWNED,   /* next spawned it; NULL when the spawner has ended */
  AS_LINK_RUN        /* the chain leaves the forks: run()'s caller is next */
};

typedef struct as_chain_link {
  int kind;                  /* enum as_link_kind */
  as_fork *next;             /* the next fork, or NULL (see kind) */
  const as_waitnode *via;    /* AS_LINK_AWAITED: the waiter's node */
} as_chain_link;

/* The link from fork f (live in s, s not NULL) to the next one. */
as_chain_link as_chain_next(const as_sched *s, const as_fork *f);

#endif
