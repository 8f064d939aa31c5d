/*
** fdwait.h: as.wait_fd (fdwait.c), on epoll.
**
** The scheduler reaches fd waits only through two tables fdwait.c hands it:
** the await ops of a fork waiting for an fd (as_fork.await.fd, fork.h) and
** the poller the loop calls while forks wait for fds (as_sched.poller; its
** state, the epoll instance and the per-fd waiters, is as_sched.poller_state,
** opaque outside fdwait.c). The poller's idle wait returns early when a
** signal arrives (dump on signal, SIGINT).
*/
#ifndef ASYNCSTACK_FDWAIT_H
#define ASYNCSTACK_FDWAIT_H

/* Highest fd number accepted, exclusive (the per-fd table grows to it). */
#define AS_FDWAIT_MAX_FD (1 << 24)

#endif
