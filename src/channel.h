/*
** channel.h: as.channel (channel.c). The scheduler reaches channels only
** through their await ops; a fork blocked on one keeps its queue links in
** as_fork.await.chan (fork.h).
*/
#ifndef ASYNCSTACK_CHANNEL_H
#define ASYNCSTACK_CHANNEL_H

/* The metatable of channels (its __name appears in argument errors). */
#define AS_CHANNEL_MT "asyncstack.Channel"

/* A channel (opaque outside channel.c); a blocked fork's
** as_fork.await.chan.channel points to it. */
struct as_channel;

/* Its id (channel #N): one field read, so a signal handler may call it
** (the profiler's "[waiting on channel #N]"). */
long long as_channel_id(const struct as_channel *ch);

#endif
