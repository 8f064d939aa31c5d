/*
** fdwait.c: as.wait_fd(fd, "r"|"w" [, timeout]) on epoll.
**
** Each fd with a waiting fork has one epoll registration whose events are
** the union of what its (at most one) reader and (at most one) writer want;
** registrations are edited as forks come and go. The scheduler loop polls
** without blocking while forks are runnable, and blocks in epoll_wait until
** the next timer when nothing is: a signal (dump on signal) interrupts it.
**
** An fd closed while forks wait for it (issue 13, D10): closing it through
** asyncstack (core.close_fd, asyncstack.socket's close) wakes its waiters
** first, with an error saying so. One closed behind asyncstack's back stops
** producing events (epoll drops a closed file by itself), and its number
** may be reused by another file: each registration remembers its file
** (device and inode), and the poller checks the watched fds when it finds
** nothing to do (at most once a second, and it never sleeps longer than a
** second while fds are watched), as wait_fd does when an fd already has a
** registration; a closed or changed file wakes its waiters with an error.
**
** Kept registrations (core.wait_io, for asyncstack.socket; issue 17): a
** socket that waits again and again must not pay an epoll_ctl ADD and DEL
** (and an fstat, an fcntl) around every wait. wait_io leaves the fd
** registered, level-triggered, when its wait ends, and drops a direction
** only when epoll reports it while nobody waits for it (a stale level
** event would otherwise wake the loop forever). A level-triggered
** registration cannot miss data that arrived while nobody waited: the next
** wait is woken by the next poll. The registration is trusted without
** checks when the caller hands back the token wait_io gave it for this fd
** (a socket holds its fd open for its whole life, so the token proves the
** registration is of its file); any other caller, or none, is checked as
** wait_fd is. The socket drops the registration before it closes the fd
** (core.forget_fd); close_fd does the same.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sched.h"
#include "fdwait.h"
#include "mem.h"
#include <lauxlib.h>

typedef struct as_fdwatch {
  as_fork *reader, *writer;
  uint32_t events;             /* registered with epoll (0: not registered) */
  int kept;                    /* the registration outlives waits (wait_io) */
  int strikes;                 /* kept: polls in a row that reported what
                                  nobody waits for (see fdwait_poll) */
  lua_Integer token;           /* kept: wait_io's token for it (0: none) */
  dev_t dev;                   /* the file registered, while events != 0 */
  ino_t ino;
} as_fdwatch;

/* The poller's state in a run (as_sched.poller_state). */
typedef struct as_fdset {
  int epfd;                    /* epoll instance */
  as_fdwatch *fds;             /* per-fd waiters, indexed by fd */
  int cap;                     /* length of fds */
  double checked;              /* as_now() of the last check of every fd */
  lua_Integer tokens;          /* last token wait_io handed out */
} as_fdset;

#define POLL_BATCH 64
/* Longest idle wait while fds are watched, and the least time between two
** checks of every watched fd for a file closed behind asyncstack's back. */
#define FD_CHECK_INTERVAL 1.0

/* Why a waiter was woken with AS_WAKE_CLOSED (as_fork.await.fd.closed). */
enum { FD_CLOSED_BY_CALL = 1, FD_CLOSED_OUTSIDE, FD_CHANGED };

static void fdwait_unlink(as_sched *s, as_fork *f);
static void fdwait_describe(lua_State *L, const as_fork *f);
static int fdwait_poll(lua_State *L, as_sched *s, double timeout);
static void fdwait_close(lua_State *L, as_sched *s);

static const as_await_ops fd_ops = { AS_AWAIT_FD, "fd", fdwait_unlink, fdwait_describe, NULL };
static const as_poller fd_poller = { fdwait_poll, fdwait_close };

static uint32_t wanted(const as_fdwatch *w) {
  return (w->reader ? EPOLLIN : 0) | (w->writer ? EPOLLOUT : 0);
}

