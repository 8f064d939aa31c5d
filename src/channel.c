/*
** channel.c: as.channel([capacity]) with send, recv and close.
**
** Buffered values live in uservalue 1 (a table used as a ring of `capacity`
** slots); capacity 0 is a rendezvous. A blocked sender keeps its value on its
** own (suspended) stack, argument 2 of send; a receiver that comes along
** copies it from there. A value for a blocked receiver is pushed onto the
** receiver's suspended coroutine, which is how lua_resume hands values to a
** yield: its continuation finds it on top. So nothing is allocated per
** message and blocked forks are queued first-in first-out through links in
** the fork (as_fork.await->chan, valid while its await_kind is AS_AWAIT_CHANNEL).
**
** Convention (README "Channels"): nil cannot be sent; recv on a closed and
** drained channel returns nil, "closed"; send on a closed channel raises;
** a timeout raises as.Timeout; close wakes every blocked fork.
*/
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include "sched.h"
#include "channel.h"
#include <lauxlib.h>

typedef struct as_channel as_channel;

enum { OP_SEND = 1, OP_RECV = 2 };

struct as_channel {
  lua_Integer id;
  uintptr_t tag;                      /* channel_tag(itself, st): check_channel */
  as_state *st;                       /* the module state that made it */
  lua_Integer capacity;
  lua_Integer count, head;            /* ring slots head+1 .. head+count */
  int closed;
  as_fork *send_head, *send_tail;     /* blocked senders */
  as_fork *recv_head, *recv_tail;     /* blocked receivers */
};

/* debuglayout.h publishes the id's offset as 0 for outside readers. */
typedef char as_channel_id_is_first[offsetof(as_channel, id) == 0 ? 1 : -1];

/* Channel ids, like fork ids, never repeat in the process. */
static lua_Integer next_channel_id = 1;

/* The metatable lives at registry[&channel_mt_key] (and under its name). */
static const char channel_mt_key = 'C';

/* The type check of every channel operation, without the metatable (which
** costs three API calls: bench row 13): a full userdata of exactly our size
** whose tag is its own address mixed with the state it names and a constant
** of channels. Only channel_new writes it, so no other live object carries
** it; a light userdata has no length (0). The check hands back the module
** state too: the channel's, read from the channel, which is cheaper than
** the method's upvalue (bench row 13) and the same state for every method of
** its metatable; the state outlives the channel (the metatable's methods
** hold it as an upvalue). A channel has no __gc: its block stays valid as
** long as anything, a resurrecting finalizer included, can reach it. */
static uintptr_t channel_tag(const as_channel *ch, const as_state *st) {
  return (uintptr_t)ch ^ (uintptr_t)st ^ (uintptr_t)0x43a7c4a11e15ULL;
}

static as_channel *check_channel(lua_State *L, int idx) {
  as_channel *ch = (as_channel *)lua_touserdata(L, idx);
  if (ch == NULL || lua_rawlen(L, idx) != sizeof *ch || ch->tag != channel_tag(ch, ch->st))
    luaL_typeerror(L, idx, AS_CHANNEL_MT);   /* luaL_checkudata's message */
  return ch;
}

static void channel_unlink(as_sched *s, as_fork *f);
static void channel_describe(lua_State *L, const as_fork *f);

static const as_await_ops channel_ops = {
  AS_AWAIT_CHANNEL, "channel", channel_unlink, channel_describe, NULL
};

static void queue_push(as_channel *ch, as_fork *f, int op) {
  as_fork **head = op == OP_SEND ? &ch->send_head : &ch->recv_head;
  as_fork **tail = op == OP_SEND ? &ch->send_tail : &ch->recv_tail;
  f->await->chan.channel = ch;
  f->await->chan.op = (unsigned char)op;
  f->await->chan.next = NULL;
  f->await->chan.prev = *tail;
  if (*tail) (*tail)->await->chan.next = f;
  else *head = f;
  *tail = f;
}

