/*
** debuglayout.h: the published debug descriptor (issue 14, items 1-2): what
** a tool outside the process (a debugger, a profiler, a core-file reader,
** the crash handler) needs to read every fork's async stack from memory
** alone, with no symbols, no debug info and no code run in the process.
**
** How a tool finds it
** -------------------
** Two ways, both into the same object (the descriptor, `as_debug_descriptor`
** below), so a tool can use whichever it has:
**  * the ELF section named "asyncstack_debug" (AS_DEBUG_SECTION) of core.so:
**    it holds the descriptor alone. Section headers survive `strip` (only
**    `strip --remove-section` drops them), and a section is found from the
**    file on disk plus the load address in /proc/PID/maps or a core file's
**    NT_FILE note -- no symbol table needed.
**  * the exported dynamic symbol `asyncstack_debug_descriptor`
**    (AS_DEBUG_SYMBOL): in .dynsym, which no strip removes, so dlsym, gdb's
**    `info symbol`/`print &asyncstack_debug_descriptor` and a /proc-based
**    reader of the dynamic table find it too.
** The section is why a tool with only the file and the mappings works; the
** symbol is why in-process users (dlsym) and debuggers need no ELF parsing.
**
** What is in it (every number little-endian, x86_64 LP64)
** --------------------------------------------------------
** A magic cookie, the layout version of this descriptor (bumped whenever a
** field is added, removed or changes meaning), its size, the pointer size;
** then, filled at load time (status 0 until the module was first required):
** the running interpreter's Lua release (read from the exported `lua_ident`,
** see lualayout.h) and whether its layout was verified against lua_getinfo;
** the sizes and offsets of asyncstack's own structs (from offsetof, constant:
** valid in the file on disk too), in AS_DEBUG_OWN_FIELDS order; Lua's
** internal offsets and constants for that release (lualayout.h), in
** AS_LUALAYOUT_FIELDS order, plus luaP_opmodes; and the address of the
** process-wide registry of the schedulers that run now.
**
** The registry: entries [0, count) hold as_sched addresses (0 for a free
** entry). A scheduler is stored into a free entry before `count` covers it
** (publish-before-count, as the async stack); its entry is cleared when its
** run() ends. Updated only where runs start and end: no cost per fork,
** per yield or per wait. From an as_sched the live forks are its `slots`
** array, entries [1, top_slot] (sched.h); from a fork its async stack,
** waiters and spawner (fork.h, astack.h).
**
** Who writes what: the own offsets are constant; the Lua part and status
** are written once per process by the first require (as_debuglayout_check);
** the registry by run.c through as_debuglayout_register/unregister.
** Readers trust nothing: a running process can be read mid-update.
*/
#ifndef ASYNCSTACK_DEBUGLAYOUT_H
#define ASYNCSTACK_DEBUGLAYOUT_H

#include <stddef.h>
#include <stdint.h>
#include <lua.h>
#include "lualayout.h"

struct as_sched;

#define AS_DEBUG_SECTION "asyncstack_debug"
#define AS_DEBUG_SYMBOL asyncstack_debug_descriptor
#define AS_DEBUG_MAGIC "asyncstack-dbg\x01\x7f"   /* 16 bytes, no NUL */
/* as_fork.spawn_line (fork_spawn_line) holds the spawn site's line (> 0),
** -1 for a C function, 0 for none, or a line not worked out yet: the
** instruction pc >= 0 stored as AS_SPAWN_PC(pc) (every value <= -2), which
** a reader turns into the line from spawn_func's line info. */
#define AS_SPAWN_PC(pc) (-2 - (pc))
#define AS_SPAWN_PC_OF(v) (-2 - (v))

#define AS_DEBUG_LAYOUT_VERSION 3u   /* 3: await fields out of line (fork_await), await kind a byte, no fork_sched, 16-bit astack depth (issue 17); 2: deadline, channel, fd and combinator fields (issue 15) */
/* Schedulers running at once in the process (one per running run(); runs
** do not nest within a Lua state, so this is a bound on threads running
** asyncstack at the same time). A run beyond it is not published. */
#define AS_DEBUG_MAX_SCHEDS 64

/* as_debug_descriptor.status */
enum {
  AS_DEBUG_UNCHECKED = 0,   /* the module was never required */
  AS_DEBUG_VERIFIED = 1,    /* the Lua layout agreed with lua_getinfo */
  AS_DEBUG_UNVERIFIED = 2,  /* no layout for the release, or it differed */
  AS_DEBUG_CHECKING = 3     /* another thread is checking right now */
};

