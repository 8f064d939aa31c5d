/*
** sigsafe.h: a writer that is safe inside a signal handler: formats by hand
** into a buffer it owns and writes with write(2) to one fd. No malloc, no
** stdio, no locks, no Lua. The crash report is written with it, and the
** renderer's fd sink is meant to wrap it (`as_sigsafe_write` has the shape
** of a sink's write callback).
**
** It never blocks for long (issue 13, D11): the fd is switched to
** O_NONBLOCK while the writer is open and back when it is closed; a write
** that would block waits in poll(2) for the fd to drain, but the whole
** writer has a time budget (AS_SIGSAFE_BUDGET_MS from as_sigsafe_open):
** once it is spent, everything later is dropped and `gave_up` is set.
**
** One writer is used by one thread at a time; the caller owns the struct
** (a static one in a signal handler: the alternate stack is small).
*/
#ifndef ASYNCSTACK_SIGSAFE_H
#define ASYNCSTACK_SIGSAFE_H

#include <stddef.h>
#include <stdint.h>

#define AS_SIGSAFE_BUDGET_MS 2000   /* all writes of one writer, at most */

typedef struct as_sigsafe {
  int fd;
  int restore_flags;          /* the fd's status flags to put back, or -1 */
  int gave_up;                /* the budget ran out or the fd failed */
  long long deadline_ms;      /* CLOCK_MONOTONIC, in ms */
  size_t len;                 /* bytes waiting in buf */
  char buf[4096];
} as_sigsafe;

/* Starts writing to fd (makes it non-blocking until as_sigsafe_close). */
void as_sigsafe_open(as_sigsafe *w, int fd);
/* Writes what is buffered; drops it if the fd cannot take it in time. */
void as_sigsafe_flush(as_sigsafe *w);
/* Flushes and puts the fd's flags back. */
void as_sigsafe_close(as_sigsafe *w);

void as_sigsafe_write(as_sigsafe *w, const char *s, size_t n);
void as_sigsafe_char(as_sigsafe *w, char c);
void as_sigsafe_str(as_sigsafe *w, const char *s);
/* At most `max` chars of untrusted text, control bytes shown as '?', "..."
** when cut. */
void as_sigsafe_text(as_sigsafe *w, const char *s, size_t max);
void as_sigsafe_dec(as_sigsafe *w, long long v);
/* "0x" and at least `width` hex digits. */
void as_sigsafe_hex(as_sigsafe *w, uintptr_t v, int width);

#endif
