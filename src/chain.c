/*
** chain.c: the chain rule between forks (see chain.h).
*/
#include "chain.h"

as_chain_link as_chain_next(const as_sched *s, const as_fork *f) {
  as_chain_link link;
  link.via = NULL;
  link.next = NULL;
  if (f->waiters != NULL) {
    link.kind = AS_LINK_AWAITED;
    link.via = f->waiters;
    link.next = f->waiters->waiter;
  } else if (f == s->root || f->spawner_id == 0) {
    link.kind = AS_LINK_RUN;
  } else {
    as_fork *p = as_sched_fork_at_slot(s, f->spawner_slot);
    link.kind = AS_LINK_SPAWNED;
    /* slots are reused: only the fork with the recorded id is the spawner */
    link.next = (p != NULL && p->id == f->spawner_id) ? p : NULL;
  }
  return link;
}
