/*
** fdwait.c: as.wait_fd(fd, "r"|"w" [, timeout]) on epoll.
**
** Each fd with a waiting fork has one epoll registration whose events are
** the union of what its (at most one) reader and (at most one) writer want;
** registrations are edited as forks come and go. The scheduler loop polls
** without blocking while forks are runnable, and blocks in epoll_wait until
** the next timer when nothing is: a signal (dump on signal) interrupts it.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "sched.h"
#include <lauxlib.h>

typedef struct as_fdwatch {
  as_fork *reader, *writer;
  uint32_t events;             /* registered with epoll */
} as_fdwatch;

#define POLL_BATCH 64

static uint32_t wanted(const as_fdwatch *w) {
  return (w->reader ? EPOLLIN : 0) | (w->writer ? EPOLLOUT : 0);
}

/* Brings the epoll registration of fd in line with its waiters. */
static int sync_fd(as_sched *s, int fd) {
  as_fdwatch *w = &s->fds[fd];
  uint32_t ev = wanted(w);
  struct epoll_event e;
  int op;
  if (ev == w->events) return 0;
  memset(&e, 0, sizeof e);
  e.events = ev;
  e.data.fd = fd;
  op = w->events == 0 ? EPOLL_CTL_ADD : (ev == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD);
  if (epoll_ctl(s->epfd, op, fd, &e) != 0 && !(op == EPOLL_CTL_DEL && (errno == EBADF || errno == ENOENT)))
    return errno;
  w->events = ev;
  return 0;
}

void as_fdwait_unlink(as_sched *s, as_fork *f) {
  as_fdwatch *w;
  if (f->wait_fd < 0 || f->wait_fd >= s->fds_cap) return;
  w = &s->fds[f->wait_fd];
  if (w->reader == f) w->reader = NULL;
  else if (w->writer == f) w->writer = NULL;
  else return;
  sync_fd(s, f->wait_fd);
  s->nwatched--;
  f->wait_fd = -1;
}