/* Makes ev the epoll registration of fd (0: none). */
static int register_fd(as_fdset *set, int fd, uint32_t ev) {
  as_fdwatch *w = &set->fds[fd];
  struct epoll_event e;
  int op;
  if (ev == w->events) return 0;
  memset(&e, 0, sizeof e);
  e.events = ev;
  e.data.fd = fd;
  op = w->events == 0 ? EPOLL_CTL_ADD : (ev == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD);
  if (op == EPOLL_CTL_ADD) {
    struct stat sb;
    if (fstat(fd, &sb) != 0) return errno;
    w->dev = sb.st_dev;
    w->ino = sb.st_ino;
  }
  if (epoll_ctl(set->epfd, op, fd, &e) != 0 && !(op == EPOLL_CTL_DEL && (errno == EBADF || errno == ENOENT)))
    return errno;
  w->events = ev;
  if (ev == 0) {
    w->kept = 0;
    w->token = 0;
  }
  return 0;
}

/* Brings the epoll registration of fd in line with its waiters; a kept one
** only grows here (the poller drops directions nobody waits for). */
static int sync_fd(as_fdset *set, int fd) {
  as_fdwatch *w = &set->fds[fd];
  return register_fd(set, fd, w->kept ? (w->events | wanted(w)) : wanted(w));
}

/* Whether fd still is the file registered for it: 0 when it is, else
** FD_CLOSED_OUTSIDE or FD_CHANGED. */
static int fd_changed(const as_fdwatch *w, int fd) {
  struct stat sb;
  if (fstat(fd, &sb) != 0) return errno == EBADF ? FD_CLOSED_OUTSIDE : 0;
  return sb.st_dev != w->dev || sb.st_ino != w->ino ? FD_CHANGED : 0;
}

/* Wakes fd's waiters with AS_WAKE_CLOSED (their wait_fd raises, saying
** why). For a file closed or replaced behind our back there is nothing to
** delete (epoll dropped it with the file, or it never saw the new one); for
** close_fd, waking unlinks each waiter, which deletes the registration
** while the fd is still open. Never raises. */
static void wake_closed(as_sched *s, as_fdset *set, int fd, int why) {
  as_fdwatch *w = &set->fds[fd];
  as_fork *r = w->reader, *wr = w->writer;
  if (why != FD_CLOSED_BY_CALL) w->events = 0;
  w->kept = 0;                       /* so waking its waiters deletes it */
  if (r != NULL) {
    r->await->fd.closed = (unsigned char)why;
    as_sched_wake(s, r, AS_WAKE_CLOSED);          /* unlinks it */
  }
  if (wr != NULL) {
    wr->await->fd.closed = (unsigned char)why;
    as_sched_wake(s, wr, AS_WAKE_CLOSED);
  }
  if (why == FD_CLOSED_BY_CALL) register_fd(set, fd, 0);  /* a kept one, still open */
  w->events = 0;
  w->token = 0;
}

/* Checks every watched fd for a file closed or replaced behind asyncstack's
** back (see the top of this file). */
static void check_fds(as_sched *s, as_fdset *set) {
  int fd, why;
  set->checked = as_now();
  for (fd = 0; fd < set->cap; fd++)
    if (set->fds[fd].events != 0 && (why = fd_changed(&set->fds[fd], fd)) != 0)
      wake_closed(s, set, fd, why);
}

static void fdwait_unlink(as_sched *s, as_fork *f) {
  as_fdset *set = (as_fdset *)s->poller_state;
  int fd = f->await->fd.fd;
  as_fdwatch *w;
  as_assert(f->await_kind == AS_AWAIT_FD);
  if (set == NULL || fd < 0 || fd >= set->cap) return;
  w = &set->fds[fd];
  if (w->reader == f) w->reader = NULL;
  else if (w->writer == f) w->writer = NULL;
  else return;
  sync_fd(set, fd);
  s->nwatched--;
  f->await->fd.fd = -1;
}

/* core.fork_info: "fd 3 (read)" */
static void fdwait_describe(lua_State *L, const as_fork *f) {
  lua_pushfstring(L, "fd %d (%s)", f->await->fd.fd, f->await->fd.write ? "write" : "read");
  lua_setfield(L, -2, "waiting_for");
}

