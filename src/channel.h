/*
** channel.h: as.channel (channel.c). The scheduler reaches channels only
** through their await ops; a fork blocked on one keeps its queue links in
** as_fork.await.chan (fork.h).
*/
#ifndef ASYNCSTACK_CHANNEL_H
#define ASYNCSTACK_CHANNEL_H

#include <lua.h>

#define AS_CHANNEL_MT "asyncstack.Channel"

struct as_channel;

/* The id of a channel (never repeats in the process). */
lua_Integer as_channel_id(const struct as_channel *ch);

#endif