/*
** asyncstack's own fields a walker reads, as X(name, value): sizes and
** offsets in bytes, and the enum values it interprets.
*/
#define AS_DEBUG_OWN_FIELDS(X) \
  /* as_sched (sched.h) */ \
  X(sched_size, sizeof(as_sched)) X(sched_L, offsetof(as_sched, L)) \
  X(sched_running, offsetof(as_sched, running)) \
  X(sched_root, offsetof(as_sched, root)) \
  X(sched_slots, offsetof(as_sched, slots)) \
  X(sched_slots_cap, offsetof(as_sched, slots_cap)) \
  X(sched_top_slot, offsetof(as_sched, top_slot)) \
  X(sched_nlive, offsetof(as_sched, nlive)) \
  X(sched_now, offsetof(as_sched, now)) \
  /* as_fork (fork.h) */ \
  X(fork_size, sizeof(as_fork)) X(fork_id, offsetof(as_fork, id)) \
  /* the root coroutine: the async stack's first inline frame */ \
  X(fork_thread, offsetof(as_fork, astack) + offsetof(as_astack, inline_frames) + \
                 offsetof(as_frame, thread)) \
  X(fork_status, offsetof(as_fork, status)) \
  X(fork_astack, offsetof(as_fork, astack)) \
  X(fork_since, offsetof(as_fork, since)) \
  /* what it waits on: the kind (1 byte, enum as_await below), and for \
  ** wait, channel and fd kinds a pointer to the await record, whose \
  ** fields the await_* offsets below are relative to */ \
  X(fork_await_kind, offsetof(as_fork, await_kind)) \
  X(fork_await, offsetof(as_fork, await)) \
  X(await_awaiting, offsetof(as_await_fields, wait.own_node.target)) \
  X(await_fd_fd, offsetof(as_await_fields, fd.fd)) \
  X(fork_waiters, offsetof(as_fork, waiters)) \
  X(fork_slot, offsetof(as_fork, slot)) \
  X(fork_spawner_id, offsetof(as_fork, spawner_id)) \
  X(fork_spawner_slot, offsetof(as_fork, spawner_slot)) \
  X(fork_spawn_line, offsetof(as_fork, spawn_line)) \
  X(fork_spawn_func, offsetof(as_fork, spawn_func)) \
  X(fork_name_cstr, offsetof(as_fork, name_cstr)) \
  /* version 2 (issue 15: what `asyncstack ps` shows of an await) */ \
  X(fork_deadline, offsetof(as_fork, deadline)) \
  X(fork_heap_index, offsetof(as_fork, heap_index)) \
  X(await_chan, offsetof(as_await_fields, chan.channel)) \
  X(await_chan_op, offsetof(as_await_fields, chan.op)) \
  X(await_fd_write, offsetof(as_await_fields, fd.write)) \
  X(await_wait_nodes, offsetof(as_await_fields, wait.nodes)) \
  X(await_wait_nnodes, offsetof(as_await_fields, wait.nnodes)) \
  X(await_wait_mode, offsetof(as_await_fields, wait.mode)) \
  X(waitnode_size, sizeof(as_waitnode)) \
  X(waitnode_index, offsetof(as_waitnode, index)) \
  X(waitnode_linked, offsetof(as_waitnode, linked)) \
  /* as_channel (channel.c, opaque elsewhere): its id is its first field, \
  ** which channel.c asserts */ \
  X(channel_id, 0) \
  X(wait_mode_all, AS_WAIT_ALL) X(wait_mode_any, AS_WAIT_ANY) \
  /* as_astack, as_frame (astack.h) */ \
  X(astack_frames, offsetof(as_astack, frames)) \
  X(astack_depth, offsetof(as_astack, depth)) /* 16 bits */ \
  X(astack_capacity, offsetof(as_astack, capacity)) /* 16 bits */ \
  X(frame_size, sizeof(as_frame)) X(frame_thread, offsetof(as_frame, thread)) \
  /* as_waitnode (fork.h): a fork's waiters list */ \
  X(waitnode_waiter, offsetof(as_waitnode, waiter)) \
  X(waitnode_target, offsetof(as_waitnode, target)) \
  X(waitnode_next, offsetof(as_waitnode, next)) \
  /* sizes of the integer fields above */ \
  X(size_fork_id, sizeof(lua_Integer)) X(size_fork_status, 1) \
  X(size_time, sizeof(double)) \
  /* enum as_status (fork.h): runnable ... cancelled */ \
  X(status_runnable, AS_RUNNABLE) X(status_running, AS_RUNNING) \
  X(status_sleeping, AS_SLEEPING) X(status_waiting, AS_WAITING) \
  X(status_done, AS_DONE) X(status_failed, AS_FAILED) \
  X(status_cancelled, AS_CANCELLED) \
  /* enum as_await (fork.h) */ \
  X(await_sleep, AS_AWAIT_SLEEP) X(await_wait, AS_AWAIT_WAIT) \
  X(await_yield, AS_AWAIT_YIELD) X(await_channel, AS_AWAIT_CHANNEL) \
  X(await_fd, AS_AWAIT_FD)