static void channel_unlink(as_sched *s, as_fork *f) {
  struct as_chan_fields *c = &f->await->chan;
  as_channel *ch = c->channel;
  as_fork **head, **tail;
  (void)s;
  as_assert(f->await_kind == AS_AWAIT_CHANNEL);
  if (ch == NULL) return;
  head = c->op == OP_SEND ? &ch->send_head : &ch->recv_head;
  tail = c->op == OP_SEND ? &ch->send_tail : &ch->recv_tail;
  if (c->prev) c->prev->await->chan.next = c->next;
  else *head = c->next;
  if (c->next) c->next->await->chan.prev = c->prev;
  else *tail = c->prev;
  c->next = c->prev = NULL;
  c->channel = NULL;
}

/* core.fork_info: "channel #3 (recv)" */
static void channel_describe(lua_State *L, const as_fork *f) {
  if (f->await->chan.channel == NULL) return;
  lua_pushfstring(L, "channel #%I (%s)", (LUAI_UACINT)f->await->chan.channel->id,
                  f->await->chan.op == OP_SEND ? "send" : "recv");
  lua_setfield(L, -2, "waiting_for");
}

/* The coroutine a blocked fork is suspended in. */
static lua_State *blocked_thread(as_fork *f) {
  return as_astack_top(&f->astack);
}

/* Moves the value a blocked sender holds onto L: its send's argument 2,
** the top of its suspended stack (send settops to 2 before it suspends, and
** its continuation reads argument 1 only). Moving it needs no free slot on
** the sender's stack; L has the slots of a C call. */
static void take_sender_value(lua_State *L, as_fork *sender) {
  lua_State *th = blocked_thread(sender);
  as_assert(lua_gettop(th) == 2);
  lua_xmove(th, L, 1);
}

/* Moves the value on top of L to a blocked receiver and wakes it. */
static void give_to_receiver(lua_State *L, as_sched *s, as_fork *r) {
  lua_State *th = blocked_thread(r);
  /* may raise (in L: th is suspended): before anything moves */
  if (!lua_checkstack(th, 1)) as_mem_error(L);
  lua_xmove(L, th, 1);
  as_sched_wake(s, r, AS_WAKE_READY);          /* unlinks it */
}

static void ring_push(lua_State *L, as_channel *ch, int ch_idx) {
  lua_getiuservalue(L, ch_idx, 1);
  lua_insert(L, -2);
  lua_rawseti(L, -2, (ch->head + ch->count) % ch->capacity + 1);
  lua_pop(L, 1);
  ch->count++;
}

static void ring_pop(lua_State *L, as_channel *ch, int ch_idx) {
  lua_Integer slot = ch->head + 1;
  lua_getiuservalue(L, ch_idx, 1);
  lua_rawgeti(L, -1, slot);
  lua_pushnil(L);
  lua_rawseti(L, -3, slot);
  lua_remove(L, -2);
  ch->head = (ch->head + 1) % ch->capacity;
  ch->count--;
}

/* ------------------------------------------------------------------ send */

/* (The continuations find the channel checked at argument 1.) */
static int send_k(lua_State *L, int status, lua_KContext ctx) {
  as_channel *ch = (as_channel *)lua_touserdata(L, 1);
  as_state *st = ch->st;
  as_fork *me = as_sched_continue(L, st);
  (void)status; (void)ctx;
  if (me != NULL && me->wake == AS_WAKE_TIMEOUT) {
    lua_pushfstring(L, "send: timed out on channel #%I", (LUAI_UACINT)ch->id);
    return as_sched_raise_kind(L, st, "Timeout", lua_tostring(L, -1));
  }
  if (me != NULL && me->wake == AS_WAKE_CLOSED)
    return luaL_error(L, "send: channel #%I was closed while sending", (LUAI_UACINT)ch->id);
  lua_pushboolean(L, 1);
  return 1;
}