static int fdwait_poll(lua_State *L, as_sched *s, double timeout) {
  as_fdset *set = (as_fdset *)s->poller_state;
  struct epoll_event ev[POLL_BATCH];
  int n, i, ms;
  uint32_t stale = 0;
  (void)L;
  if (timeout < 0 || timeout > FD_CHECK_INTERVAL) timeout = FD_CHECK_INTERVAL;
  ms = (int)ceil(timeout * 1000.0);
  n = epoll_wait(set->epfd, ev, POLL_BATCH, ms);
  if (n < 0) return 0;               /* EINTR: a signal; the loop goes on */
  if (n == 0 && ms > 0 && as_now() - set->checked >= FD_CHECK_INTERVAL) {
    check_fds(s, set);               /* idle: a closed fd would hang the run */
    return 1;
  }
  for (i = 0; i < n; i++) {
    int fd = ev[i].data.fd;
    uint32_t e = ev[i].events;
    as_fdwatch *w;
    as_assert(fd >= 0 && fd < set->cap);
    w = &set->fds[fd];
    /* errors and hangups wake both sides: their next I/O call tells them */
    if (e & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
      if (w->reader) as_sched_wake(s, w->reader, AS_WAKE_READY);
      else stale |= EPOLLIN;
    }
    if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
      if (w->writer) as_sched_wake(s, w->writer, AS_WAKE_READY);
      else stale |= EPOLLOUT;
    }
    /* a kept registration reporting what nobody waits for: drop that part
    ** (level-triggered, it would report it on every poll). Not at the first
    ** report: a reader woken by the last poll may not have run yet (the
    ** loop polls again before it runs its batch), and it will read. */
    if (w->kept && (stale & w->events) && ++w->strikes >= 2) {
      w->strikes = 0;
      register_fd(set, fd, w->events & ~stale);
    }
    stale = 0;
  }
  return 1;
}

static void fdwait_close(lua_State *L, as_sched *s) {
  as_fdset *set = (as_fdset *)s->poller_state;
  if (set == NULL) return;
  if (set->epfd >= 0) close(set->epfd);
  as_mem_resize(L, set->fds, (size_t)set->cap * sizeof *set->fds, 0);
  as_mem_resize(L, set, sizeof *set, 0);
  s->poller_state = NULL;
  s->nwatched = 0;
}

/* The run's fd set, with room for fd; installs the poller on first use.
** May raise: called before anything is registered. */
static as_fdset *ensure_fd(lua_State *L, as_sched *s, int fd) {
  as_fdset *set = (as_fdset *)s->poller_state;
  if (set == NULL) {
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) luaL_error(L, "wait_fd: cannot create an epoll instance: %s", strerror(errno));
    set = (as_fdset *)as_mem_resize(L, NULL, 0, sizeof *set);
    if (set == NULL) {
      close(epfd);
      as_mem_error(L);
    }
    set->epfd = epfd;
    set->fds = NULL;
    set->cap = 0;
    set->checked = as_now();
    /* tokens of different runs differ: a socket may hold one from an
    ** earlier run (they start at the microseconds since boot, times 2^16) */
    set->tokens = (lua_Integer)(((lua_Unsigned)(set->checked * 1e6) << 16) & LUA_MAXINTEGER);
    s->poller_state = set;
    s->poller = &fd_poller;
  }
  if (fd >= set->cap) {
    int cap = set->cap ? set->cap : 64;
    as_fdwatch *nf;
    while (cap <= fd) cap *= 2;
    nf = (as_fdwatch *)as_mem_realloc(L, set->fds, (size_t)set->cap * sizeof *nf,
                                      (size_t)cap * sizeof *nf);
    memset(nf + set->cap, 0, (size_t)(cap - set->cap) * sizeof *nf);
    set->fds = nf;
    set->cap = cap;
  }
  return set;
}

