/*
** flame.h: stacks in, flame-graph formats out. The one implementation of
** the profiler's output formats (issue 16 item 2), used by the in-process
** profile object (profile.c) and by any C program that samples stacks
** another way (the `asyncstack record` command): no Lua, plain malloc.
**
** An as_flame aggregates stacks: each stack is an array of frame strings,
** ROOT FIRST (outermost caller first, the sampled frame last), with a
** count. Equal stacks add up; the frames are interned (copied), so the
** caller's strings may go once as_flame_add returns. Internally a prefix
** tree (one node per distinct path from the root), which every writer
** walks in a stable order: children sorted by frame text, bytewise.
**
** Writers (to a write callback, or a FILE* through as_flame_file_writer):
**   folded      the collapsed-stack format of flamegraph.pl and speedscope:
**               one line per distinct stack, frames joined by ';', a space,
**               the count. Frame text never holds ';' or a newline: they
**               are replaced by ',' and ' ' when the stack is added.
**   speedscope  speedscope's file format (JSON, "sampled" profile): one
**               profile holding every stack; weights are counts, or
**               milliseconds when a sample's duration is given.
**   svg         a self-contained interactive flame graph: root at the
**               bottom, width proportional to samples; hovering a frame
**               shows its text, samples and share; clicking zooms into it
**               (click the bottom bar, or "Reset zoom", to go back); the
**               search box highlights matching frames and shows their
**               share. Inline CSS and script only: nothing is fetched.
**
** Errors: as_flame_add and the writers return 0, or -1 when memory ran
** out (the flame is then unchanged, or the output incomplete).
*/
#ifndef ASYNCSTACK_FLAME_H
#define ASYNCSTACK_FLAME_H

#include <stddef.h>

typedef struct as_flame as_flame;

/* Writes n bytes of s. */
typedef void (*as_flame_write_fn)(void *ud, const char *s, size_t n);

/* A new, empty aggregator, or NULL when memory ran out. */
as_flame *as_flame_new(void);
void as_flame_free(as_flame *f);

/* Adds `count` samples of the stack frames[0, n), root first. n == 0 adds
** to the root itself (a sample with no frames). */
int as_flame_add(as_flame *f, const char *const *frames, int n,
                 unsigned long long count);

/* Samples added, in all. */
unsigned long long as_flame_total(const as_flame *f);
/* Distinct frames interned, and distinct stacks (tree nodes with samples
** of their own). */
size_t as_flame_nframes(const as_flame *f);
size_t as_flame_nstacks(const as_flame *f);

int as_flame_folded(const as_flame *f, as_flame_write_fn w, void *ud);

/* `name` names the profile (NULL: "asyncstack"); sample_ms > 0 gives the
** weights in milliseconds (count * sample_ms), else in samples. */
int as_flame_speedscope(const as_flame *f, const char *name, double sample_ms,
                        as_flame_write_fn w, void *ud);

/* `title` heads the graph (NULL: "Flame graph"); `subtitle` (or NULL) is
** a second line, e.g. the mode and rate. */
int as_flame_svg(const as_flame *f, const char *title, const char *subtitle,
                 as_flame_write_fn w, void *ud);

/* A write callback over a FILE* (ud); errors show in ferror(file). */
void as_flame_file_writer(void *file, const char *s, size_t n);

#endif