/* ch:send(value [, timeout]) -> true */
static int channel_send(lua_State *L) {
  as_channel *ch = check_channel(L, 1);
  as_state *st = ch->st;
  double timeout;
  as_fork *me;
  if (lua_gettop(L) == 2) {                    /* no timeout: the usual call */
    luaL_argcheck(L, !lua_isnil(L, 2), 2, "non-nil value expected");
    timeout = HUGE_VAL;
  } else {
    luaL_argcheck(L, !lua_isnoneornil(L, 2), 2, "non-nil value expected");
    timeout = as_sched_opt_timeout(L, 3);
    lua_settop(L, 2);
  }
  if (ch->closed)
    return luaL_error(L, "send: channel #%I is closed", (LUAI_UACINT)ch->id);
  if (ch->recv_head != NULL) {                 /* hand it over: the value is on top */
    give_to_receiver(L, st->sched, ch->recv_head);
    lua_pushboolean(L, 1);
    return 1;
  }
  if (ch->count < ch->capacity) {
    lua_pushvalue(L, 2);
    ring_push(L, ch, 1);
    lua_pushboolean(L, 1);
    return 1;
  }
  me = as_sched_enter_suspend(L, st, "send");
  as_sched_reserve_await(L, st->sched, me);   /* may raise (memory) */
  queue_push(ch, me, OP_SEND);   /* registered: nothing below raises */
  return as_sched_suspend(L, st->sched, me, AS_WAITING, &channel_ops, timeout, 0, send_k);
}

/* ------------------------------------------------------------------ recv */

static int recv_k(lua_State *L, int status, lua_KContext ctx) {
  as_channel *ch = (as_channel *)lua_touserdata(L, 1);
  as_state *st = ch->st;
  as_fork *me = as_sched_continue(L, st);
  (void)status; (void)ctx;
  if (me != NULL && me->wake == AS_WAKE_TIMEOUT) {
    lua_pushfstring(L, "recv: timed out on channel #%I", (LUAI_UACINT)ch->id);
    return as_sched_raise_kind(L, st, "Timeout", lua_tostring(L, -1));
  }
  if (me != NULL && me->wake == AS_WAKE_CLOSED) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  return 1;   /* the sender pushed the value onto our stack */
}

/* Takes a value without blocking: pushes it and returns 1, or returns 0. */
static int take_value(lua_State *L, as_sched *s, as_channel *ch) {
  if (ch->count > 0) {
    ring_pop(L, ch, 1);
    if (ch->send_head != NULL) {              /* room now: take a sender's value */
      as_fork *sender = ch->send_head;
      take_sender_value(L, sender);
      ring_push(L, ch, 1);
      as_sched_wake(s, sender, AS_WAKE_READY);  /* unlinks it */
    }
    return 1;
  }
  if (ch->send_head != NULL) {                /* rendezvous */
    as_fork *sender = ch->send_head;
    take_sender_value(L, sender);
    as_sched_wake(s, sender, AS_WAKE_READY);    /* unlinks it */
    return 1;
  }
  return 0;
}

/* ch:recv([timeout]) -> value | nil, "closed" */
static int channel_recv(lua_State *L) {
  as_channel *ch = check_channel(L, 1);
  as_state *st = ch->st;
  double timeout = HUGE_VAL;
  as_fork *me;
  if (lua_gettop(L) != 1) {
    timeout = as_sched_opt_timeout(L, 2);
    lua_settop(L, 1);
  }
  if (take_value(L, st->sched, ch)) return 1;
  if (ch->closed) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  me = as_sched_enter_suspend(L, st, "recv");
  as_sched_reserve_await(L, st->sched, me);   /* may raise (memory) */
  queue_push(ch, me, OP_RECV);   /* registered: nothing below raises */
  return as_sched_suspend(L, st->sched, me, AS_WAITING, &channel_ops, timeout, 0, recv_k);
}