int as_fdwait_poll(lua_State *L, as_sched *s, double timeout) {
  struct epoll_event ev[POLL_BATCH];
  int n, i, ms;
  if (s->epfd < 0) return 1;
  if (timeout < 0) ms = -1;
  else ms = (int)ceil(timeout * 1000.0 > 2147483647.0 ? 2147483647.0 : timeout * 1000.0);
  n = epoll_wait(s->epfd, ev, POLL_BATCH, ms);
  if (n < 0) return 0;               /* EINTR: a signal; the loop goes on */
  for (i = 0; i < n; i++) {
    int fd = ev[i].data.fd;
    as_fdwatch *w = &s->fds[fd];
    uint32_t e = ev[i].events;
    /* errors and hangups wake both sides: their next I/O call tells them */
    if (w->reader && (e & (EPOLLIN | EPOLLERR | EPOLLHUP)))
      as_sched_wake(L, s, w->reader, AS_WAKE_READY);
    if (w->writer && (e & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
      as_sched_wake(L, s, w->writer, AS_WAKE_READY);
  }
  return 1;
}

void as_fdwait_close(lua_State *L, as_sched *s) {
  void *ud;
  lua_Alloc alloc = lua_getallocf(L, &ud);
  if (s->epfd >= 0) close(s->epfd);
  s->epfd = -1;
  if (s->fds) alloc(ud, s->fds, (size_t)s->fds_cap * sizeof *s->fds, 0);
  s->fds = NULL;
  s->fds_cap = 0;
  s->nwatched = 0;
}

static void ensure_fd(lua_State *L, as_sched *s, int fd) {
  void *ud;
  lua_Alloc alloc = lua_getallocf(L, &ud);
  if (s->epfd < 0) {
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0) luaL_error(L, "wait_fd: cannot create an epoll instance: %s", strerror(errno));
  }
  if (fd >= s->fds_cap) {
    int cap = s->fds_cap ? s->fds_cap : 64;
    as_fdwatch *nf;
    while (cap <= fd) cap *= 2;
    nf = (as_fdwatch *)alloc(ud, s->fds, (size_t)s->fds_cap * sizeof *nf, (size_t)cap * sizeof *nf);
    if (nf == NULL) luaL_error(L, "not enough memory");
    memset(nf + s->fds_cap, 0, (size_t)(cap - s->fds_cap) * sizeof *nf);
    s->fds = nf;
    s->fds_cap = cap;
  }
}

static int fdwait_k(lua_State *L, int status, lua_KContext ctx) {
  as_state *st = as_state_get(L);
  as_fork *me = as_sched_fork_of(st, L);
  (void)status; (void)ctx;
  as_sched_check_cancel(L, st, me);
  if (me != NULL && me->wake == AS_WAKE_TIMEOUT) {
    lua_pushfstring(L, "wait_fd: timed out waiting for fd %d to be %s",
                    (int)lua_tointeger(L, 1), lua_toboolean(L, 2) ? "writable" : "readable");
    return as_sched_raise_kind(L, st, "Timeout", lua_tostring(L, -1));
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* Reads the fd argument: an integer, or an object with a getfd() method
** (LuaSocket's sockets). */
static int check_fd(lua_State *L, int arg) {
  lua_Integer fd;
  int isint;
  if (lua_type(L, arg) != LUA_TNUMBER && luaL_getmetafield(L, arg, "__index") != LUA_TNIL) {
    lua_pop(L, 1);
    if (lua_getfield(L, arg, "getfd") == LUA_TFUNCTION) {
      lua_pushvalue(L, arg);
      lua_call(L, 1, 1);
      if (lua_type(L, -1) != LUA_TNUMBER)
        luaL_argerror(L, arg, lua_pushfstring(L, "getfd() returned %s, integer fd expected",
                                              luaL_typename(L, -1)));
      lua_replace(L, arg);
    } else {
      lua_pop(L, 1);
    }
  }
  /* LuaSocket's getfd() gives a float: any number with an integral value */
  fd = lua_tointegerx(L, arg, &isint);
  if (lua_type(L, arg) != LUA_TNUMBER || !isint)
    luaL_typeerror(L, arg, "integer fd or object with getfd()");
  luaL_argcheck(L, fd >= 0 && fd < (1 << 24), arg, "fd out of range");
  return (int)fd;
}

/* as.wait_fd(fd, "r" | "w" [, timeout]) -> true when ready */
static int fdwait_wait_fd(lua_State *L) {
  static const char *const modes[] = {"r", "w", NULL};
  as_state *st = as_state_get(L);
  int fd = check_fd(L, 1);
  int write = luaL_checkoption(L, 2, NULL, modes);
  double timeout = as_sched_opt_timeout(L, 3);
  as_sched *s;
  as_fork *me, **slot;
  int err;
  me = as_sched_enter_suspend(L, st, "wait_fd");
  s = st->sched;
  /* a closed fd would otherwise size the table by its number first */
  if (fcntl(fd, F_GETFD) == -1)
    return luaL_error(L, "wait_fd: cannot watch fd %d: %s", fd, strerror(errno));
  ensure_fd(L, s, fd);
  slot = write ? &s->fds[fd].writer : &s->fds[fd].reader;
  if (*slot != NULL)
    return luaL_error(L, "wait_fd: fd %d already has a fork waiting to %s (fork #%I)",
                      fd, write ? "write" : "read", (LUAI_UACINT)(*slot)->id);
  *slot = me;
  if ((err = sync_fd(s, fd)) != 0) {
    *slot = NULL;
    return luaL_error(L, "wait_fd: cannot watch fd %d: %s", fd, strerror(err));
  }
  s->nwatched++;
  me->wait_fd = fd;
  me->fd_write = (unsigned char)write;
  lua_settop(L, 1);
  lua_pushboolean(L, write);   /* for the continuation's message */
  return as_sched_suspend(L, me, AS_WAITING, AS_AWAIT_FD, timeout, 0, fdwait_k);
}

/* core.watched_fds() -> number of forks waiting for fds (for dumps) */
static int fdwait_watched(lua_State *L) {
  as_state *st = as_state_get(L);
  lua_pushinteger(L, st->sched ? st->sched->nwatched : 0);
  return 1;
}

void as_fdwait_open(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"wait_fd", fdwait_wait_fd}, {"watched_fds", fdwait_watched}, {NULL, NULL}
  };
  as_module_setfuncs(L, funcs);
}
