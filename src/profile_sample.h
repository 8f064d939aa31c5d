/*
** profile_sample.h: the signal-safe half of the profiler (issue 16):
** profile_sample.c's SIGPROF handler and the ring of raw samples it fills;
** profile.c installs the handler, names the samples and keeps the profile.
** The rules the handler keeps (what it reads with plain loads, what only
** through process_vm_readv) are stated in profile.h.
**
** A raw sample is a header entry and its body, 4 words per entry; the body
** lists the stack innermost first: for each coroutine an AS_PS_THREAD entry
** then its frames from the top, then, after a fork's coroutines, its
** AS_PS_FORK entry (and AS_PS_NAME entries with its name), then the next
** fork of the chain, and last the code that called run(). In wall mode a
** suspended fork's sample starts with its AS_PS_AWAIT entry.
*/
#ifndef ASYNCSTACK_PROFILE_SAMPLE_H
#define ASYNCSTACK_PROFILE_SAMPLE_H

#include <signal.h>
#include <stdint.h>
#include <lua.h>
#include "lualayout.h"

#define AS_PS_RING_WORDS (1u << 18)   /* 2 MB of raw samples between drains */
#define AS_PS_SAMPLE_ENTRIES 640      /* entries of one sample, at most */
#define AS_PS_NAME_CHUNK 24           /* bytes of a fork name per AS_PS_NAME */
#define AS_PS_NAME_ENTRIES 3

/* Entry kinds: the low byte of word 0. */
enum {
  AS_PS_SAMPLE = 1,  /* header: w1 = entries in the body, w2 = weight in ticks */
  AS_PS_THREAD,      /* the frames of one coroutine follow, top first */
  AS_PS_FRAME,       /* w0 >> 8 = tag, w0 >> 16 = callstatus; w1 = the called
                        value, w2 = Proto or C function, w3 = saved pc (0 for
                        a C frame) */
  AS_PS_SLOT,        /* (inside the handler only) a frame before its stack
                        slot was read: w1 = ci->func */
  AS_PS_BAD,         /* a frame (or coroutine) that could not be read */
  AS_PS_FORK,        /* w1 = id, w2 = its spawn site's function; names follow */
  AS_PS_NAME,        /* AS_PS_NAME_CHUNK bytes of the fork's name in w1..w3 */
  AS_PS_AWAIT,       /* w1 = what (enum as_await, or AS_PS_AWAIT_RUNNABLE),
                        w2 = target (fork id, channel id, fd), w3 = detail
                        (wait mode, channel op, fd write) */
  AS_PS_MARK         /* w1 = AS_PS_MARK_* */
};
enum { AS_PS_AWAIT_RUNNABLE = 100 };
enum { AS_PS_MARK_SCHEDULER = 1, AS_PS_MARK_OUTSIDE_RUN, AS_PS_MARK_CUT };

typedef struct as_ps_counts {
  unsigned long ticks;      /* timer expirations (signals plus overruns) */
  unsigned long signals;    /* handler runs */
  unsigned long dropped;    /* samples lost to a full ring */
  unsigned long cut;        /* samples cut at AS_PS_SAMPLE_ENTRIES */
  double handler_seconds;   /* time in the handler */
} as_ps_counts;

/* Allocates the ring and states what the handler reads (outside any
** handler, with it not installed or inactive): 0, or -1 (memory). */
int as_ps_setup(const as_lualayout *lay, lua_State *mainthread, int wall);
/* Frees the ring. The handler must be gone or inactive, its signal blocked. */
void as_ps_teardown(void);
/* The handler samples only while active. */
void as_ps_set_active(int on);
/* The SIGPROF handler (SA_SIGINFO). */
void as_ps_handler(int sig, siginfo_t *info, void *uctx);
/* process_vm_readv works on ourselves (else plain loads, after checks). */
int as_ps_safe_reads(void);
/* A sample waits in the ring (signal-safe, cheap). */
int as_ps_pending(void);
/* Takes the oldest sample: copies its body into body[0, 4 * n) (room for
** AS_PS_SAMPLE_ENTRIES entries) and its weight; returns n, or -1 when the
** ring is empty. Call it in the sampled thread, outside the handler. */
int as_ps_next(uint64_t *body, uint64_t *weight);
as_ps_counts as_ps_counts_now(void);

#endif