/* ch:close() -> true, or false when it was closed already. Blocked receivers
** get nil, "closed"; blocked senders raise; buffered values stay readable. */
static int channel_close(lua_State *L) {
  as_channel *ch = check_channel(L, 1);
  as_state *st = ch->st;
  if (ch->closed) {
    lua_pushboolean(L, 0);
    return 1;
  }
  ch->closed = 1;
  while (ch->recv_head != NULL) as_sched_wake(st->sched, ch->recv_head, AS_WAKE_CLOSED);
  while (ch->send_head != NULL) as_sched_wake(st->sched, ch->send_head, AS_WAKE_CLOSED);
  lua_pushboolean(L, 1);
  return 1;
}

/* ch() is ch:recv() with no timeout, so `for v in ch do ... end` drains a
** channel until it is closed (a generic for passes its control value as an
** argument, which recv would take for a timeout). */
static int channel_call(lua_State *L) {
  lua_settop(L, 1);
  return channel_recv(L);
}

static int channel_len(lua_State *L) {
  lua_pushinteger(L, check_channel(L, 1)->count);
  return 1;
}

static int channel_cap(lua_State *L) {
  lua_pushinteger(L, check_channel(L, 1)->capacity);
  return 1;
}

static int channel_is_closed(lua_State *L) {
  lua_pushboolean(L, check_channel(L, 1)->closed);
  return 1;
}

static int channel_id(lua_State *L) {
  lua_pushinteger(L, check_channel(L, 1)->id);
  return 1;
}

static int channel_tostring(lua_State *L) {
  as_channel *ch = check_channel(L, 1);
  lua_pushfstring(L, "channel #%I (%I/%I%s)", (LUAI_UACINT)ch->id, (LUAI_UACINT)ch->count,
                  (LUAI_UACINT)ch->capacity, ch->closed ? ", closed" : "");
  return 1;
}

/* as.channel([capacity]) */
static int channel_new(lua_State *L) {
  lua_Integer capacity = luaL_optinteger(L, 1, 0);
  as_channel *ch;
  luaL_argcheck(L, capacity >= 0, 1, "capacity must be a non-negative integer");
  ch = (as_channel *)lua_newuserdatauv(L, sizeof *ch, 1);
  ch->id = __atomic_fetch_add(&next_channel_id, 1, __ATOMIC_RELAXED);
  ch->st = as_state_get(L);
  ch->tag = channel_tag(ch, ch->st);
  ch->capacity = capacity;
  ch->count = ch->head = 0;
  ch->closed = 0;
  ch->send_head = ch->send_tail = ch->recv_head = ch->recv_tail = NULL;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &channel_mt_key);
  lua_setmetatable(L, -2);
  lua_newtable(L);
  lua_setiuservalue(L, -2, 1);
  return 1;
}

long long as_channel_id(const struct as_channel *ch) {
  return (long long)ch->id;
}

void as_channel_open(lua_State *L) {
  static const luaL_Reg methods[] = {
    {"send", channel_send}, {"recv", channel_recv}, {"close", channel_close},
    {"len", channel_len}, {"cap", channel_cap}, {"is_closed", channel_is_closed},
    {"id", channel_id}, {NULL, NULL}
  };
  static const luaL_Reg meta[] = {
    {"__tostring", channel_tostring}, {"__close", channel_close},
    {"__call", channel_call}, {NULL, NULL}
  };
  static const luaL_Reg funcs[] = { {"channel", channel_new}, {NULL, NULL} };
  luaL_newmetatable(L, AS_CHANNEL_MT);
  as_module_setfuncs(L, meta);
  lua_newtable(L);
  as_module_setfuncs(L, methods);
  lua_setfield(L, -2, "__index");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &channel_mt_key);
  as_module_setfuncs(L, funcs);
  as_sched_register_await(as_state_get(L), &channel_ops);
}