static int fdwait_k(lua_State *L, int status, lua_KContext ctx) {
  as_state *st = as_state_get(L);
  as_fork *me = as_sched_continue(L, st);
  (void)status; (void)ctx;
  if (me != NULL && me->wake == AS_WAKE_CLOSED) {
    int why = me->await->fd.closed;
    me->await->fd.closed = 0;
    return luaL_error(L, "wait_fd: fd %d was closed while waiting for it %s",
                      (int)lua_tointeger(L, 1),
                      why == FD_CLOSED_BY_CALL ? "(by close_fd or a socket's close)" :
                      why == FD_CHANGED ? "(behind asyncstack's back: the number now names another file)" :
                      "(behind asyncstack's back)");
  }
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
  luaL_argcheck(L, fd >= 0 && fd < AS_FDWAIT_MAX_FD, arg, "fd out of range");
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
  as_fdset *set;
  as_fork *me, **slot;
  int err;
  me = as_sched_enter_suspend(L, st, "wait_fd");
  s = st->sched;
  as_sched_reserve_await(L, s, me);   /* may raise (memory) */
  /* a closed fd would otherwise size the table by its number first */
  if (fcntl(fd, F_GETFD) == -1)
    return luaL_error(L, "wait_fd: cannot watch fd %d: %s", fd, strerror(errno));
  set = ensure_fd(L, s, fd);
  /* a registration left by a file closed behind our back, whose number now
  ** names this one: its waiters are woken, and this wait starts afresh */
  if (set->fds[fd].events != 0 && (err = fd_changed(&set->fds[fd], fd)) != 0)
    wake_closed(s, set, fd, err);
  slot = write ? &set->fds[fd].writer : &set->fds[fd].reader;
  if (*slot != NULL)
    return luaL_error(L, "wait_fd: fd %d already has a fork waiting to %s (fork #%I)",
                      fd, write ? "write" : "read", (LUAI_UACINT)(*slot)->id);
  lua_settop(L, 1);
  lua_pushboolean(L, write);   /* for the continuation's message */
  *slot = me;
  if ((err = sync_fd(set, fd)) != 0) {
    *slot = NULL;
    return luaL_error(L, "wait_fd: cannot watch fd %d: %s", fd, strerror(err));
  }
  /* registered: nothing below raises */
  s->nwatched++;
  me->await->fd.fd = fd;
  me->await->fd.write = (unsigned char)write;
  me->await->fd.closed = 0;
  return as_sched_suspend(L, st->sched, me, AS_WAITING, &fd_ops, timeout, 0, fdwait_k);
}

