/*
** runq.c: the run queue and the timer heap (see runq.h). Pure C.
*/
#include "runq.h"

/* The capacity that holds n: powers of two from 64 (the run queue masks its
** indexes with cap - 1). */
static size_t grown_cap(size_t cap, size_t n) {
  if (cap == 0) cap = 64;
  while (cap < n) cap *= 2;
  return cap;
}

int as_runq_reserve(as_runq *q, size_t n, lua_Alloc alloc, void *ud) {
  size_t cap, i;
  as_fork **ring;
  if (n <= q->cap) return 1;
  cap = grown_cap(q->cap, n);
  ring = (as_fork **)alloc(ud, NULL, 0, cap * sizeof *ring);
  if (ring == NULL) return 0;
  for (i = 0; i < q->len; i++) ring[i] = q->ring[(q->head + i) & (q->cap - 1)];
  if (q->ring != NULL) alloc(ud, q->ring, q->cap * sizeof *ring, 0);
  q->ring = ring;
  q->cap = cap;
  q->head = 0;
  return 1;
}

void as_runq_free(as_runq *q, lua_Alloc alloc, void *ud) {
  if (q->ring != NULL) alloc(ud, q->ring, q->cap * sizeof *q->ring, 0);
  q->ring = NULL;
  q->head = q->len = q->cap = 0;
}

/* ------------------------------------------------------------- timer heap */

int as_timers_reserve(as_timers *t, size_t n, lua_Alloc alloc, void *ud) {
  size_t cap;
  as_timer *heap;
  if (n <= t->cap) return 1;
  cap = grown_cap(t->cap, n);
  heap = (as_timer *)alloc(ud, t->heap, t->cap * sizeof *heap, cap * sizeof *heap);
  if (heap == NULL) return 0;
  t->heap = heap;
  t->cap = cap;
  return 1;
}

void as_timers_free(as_timers *t, lua_Alloc alloc, void *ud) {
  if (t->heap != NULL) alloc(ud, t->heap, t->cap * sizeof *t->heap, 0);
  t->heap = NULL;
  t->len = t->cap = 0;
}

/* Equal deadlines in arming order: sequence numbers compared modulo 2^32,
** right while fewer than 2^31 timers were armed between two live ones. Only
** a tie reads the forks. */
static int timer_before(const as_timer *a, const as_timer *b) {
  return a->deadline < b->deadline ||
         (a->deadline == b->deadline && (int)(a->fork->timer_seq - b->fork->timer_seq) < 0);
}

#define HEAP_PARENT(i) (((i) - 1) / AS_TIMER_ARITY)
#define HEAP_CHILD(i) (AS_TIMER_ARITY * (i) + 1)

static void heap_set(as_timers *t, size_t i, as_timer e) {
  t->heap[i] = e;
  e.fork->heap_index = (int)i;
}

static void heap_up(as_timers *t, size_t i) {
  as_timer e = t->heap[i];
  while (i > 0) {
    size_t parent = HEAP_PARENT(i);
    if (!timer_before(&e, &t->heap[parent])) break;
    heap_set(t, i, t->heap[parent]);
    i = parent;
  }
  heap_set(t, i, e);
}

void as_timers_add(as_timers *t, as_fork *f, double deadline) {
  as_assert(t->len < t->cap && f->heap_index < 0);
  f->deadline = deadline;
  f->timer_seq = t->seq++;
  t->heap[t->len].deadline = deadline;
  t->heap[t->len].fork = f;
  f->heap_index = (int)t->len++;
  heap_up(t, (size_t)f->heap_index);
}

/* Removal fills the hole with the last entry. That entry is one of the
** latest deadlines, so instead of sifting it down from the hole (comparing
** it with the earliest child at every level) the hole goes down to a leaf
** along the earliest children and the entry is sifted up from there, which
** is rarely more than a level (Floyd's variant; bench row 14 takes out a
** timer per sleeping fork). */
void as_timers_take_out(as_timers *t, as_fork *f) {
  size_t i;
  as_timer moved;
  i = (size_t)f->heap_index;
  as_assert(i < t->len && t->heap[i].fork == f);
  f->heap_index = -1;
  t->len--;
  if (i == t->len) return;
  moved = t->heap[t->len];
  if (i > 0 && timer_before(&moved, &t->heap[HEAP_PARENT(i)])) {
    heap_set(t, i, moved);            /* earlier than the hole's parent */
    heap_up(t, i);
    return;
  }
  for (;;) {
    size_t child = HEAP_CHILD(i), best, end, c;
    if (child >= t->len) break;
    end = child + AS_TIMER_ARITY < t->len ? child + AS_TIMER_ARITY : t->len;
    for (best = child, c = child + 1; c < end; c++)
      if (timer_before(&t->heap[c], &t->heap[best])) best = c;
    heap_set(t, i, t->heap[best]);
    i = best;
  }
  heap_set(t, i, moved);
  heap_up(t, i);
}
