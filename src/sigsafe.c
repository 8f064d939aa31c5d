/*
** sigsafe.c: the signal-safe fd writer (see sigsafe.h). Only
** async-signal-safe calls: write, poll, fcntl, clock_gettime.
*/
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include "sigsafe.h"

static long long now_ms(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 0;
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void as_sigsafe_open(as_sigsafe *w, int fd) {
  int flags = fcntl(fd, F_GETFL);
  w->fd = fd;
  w->len = 0;
  w->gave_up = 0;
  w->restore_flags = -1;
  w->deadline_ms = now_ms() + AS_SIGSAFE_BUDGET_MS;
  if (flags != -1 && !(flags & O_NONBLOCK) &&
      fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0)
    w->restore_flags = flags;
}

void as_sigsafe_flush(as_sigsafe *w) {
  size_t done = 0;
  while (done < w->len && !w->gave_up) {
    ssize_t n = write(w->fd, w->buf + done, w->len - done);
    if (n > 0) {
      done += (size_t)n;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      /* full: wait for room, within what is left of the budget */
      struct pollfd p;
      long long left = w->deadline_ms - now_ms();
      if (left <= 0) {
        w->gave_up = 1;
        break;
      }
      p.fd = w->fd;
      p.events = POLLOUT;
      p.revents = 0;
      if (poll(&p, 1, left > 1000 ? 1000 : (int)left) < 0 && errno != EINTR)
        w->gave_up = 1;
    } else {
      w->gave_up = 1;                 /* nowhere to write: drop the rest */
    }
  }
  w->len = 0;
}

void as_sigsafe_close(as_sigsafe *w) {
  as_sigsafe_flush(w);
  if (w->restore_flags != -1) fcntl(w->fd, F_SETFL, w->restore_flags);
  w->restore_flags = -1;
}

void as_sigsafe_char(as_sigsafe *w, char c) {
  if (w->len == sizeof w->buf) as_sigsafe_flush(w);
  w->buf[w->len++] = c;
}

void as_sigsafe_write(as_sigsafe *w, const char *s, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) as_sigsafe_char(w, s[i]);
}

void as_sigsafe_str(as_sigsafe *w, const char *s) {
  while (*s) as_sigsafe_char(w, *s++);
}

void as_sigsafe_text(as_sigsafe *w, const char *s, size_t max) {
  size_t i;
  for (i = 0; s[i] != '\0'; i++) {
    unsigned char c = (unsigned char)s[i];
    if (i == max) {
      as_sigsafe_str(w, "...");
      return;
    }
    as_sigsafe_char(w, c < 0x20 || c == 0x7f ? '?' : (char)c);
  }
}

void as_sigsafe_dec(as_sigsafe *w, long long v) {
  char tmp[24];
  int n = 0;
  unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
  if (v < 0) as_sigsafe_char(w, '-');
  do {
    tmp[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u != 0);
  while (n > 0) as_sigsafe_char(w, tmp[--n]);
}

void as_sigsafe_hex(as_sigsafe *w, uintptr_t v, int width) {
  static const char digits[] = "0123456789abcdef";
  char tmp[2 * sizeof v];
  int n = 0;
  do {
    tmp[n++] = digits[v & 0xf];
    v >>= 4;
  } while (v != 0);
  as_sigsafe_str(w, "0x");
  while (n < width && n < (int)sizeof tmp) tmp[n++] = '0';
  while (n > 0) as_sigsafe_char(w, tmp[--n]);
}
