/*
** wait.h: waiting for forks (as.wait, as.pwait, as.wait_all, as.wait_any).
** The scheduler reaches wait.c only through its await ops; trace walkers
** read the wait nodes in as_fork.waiters (fork.h) and name combinators here.
*/
#ifndef ASYNCSTACK_WAIT_H
#define ASYNCSTACK_WAIT_H

#include "fork.h"

/* "wait_all" or "wait_any" for a combinator's mode, NULL for a plain wait:
** the one spelling of the combinator names. */
const char *as_wait_mode_name(int mode);

/* The combinator name of the wait `node` belongs to, or NULL for a plain
** wait. node must be linked (its waiter is then waiting through it). */
const char *as_wait_node_combinator(const as_waitnode *node);

/* The enum as_wait_mode of the wait `node` belongs to. */
int as_wait_node_mode(const as_waitnode *node);

#endif
