/*
** check.h: as_assert, for the invariants the headers state.
**
** Compiled in by -DASYNCSTACK_ASSERT (`make asan` sets it) and to nothing
** otherwise, so release builds pay nothing. A failed check prints the
** condition and its place to stderr and aborts: an invariant that does not
** hold means memory is already wrong, and going on would only move the
** crash somewhere harder to read.
*/
#ifndef ASYNCSTACK_CHECK_H
#define ASYNCSTACK_CHECK_H

#ifdef ASYNCSTACK_ASSERT
#include <stdio.h>
#include <stdlib.h>
#define as_assert(c) \
  ((c) ? (void)0 : (fprintf(stderr, "asyncstack: %s:%d: invariant failed: %s\n", \
                            __FILE__, __LINE__, #c), abort()))
#else
#define as_assert(c) ((void)0)
#endif

#endif