#define AS_DEBUG_COUNT(name, value) +1
#define AS_DEBUG_NOWN (0 AS_DEBUG_OWN_FIELDS(AS_DEBUG_COUNT))
#define AS_DEBUG_LUA_COUNT(name) +1
#define AS_DEBUG_NLUA (0 AS_LUALAYOUT_FIELDS(AS_DEBUG_LUA_COUNT))

typedef struct as_debug_registry {
  uint32_t capacity;                    /* AS_DEBUG_MAX_SCHEDS */
  uint32_t count;                       /* entries that may be in use */
  uint64_t scheds[AS_DEBUG_MAX_SCHEDS]; /* as_sched addresses, 0 when free */
} as_debug_registry;

typedef struct as_debug_descriptor {
  char magic[16];              /* AS_DEBUG_MAGIC */
  uint32_t layout_version;     /* AS_DEBUG_LAYOUT_VERSION */
  uint32_t descriptor_size;    /* sizeof(as_debug_descriptor) */
  uint32_t pointer_size;       /* 8 */
  uint32_t status;             /* AS_DEBUG_* */
  int32_t lua_minor;           /* x of Lua 5.4.x; -1 unknown */
  uint32_t nown;               /* entries of own[] */
  uint32_t nlua;               /* entries of lua[] */
  uint32_t lua_naming;         /* lualayout.h: AS_NAMING_* */
  uint32_t lua_finalizer_on_caller;
  uint32_t lua_env_needs_variable;
  as_debug_registry *registry; /* the live schedulers */
  char lua_release[16];        /* "5.4.4", "" when unknown */
  char message[160];           /* why verified/unverified (NUL-terminated) */
  /* What traces hide: C functions whose code lies in [text_start, text_end)
  ** (core.so's executable segment), and Lua functions whose source starts
  ** with internal_prefix (the front end's directory, "@.../asyncstack/"). */
  uint64_t text_start, text_end;
  uint32_t internal_prefix_len;  /* 0 until the front end is loaded */
  char internal_prefix[256];
  uint32_t own[AS_DEBUG_NOWN]; /* AS_DEBUG_OWN_FIELDS order */
  uint32_t lua[AS_DEBUG_NLUA]; /* AS_LUALAYOUT_FIELDS order */
  uint8_t lua_opmodes[AS_LUALAYOUT_MAX_OPCODES];
} as_debug_descriptor;

/* Indices into own[] (AS_DEBUG_OWN_<name>). */
#define AS_DEBUG_OWN_INDEX(name, value) AS_DEBUG_OWN_##name,
enum { AS_DEBUG_OWN_FIELDS(AS_DEBUG_OWN_INDEX) AS_DEBUG_OWN_END };
#undef AS_DEBUG_OWN_INDEX

/* The descriptor of this process (the exported object). */
const as_debug_descriptor *as_debuglayout_get(void);

/*
** At require: states the running interpreter's release in the descriptor
** and verifies its layout by walking a known stack from memory and comparing
** with lua_getinfo (memwalk_verify.h). Once per process; later calls only
** read the result. Raises only on memory errors.
*/
void as_debuglayout_check(lua_State *L);

/* The front end's source prefix (core.set_internal_prefix); ignored when
** longer than the descriptor's field. */
void as_debuglayout_set_internal_prefix(const char *prefix, size_t len);

/* The Lua layout the walkers may use, or NULL when it is not verified. */
const as_lualayout *as_debuglayout_lua(void);

/* run() starts / ends (run.c). Never raise, never allocate. */
void as_debuglayout_register(struct as_sched *s);
void as_debuglayout_unregister(struct as_sched *s);

#endif