/* wait_io's continuation: true, token | nil, "timeout" | nil, "closed". */
static int fdwait_io_k(lua_State *L, int status, lua_KContext ctx) {
  as_state *st = as_state_get(L);
  as_fork *me = as_sched_continue(L, st);
  (void)status;
  if (me != NULL && me->wake == AS_WAKE_CLOSED) {
    me->await->fd.closed = 0;
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  if (me != NULL && me->wake == AS_WAKE_TIMEOUT) {
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
  }
  lua_pushboolean(L, 1);
  lua_pushinteger(L, (lua_Integer)ctx);
  return 2;
}

/* core.wait_io(fd, "r" | "w", timeout | nil, token | nil) -> true, token |
** nil, "timeout" | nil, "closed": wait_fd for asyncstack.socket, whose
** registration is kept after the wait (see the top of this file). With the
** token of the fd's kept registration it checks nothing; else it checks the
** fd as wait_fd does. A timeout or a close_fd/forget_fd is a result, not an
** error (the socket turns them into LuaSocket's "timeout" and "closed"); a
** cancel raises as.Cancelled. The caller keeps the token for the next wait
** and must call forget_fd before the fd is closed. */
static int fdwait_wait_io(lua_State *L) {
  as_state *st = as_state_get(L);
  lua_Integer fdn = luaL_checkinteger(L, 1);
  const char *mode = luaL_checkstring(L, 2);
  double timeout = as_sched_opt_timeout(L, 3);
  lua_Integer token = luaL_optinteger(L, 4, 0);
  int fd = (int)fdn, write, err;
  as_sched *s;
  as_fdset *set;
  as_fdwatch *w;
  as_fork *me, **slot;
  luaL_argcheck(L, fdn >= 0 && fdn < AS_FDWAIT_MAX_FD, 1, "fd out of range");
  luaL_argcheck(L, (mode[0] == 'r' || mode[0] == 'w') && mode[1] == '\0', 2, "'r' or 'w' expected");
  write = mode[0] == 'w';
  me = as_sched_enter_suspend(L, st, "wait_io");
  s = st->sched;
  as_sched_reserve_await(L, s, me);   /* may raise (memory) */
  set = (as_fdset *)s->poller_state;
  if (set == NULL || fd >= set->cap || token == 0 || set->fds[fd].token != token ||
      set->fds[fd].events == 0) {
    /* not the caller's kept registration: checked as wait_fd does */
    if (fcntl(fd, F_GETFD) == -1)
      return luaL_error(L, "wait_io: cannot watch fd %d: %s", fd, strerror(errno));
    set = ensure_fd(L, s, fd);
    w = &set->fds[fd];
    if (w->events != 0 && (err = fd_changed(w, fd)) != 0) wake_closed(s, set, fd, err);
    if (!w->kept || w->token == 0) {
      w->kept = 1;
      w->token = ++set->tokens;
    }
  }
  w = &set->fds[fd];
  slot = write ? &w->writer : &w->reader;
  if (*slot != NULL)
    return luaL_error(L, "wait_io: fd %d already has a fork waiting to %s (fork #%I)",
                      fd, write ? "write" : "read", (LUAI_UACINT)(*slot)->id);
  lua_settop(L, 1);
  *slot = me;
  w->strikes = 0;
  if ((err = sync_fd(set, fd)) != 0) {
    *slot = NULL;
    return luaL_error(L, "wait_io: cannot watch fd %d: %s", fd, strerror(err));
  }
  /* registered: nothing below raises */
  s->nwatched++;
  me->await->fd.fd = fd;
  me->await->fd.write = (unsigned char)write;
  me->await->fd.closed = 0;
  return as_sched_suspend(L, st->sched, me, AS_WAITING, &fd_ops, timeout, (lua_KContext)w->token,
                          fdwait_io_k);
}

/* core.forget_fd(fd): fd is about to be closed by its owner (a socket's
** close): forks of this run waiting for it are woken as by close_fd, and
** its registration is deleted while the fd is still open. */
static int fdwait_forget_fd(lua_State *L) {
  as_state *st = as_state_get(L);
  lua_Integer fd = luaL_checkinteger(L, 1);
  as_sched *s = st->sched;
  as_fdset *set = s != NULL ? (as_fdset *)s->poller_state : NULL;
  if (set != NULL && fd >= 0 && fd < set->cap && set->fds[fd].events != 0)
    wake_closed(s, set, (int)fd, FD_CLOSED_BY_CALL);
  return 0;
}

/* core.close_fd(fd) -> true | fail, message, errno: closes fd; forks of
** this run waiting for it are woken first, and their wait_fd raises "fd N
** was closed while waiting for it" (D10). Also outside a run. */
static int fdwait_close_fd(lua_State *L) {
  as_state *st = as_state_get(L);
  int fd = check_fd(L, 1), saved;
  as_sched *s = st->sched;
  as_fdset *set = s != NULL ? (as_fdset *)s->poller_state : NULL;
  if (set != NULL && fd < set->cap && set->fds[fd].events != 0)
    wake_closed(s, set, fd, FD_CLOSED_BY_CALL);
  if (close(fd) == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  saved = errno;
  luaL_pushfail(L);
  lua_pushfstring(L, "close_fd: cannot close fd %d: %s", fd, strerror(saved));
  lua_pushinteger(L, saved);
  return 3;
}

/* core.watched_fds() -> number of forks waiting for fds (for dumps) */
static int fdwait_watched(lua_State *L) {
  as_state *st = as_state_get(L);
  lua_pushinteger(L, st->sched ? st->sched->nwatched : 0);
  return 1;
}

void as_fdwait_open(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"wait_fd", fdwait_wait_fd}, {"close_fd", fdwait_close_fd},
    {"watched_fds", fdwait_watched}, {"wait_io", fdwait_wait_io},
    {"forget_fd", fdwait_forget_fd}, {NULL, NULL}
  };
  as_sched_register_await(as_state_get(L), &fd_ops);
  as_module_setfuncs(L, funcs);
}
